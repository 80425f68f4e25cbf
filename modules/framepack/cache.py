"""Step caches for the FramePack transformer: TeaCache, MagCache and a residual recorder for calibration.

All three work the same way on diffusers' `HunyuanVideoFramepackTransformer3DModel`: while attached, the
transformer's two block stacks (`transformer_blocks`, the dual-stream blocks, then `single_transformer_blocks`)
are temporarily replaced by `_GatedBlocks`, a `ModuleList` holding the very same block modules (so state-dict
keys, LoRA adapters and hooks on the blocks are untouched) whose iteration the transformer's own `forward`
drives. During a forward call the first dual block becomes a gate that decides "compute" or "skip":

* compute: every block runs; the last block's output minus the gate's input is stored as the residual of
  the packed image stream (4x, 2x, clean and noisy tokens; the text stream is dropped after the blocks anyway);
* skip: no block runs; the stacks return `input + residual` of the last computed call of the same pass.

The gate is instance-level only: two attributes of the transformer swapped and swapped back, and a forward
pre-/post-hook on it removed by handle. After `attach` exits the transformer is exactly as before, and no class
or process-wide state is touched (tests/caches/test_cache_attach.py checks both).

Why not `diffusers.hooks` (checked against diffusers 0.42.1: `ModelHook`/`HookRegistry` in hooks/hooks.py, and
the first_block_cache.py and mag_cache.py built on them; there is no TeaCache hook). The numbers would match: a
prototype gave bit-identical outputs. Three other things rule it out:
1. A ModelHook can only replace one module's `forward`. The loop over the blocks is inside the transformer's
   `forward`, so a hook on the transformer could skip the stacks only by copying that `forward`. Diffusers'
   own caches instead put a head hook on block 0 and a pass-through hook (which returns the inputs) on every
   other block. Each pass-through call still goes through `nn.Module.__call__`, and that runs torch's forward
   hooks before the replaced `forward`. The BlockStreamer (modules/memory/streaming.py) loads a streamed
   block's weights in exactly such a pre-hook. So under streaming a skipped step would still copy every
   streamed block from host to device: 7 copies per skipped call instead of 1 on the CPU streamer with 3+4
   blocks, all streamed. Anything else that hooks the blocks would also see calls that never ran.
2. `HookRegistry.remove_hook` does not restore the module. It leaves a `_diffusers_hook` registry and an
   instance-level `forward` on every hooked block. Clearing them means deleting diffusers' private attributes,
   which would also drop another owner's hooks on the same block.
3. The cache rules do not carry over, so only the plumbing could be shared:
   * FirstBlockCache decides on block 0's output and always runs block 0. TeaCache decides on block 0's
     modulated input and skips block 0 as well.
   * Diffusers' MagCache resamples the ratios by nearest index and rounds the retention differently. It has
     no forced last step and no per-step 0.06 guard, and it counts steps at the tail block.
   * Diffusers keys the per-pass state (cond/uncond) by a `cache_context` that FramePack's sampler does not set.

Steps are counted in transformer calls, as the reference does: `calls_per_step` is 1 with cfg 1 and 2 with real
CFG (the sampler's denoiser makes a conditional and then an unconditional call per step; the timestep can not
tell steps apart, because in bf16 neighbouring timesteps near 1000 round to the same value). Each pass keeps
its own state (residual, TeaCache's previous modulated input and accumulator); the first call of a step (the
conditional pass) decides for the whole step, so both passes skip together and the skip log has one entry
per step. The reference FramePack TeaCache keeps one state and counts every call as a step, so with CFG it
compares each pass with the previous call of the other pass and counts two "steps" per step; with cfg 1, as
in every golden case, the two rules are the same.

Usage (the engine's side of the contract):

    cache = make_step_cache(params)            # None when params.cache_type is CacheType.NONE
    for section in sections:
        cache.start_section(params.steps)
        with cache.attach(transformer):
            run_sampler(...)
    result.skipped_steps = cache.skipped_steps
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modules.framepack.params import CacheType, GenerationParams
from modules.models.registry import TransformerKind

log = logging.getLogger(__name__)

# TeaCache's rescaling polynomial for HunyuanVideo / FramePack (highest power first): maps the relative L1
# change of the modulated input to an estimate of the relative change of the output.
TEACACHE_POLY: tuple[float, ...] = (733.226126, -401.131952, 67.5869174, -3.149878, 0.0961237896)

# MagCache skips a step only where the single-step magnitude ratio is this close to 1 (the MagCache authors'
# FramePack demo uses the same guard): steps where the residual changes fast are always computed.
MAGCACHE_MAX_STEP_DEVIATION = 0.06

RATIOS_FILE = Path(__file__).resolve().parent / "magcache_ratios.json"


def _poly(coefficients: Sequence[float], x: float) -> float:
    """Horner evaluation, highest power first (same order of operations as numpy.polyval)."""
    y = 0.0
    for c in coefficients:
        y = y * x + c
    return y


@dataclass
class _PassState:
    """Per-pass cache state (pass 0 = conditional, pass 1 = unconditional with real CFG)."""

    residual: torch.Tensor | None = None
    prev_modulated: torch.Tensor | None = None  # TeaCache only
    accumulated: float = 0.0  # TeaCache only


@dataclass
class StepTrace:
    """What the cache saw and decided at one step (leading pass); for logs, tests and calibration."""

    step: int
    computed: bool
    rel_l1: float | None = None  # TeaCache
    poly_rel_l1: float | None = None  # TeaCache
    accumulated: float | None = None  # TeaCache accumulator / MagCache accumulated error, after the step
    mag_ratio: float | None = None  # MagCache table value / recorder measurement


class StepCache:
    """Base class: block-stack gating, step bookkeeping and the skip log. Subclasses decide."""

    name = "none"

    def __init__(self, calls_per_step: int = 1, default_num_steps: int | None = None) -> None:
        if calls_per_step < 1:
            raise ValueError("calls_per_step must be >= 1")
        self.calls_per_step = calls_per_step
        self.computed_log: list[list[bool]] = []  # per section, per step: True computed / False skipped
        self.trace: list[list[StepTrace]] = []  # per section, per step (leading pass)
        self._default_num_steps = default_num_steps
        self._num_steps = 0
        self._calls = 0  # transformer calls in this section
        self._step = 0
        self._pass = 0
        self._step_timestep: float | None = None
        self._warned = False
        self._passes: dict[int, _PassState] = {}
        self._step_decision = True
        self._skipping = False
        self._block_input: torch.Tensor | None = None
        self._attached: nn.Module | None = None

    # ---- contract -------------------------------------------------------------------------------------
    @property
    def skipped_steps(self) -> int:
        return sum(1 for section in self.computed_log for computed in section if not computed)

    @property
    def total_steps(self) -> int:
        return sum(len(section) for section in self.computed_log)

    def start_section(self, num_steps: int) -> None:
        """Reset the per-section state; `num_steps` is the sampler's step count for this section."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self._num_steps = num_steps
        self._calls = 0
        self._step = 0
        self._pass = 0
        self._step_timestep = None
        self._passes = {}
        self.computed_log.append([])
        self.trace.append([])
        self._reset_section()

    @contextmanager
    def attach(self, transformer: nn.Module) -> Iterator["StepCache"]:
        """Install the gate on `transformer`'s block stacks for the duration of the block."""
        if self._attached is not None:
            raise RuntimeError("this cache is already attached to a transformer")
        dual = transformer.transformer_blocks
        single = transformer.single_transformer_blocks
        if isinstance(dual, _GatedBlocks) or isinstance(single, _GatedBlocks):
            raise RuntimeError("another step cache is already attached to this transformer")
        if len(dual) == 0:
            raise ValueError("the transformer has no dual-stream blocks to gate")
        gate = _Gate(self, list(dual), list(single))
        transformer.transformer_blocks = _GatedBlocks(dual, gate.iter_dual)
        transformer.single_transformer_blocks = _GatedBlocks(single, gate.iter_single)
        pre = transformer.register_forward_pre_hook(gate.before_forward, with_kwargs=True)
        post = transformer.register_forward_hook(gate.after_forward)
        self._attached = transformer
        try:
            yield self
        finally:
            pre.remove()
            post.remove()
            transformer.transformer_blocks = dual
            transformer.single_transformer_blocks = single
            self._attached = None
            self._block_input = None

    def summary(self) -> dict[str, Any]:
        """Reproduction-relevant facts for the job's metadata."""
        return {"cache": self.name, "skipped_steps": self.skipped_steps, "total_steps": self.total_steps,
                "computed": [[int(c) for c in s] for s in self.computed_log]}

    # ---- subclass hooks ---------------------------------------------------------------------------------
    def _reset_section(self) -> None:
        """Per-section reset of the subclass's decision state."""

    def _decide(self, step: int, state: _PassState, hidden: torch.Tensor, temb: torch.Tensor,
                first_block: nn.Module, leading: bool) -> bool:
        """True = compute. `leading` is the first pass of the step; later passes follow its decision
        (`self._step_decision`) but may update their own state."""
        return True

    def _on_residual(self, step: int, pass_index: int, residual: torch.Tensor,
                     previous: torch.Tensor | None) -> None:
        """Called after every computed call with the new and the previous residual of the same pass."""

    # ---- step bookkeeping (called by the gate) ---------------------------------------------------------
    def _is_forced(self, step: int) -> bool:
        """First and last steps of a section are always computed."""
        return step == 0 or step >= self._num_steps - 1

    def _begin_call(self, timestep: float | None) -> None:
        if not self.computed_log:
            if self._default_num_steps is None:
                raise RuntimeError("call start_section(num_steps) before running the sampler")
            self.start_section(self._default_num_steps)
        if self._calls >= self._num_steps * self.calls_per_step:
            # More calls than declared: a new section began without start_section (recorder mode).
            if self._default_num_steps is None:
                log.warning("%s: more than %d steps in one section; starting a new one", self.name, self._num_steps)
            self.start_section(self._default_num_steps or self._num_steps)
        self._step, self._pass = divmod(self._calls, self.calls_per_step)
        self._calls += 1
        # Passes of one step share the timestep; a mismatch means the sampler's call pattern differs from
        # calls_per_step (say so once rather than mis-assign passes silently).
        if self._pass == 0:
            self._step_timestep = timestep
        elif timestep != self._step_timestep and not self._warned:
            self._warned = True
            log.warning("%s: call %d has another timestep than the first pass of its step; expected %d calls "
                        "per step", self.name, self._calls, self.calls_per_step)

    def _gate_enter(self, hidden: torch.Tensor, temb: torch.Tensor, first_block: nn.Module) -> bool:
        """Decide for the current call; returns True to compute."""
        state = self._passes.setdefault(self._pass, _PassState())
        leading = self._pass == 0
        decision = self._decide(self._step, state, hidden, temb, first_block, leading)
        if state.residual is None:
            decision = True  # nothing to reuse yet (cannot happen after a computed first step)
        if leading:
            self._step_decision = decision
            self.computed_log[-1].append(decision)
        self._skipping = not decision
        return decision

    def _store_residual(self, output: torch.Tensor) -> None:
        state = self._passes[self._pass]
        residual = output - self._block_input
        self._on_residual(self._step, self._pass, residual, state.residual)
        state.residual = residual
        self._block_input = None


