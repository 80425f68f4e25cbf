"""Flow-matching sampling: the resolution-dependent sigma schedule and UniPC (bh1, data prediction).

The model is seen through `denoise(x, sigma)`, which returns the x0 prediction; `make_denoiser` builds it
from a velocity model with distilled guidance, optional real CFG and CFG re-scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SHIFT_K = (1.15 - 0.5) / (4096 - 256)


def time_shift_mu(seq_len: int) -> float:
    return min(SHIFT_K * seq_len + 0.5 - 256 * SHIFT_K, math.log(7.0))


def flow_sigmas(steps: int, seq_len: int) -> torch.Tensor:
    """float32 [steps+1] from 1 to 0, shifted by e^mu (mu from the token count)."""
    mu = time_shift_mu(seq_len)
    t = torch.linspace(1, 0, steps + 1)
    sigmas = math.exp(mu) / (math.exp(mu) + (1 / t - 1))
    sigmas[-1] = 0.0
    return sigmas


def seq_len_for(latent_window_size: int, height: int, width: int) -> int:
    return latent_window_size * (height // 8) * (width // 8) // 4


Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_denoiser(velocity: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor], cfg: float,
                  rescale: float) -> Denoiser:
    """x0(x, sigma) from velocity(x, sigma, positive) with real CFG (cfg != 1) and re-scale."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        v_pos = velocity(x, sigma, True).float()
        if cfg != 1.0:
            v_neg = velocity(x, sigma, False).float()
            v = v_neg + cfg * (v_pos - v_neg)
            if rescale != 0.0:
                dims = list(range(1, v.ndim))
                std_pos = v_pos.std(dim=dims, keepdim=True)
                std_cfg = v.std(dim=dims, keepdim=True)
                v = rescale * (v * (std_pos / std_cfg)) + (1.0 - rescale) * v
        else:
            v = v_pos
        return x.float() - v * sigma.float()

    return denoise


def unipc_sample(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """UniPC bh1 run to the end; returns the x0 prediction of the last model evaluation."""
    m = None
    for _i, _x, m in unipc_steps(denoise, x, sigmas):
        pass
    return m


@torch.no_grad()
def unipc_steps(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor):
    """UniPC bh1, one model evaluation per step, as a generator of (step, x, x0 prediction) per step.

    The section output is the x0 prediction of the last evaluation (at sigma[steps-1]). Scalars (lambda,
    h, phi, rho) are float32 tensors like the sigmas they come from. The caller can stop between steps
    (cancel) simply by not asking for the next one.
    """
    sigmas = sigmas.float()
    steps = len(sigmas) - 1
    p = max(1, min(3, steps - 1))
    x = x.float()
    models = [denoise(x, sigmas[0:1])]
    times = [sigmas[0:1]]
    yield 0, x, models[-1]
    for i in range(1, steps):
        q = min(i, p)
        t = sigmas[i:i + 1]
        t0, m0 = times[-1], models[-1]
        lam0, lam_t = -torch.log(t0), -torch.log(t)
        h = lam_t - lam0
        rks, d1s = [], []
        for j in range(1, q):
            rk = ((-torch.log(times[-(j + 1)]) - lam0) / h)[0]
            rks.append(rk)
            d1s.append((models[-(j + 1)] - m0) / rk)
        rks.append(torch.ones((), dtype=torch.float32))
        rks_t = torch.stack(rks)
        hh = -h[0]
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        fact = 1
        R, b = [], []
        for k in range(1, q + 1):  # bh1: B(h) = hh
            R.append(torch.pow(rks_t, k - 1))
            b.append(h_phi_k * fact / hh)
            fact *= k + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        R_t, b_t = torch.stack(R), torch.stack(b)
        D = torch.stack(d1s, dim=1) if d1s else None
        if D is not None:
            rho_p = torch.tensor([0.5]) if q == 2 else torch.linalg.solve(R_t[:-1, :-1], b_t[:-1])
            pred = torch.tensordot(D, rho_p, dims=([1], [0]))
        else:
            pred = 0
        rho_c = torch.tensor([0.5]) if q == 1 else torch.linalg.solve(R_t, b_t)
        base = (t / t0) * x - h_phi_1 * m0
        x_p = base - hh * pred
        m_t = denoise(x_p, t)
        corr = torch.tensordot(D, rho_c[:-1], dims=([1], [0])) if D is not None else 0
        x = base - hh * (corr + rho_c[-1] * (m_t - m0))
        models.append(m_t)
        times.append(t)
        models, times = models[-p:], times[-p:]
        yield i, x, m_t
