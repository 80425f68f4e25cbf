"""Cheap latent -> RGB previews (no VAE): a linear map from latent channels to RGB.

The map is fitted per job by least squares from the start image and its own latent (8x8 block means of
the image against the latent pixels), so it works for any VAE, including random tiny ones.
"""

from __future__ import annotations

import numpy as np
import torch


class LatentPreviewer:
    def __init__(self, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        self.weight = weight  # [C, 3]
        self.bias = bias  # [3]

    @classmethod
    def fit(cls, latent: torch.Tensor, image: np.ndarray, ridge: float = 1e-2) -> "LatentPreviewer":
        """latent [1, C, 1, h, w], image uint8 H x W x 3 (H = 8h): least-squares fit of RGB block means."""
        lat = latent[0, :, 0].float().cpu()  # C, h, w
        c, h, w = lat.shape
        img = torch.from_numpy(np.array(image, dtype=np.uint8)).float() / 127.5 - 1.0  # H, W, 3 (a copy: may be read-only)
        H, W = img.shape[:2]
        if H < h or W < w:
            return cls()
        img = img[: (H // h) * h, : (W // w) * w]
        rgb = img.reshape(h, H // h, w, W // w, 3).mean(dim=(1, 3)).reshape(-1, 3)  # h*w, 3
        x = torch.cat([lat.reshape(c, -1).T, torch.ones(h * w, 1)], dim=1)  # h*w, C+1
        a = x.T @ x + ridge * torch.eye(c + 1)
        sol = torch.linalg.solve(a, x.T @ rgb)  # C+1, 3
        return cls(sol[:c], sol[c])

    def __call__(self, latents: torch.Tensor, scale: int = 4) -> np.ndarray:
        """latents [1, C, T, h, w] -> uint8 image h*scale x (T*w*scale) x 3: the frames side by side."""
        lat = latents[0].float().cpu()  # C, T, h, w
        if self.weight is None:
            rgb = lat.mean(dim=0, keepdim=True).expand(3, -1, -1, -1)  # grey fallback
            rgb = rgb / (rgb.abs().max() + 1e-6)
        else:
            rgb = torch.einsum("cthw,cr->rthw", lat, self.weight) + self.bias.view(3, 1, 1, 1)
        img = ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)  # 3, T, h, w
        img = img.permute(2, 1, 3, 0).reshape(img.shape[2], -1, 3).numpy()  # h, T*w, 3
        if scale > 1:
            img = img.repeat(scale, axis=0).repeat(scale, axis=1)
        return np.ascontiguousarray(img)