class _GatedBlocks(nn.ModuleList):
    """The same block modules; iteration is delegated to the gate (plain iteration outside a forward)."""

    def __init__(self, blocks: nn.ModuleList, iterate: Callable[[], Iterator[Any]]) -> None:
        super().__init__(list(blocks))
        self._iterate = iterate

    def __iter__(self) -> Iterator[Any]:
        return self._iterate()


class _Gate:
    """Turns one transformer forward into: decide at the first block, run or skip the stacks, store the residual."""

    def __init__(self, cache: StepCache, dual: list[nn.Module], single: list[nn.Module]) -> None:
        self.cache = cache
        self.dual = dual
        self.single = single
        self.armed_dual = False
        self.armed_single = False
        self.entered = False

    # transformer hooks
    def before_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ts = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        value = float(ts.reshape(-1)[0]) if isinstance(ts, torch.Tensor) else (None if ts is None else float(ts))
        self.cache._begin_call(value)
        self.armed_dual = self.armed_single = True
        self.entered = False

    def after_forward(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self.entered:
            raise RuntimeError("step cache gate was not reached: the transformer's forward changed shape")
        self.armed_dual = self.armed_single = False

    # block-stack iteration
    def iter_dual(self) -> Iterator[Any]:
        if not self.armed_dual:
            yield from self.dual
            return
        self.armed_dual = False
        yield self._enter
        if self.cache._skipping:
            return
        for i in range(1, len(self.dual)):
            yield self._wrap_last(self.dual[i]) if self._is_last(self.dual, i) else self.dual[i]

    def iter_single(self) -> Iterator[Any]:
        if not self.armed_single:
            yield from self.single
            return
        self.armed_single = False
        if self.cache._skipping:
            return
        for i in range(len(self.single)):
            yield self._wrap_last(self.single[i]) if i == len(self.single) - 1 else self.single[i]

    def _is_last(self, stack: list[nn.Module], i: int) -> bool:
        return stack is self.dual and not self.single and i == len(self.dual) - 1

    def _enter(self, hidden: torch.Tensor, encoder_hidden: torch.Tensor, temb: torch.Tensor,
               *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        self.entered = True
        first = self.dual[0]
        if not self.cache._gate_enter(hidden, temb, first):
            residual = self.cache._passes[self.cache._pass].residual
            return hidden + residual, encoder_hidden
        self.cache._block_input = hidden.clone()
        out = first(hidden, encoder_hidden, temb, *args, **kwargs)
        if self._is_last(self.dual, 0):
            self.cache._store_residual(out[0])
        return out

    def _wrap_last(self, block: nn.Module) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            out = block(*args, **kwargs)
            self.cache._store_residual(out[0])
            return out
        return run


# ------------------------------------------------------------------------------------------------------------
class TeaCache(StepCache):
    """TeaCache (Liu et al. 2024) as FramePack uses it, with FramePack's polynomial.

    At every non-forced step: rel = mean|m - m_prev| / mean|m_prev| with m = transformer_blocks[0].norm1's
    modulated input; acc += poly(rel); compute when acc >= rel_l1_thresh (then acc = 0), otherwise skip.
    m_prev is updated on every call, skipped or not.
    """

    name = "TeaCache"

    def __init__(self, rel_l1_thresh: float, coefficients: Sequence[float] = TEACACHE_POLY,
                 calls_per_step: int = 1) -> None:
        super().__init__(calls_per_step)
        self.rel_l1_thresh = float(rel_l1_thresh)
        self.coefficients = tuple(coefficients)

    def _decide(self, step: int, state: _PassState, hidden: torch.Tensor, temb: torch.Tensor,
                first_block: nn.Module, leading: bool) -> bool:
        modulated = first_block.norm1(hidden, emb=temb)[0]
        rel = poly = None
        if self._is_forced(step) or state.prev_modulated is None:
            compute = True
            state.accumulated = 0.0
        else:
            prev = state.prev_modulated
            rel = ((modulated - prev).abs().mean() / prev.abs().mean()).item()
            poly = _poly(self.coefficients, rel)
            state.accumulated += poly
            compute = state.accumulated >= self.rel_l1_thresh if leading else self._step_decision
            if compute:
                state.accumulated = 0.0
        state.prev_modulated = modulated
        if leading:
            self.trace[-1].append(StepTrace(step, compute, rel, poly, state.accumulated))
        return compute


# ------------------------------------------------------------------------------------------------------------
def resample_ratios(table: Sequence[float], num_steps: int) -> list[float]:
    """Per-step magnitude ratios for `num_steps` steps from a table measured at len(table) steps.

    The table's cumulative product is the residual magnitude curve M over normalised sampler time
    (index / (len - 1)); log M is interpolated linearly at the new steps' times and differenced, so a
    table measured at the same step count comes back unchanged and a coarser schedule gets the product of
    the finer ratios it spans (plain nearest-index sampling would drop them).
    """
    n_src = len(table)
    if num_steps < 1 or n_src < 1:
        raise ValueError("need at least one step and one ratio")
    if num_steps == n_src:
        return [float(r) for r in table]
    if num_steps == 1 or n_src == 1:
        return [1.0] * num_steps
    log_m = [0.0]
    for r in table[1:]:
        log_m.append(log_m[-1] + math.log(float(r)))

    def at(pos: float) -> float:
        x = pos * (n_src - 1)
        i = min(int(math.floor(x)), n_src - 2)
        frac = x - i
        return log_m[i] * (1.0 - frac) + log_m[i + 1] * frac

    curve = [at(i / (num_steps - 1)) for i in range(num_steps)]
    return [1.0] + [math.exp(curve[i] - curve[i - 1]) for i in range(1, num_steps)]


def load_magcache_ratios(kind: TransformerKind | str, num_steps: int, path: Path | None = None) -> list[float]:
    """The ratio table for a transformer kind, resampled to `num_steps` (nearest measured step count)."""
    data = json.loads((path or RATIOS_FILE).read_text(encoding="utf-8"))
    key = kind.value if isinstance(kind, TransformerKind) else str(kind)
    try:
        tables = data["models"][key]
    except KeyError as exc:
        raise KeyError(f"no MagCache ratios for model {key!r} in {path or RATIOS_FILE}") from exc
    measured = min((int(k) for k in tables), key=lambda n: (abs(n - num_steps), n))
    return resample_ratios(tables[str(measured)], num_steps)


class MagCache(StepCache):
    """MagCache (Ma et al. 2025, arXiv:2506.09045): skip while the accumulated magnitude error is small.

    Per section: acc_ratio = 1, err = 0, k = 0. At step t (not forced, not in the first retention_ratio of
    the steps): acc_ratio *= gamma_t; err += |1 - acc_ratio|; k += 1; skip when err <= threshold,
    k <= max_consecutive_skips and |1 - gamma_t| <= 0.06, otherwise compute and reset the three.
    """

    name = "MagCache"

    def __init__(self, ratios: Sequence[float] | Callable[[int], Sequence[float]], threshold: float,
                 max_consecutive_skips: int, retention_ratio: float, calls_per_step: int = 1) -> None:
        super().__init__(calls_per_step)
        self._ratio_source = ratios
        self.threshold = float(threshold)
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.retention_ratio = float(retention_ratio)
        self.ratios: list[float] = []

    def _reset_section(self) -> None:
        src = self._ratio_source
        table = src(self._num_steps) if callable(src) else src
        self.ratios = resample_ratios(list(table), self._num_steps)
        self._acc_ratio, self._acc_err, self._acc_steps = 1.0, 0.0, 0

    def _decide(self, step: int, state: _PassState, hidden: torch.Tensor, temb: torch.Tensor,
                first_block: nn.Module, leading: bool) -> bool:
        if not leading:
            return self._step_decision
        retained = step < max(1, int(self.retention_ratio * self._num_steps))
        gamma = self.ratios[step] if step < len(self.ratios) else 1.0
        skip = False
        if not (self._is_forced(step) or retained):
            self._acc_ratio *= gamma
            self._acc_err += abs(1.0 - self._acc_ratio)
            self._acc_steps += 1
            skip = (self._acc_err <= self.threshold and self._acc_steps <= self.max_consecutive_skips
                    and abs(1.0 - gamma) <= MAGCACHE_MAX_STEP_DEVIATION)
        if not skip:
            self._acc_ratio, self._acc_err, self._acc_steps = 1.0, 0.0, 0
        self.trace[-1].append(StepTrace(step, not skip, accumulated=self._acc_err, mag_ratio=gamma))
        return not skip


# ------------------------------------------------------------------------------------------------------------
class MagnitudeRecorder(StepCache):
    """Never skips; records the magnitude ratio of consecutive residuals (leading pass) for calibration.

    ratio_t = mean over tokens of ||r_t|| / ||r_(t-1)|| (L2 over channels, float32), as MagCache defines it.
    Sections are delimited by start_section or, when attached outside the engine, automatically every
    `num_steps` steps.
    """

    name = "MagnitudeRecorder"

    def __init__(self, num_steps: int | None = None, calls_per_step: int = 1) -> None:
        super().__init__(calls_per_step, default_num_steps=num_steps)
        self.ratio_log: list[list[float]] = []

    def _reset_section(self) -> None:
        self.ratio_log.append([1.0])

    def _decide(self, step: int, state: _PassState, hidden: torch.Tensor, temb: torch.Tensor,
                first_block: nn.Module, leading: bool) -> bool:
        if leading:
            self.trace[-1].append(StepTrace(step, True))
        return True

    def _on_residual(self, step: int, pass_index: int, residual: torch.Tensor,
                     previous: torch.Tensor | None) -> None:
        if pass_index != 0 or previous is None:
            return
        ratio = (residual.float().norm(dim=-1) / previous.float().norm(dim=-1)).mean().item()
        self.ratio_log[-1].append(ratio)
        self.trace[-1][-1].mag_ratio = ratio

    def mean_ratios(self) -> list[float]:
        """Per-step mean over the recorded sections (complete sections only); entry 0 is 1.0."""
        full = [r for r in self.ratio_log if len(r) == self._num_steps]
        if not full:
            raise RuntimeError("no complete section was recorded")
        return [sum(col) / len(col) for col in zip(*full)]


# ------------------------------------------------------------------------------------------------------------
def calls_per_step(params: GenerationParams) -> int:
    """Transformer calls per sampler step: the denoiser adds an unconditional call when cfg != 1."""
    return 1 if params.cfg == 1.0 else 2


def make_step_cache(params: GenerationParams, ratios: Sequence[float] | None = None) -> StepCache | None:
    """The cache a job asks for (None for CacheType.NONE). `ratios` overrides MagCache's table (calibrated
    ratios of another model); by default the table of the job's transformer kind is used."""
    cps = calls_per_step(params)
    if params.cache_type == CacheType.NONE:
        return None
    if params.cache_type == CacheType.TEACACHE:
        return TeaCache(params.teacache_threshold, calls_per_step=cps)
    if params.cache_type == CacheType.MAGCACHE:
        kind = params.transformer_kind
        source: Sequence[float] | Callable[[int], Sequence[float]]
        source = list(ratios) if ratios is not None else (lambda n: load_magcache_ratios(kind, n))
        return MagCache(source, params.magcache_threshold, params.magcache_max_consecutive_skips,
                        params.magcache_retention_ratio, calls_per_step=cps)
    raise ValueError(f"unknown cache type {params.cache_type!r}")
