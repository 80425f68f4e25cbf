"""LoRAs for the FramePack transformer: read three file formats, apply several at once without reloads.

Formats (safetensors only; the key layout is detected per key after stripping the prefix):

* diffusers / PEFT: ``transformer.<diffusers module>.lora_A.weight`` / ``.lora_B.weight`` (optional
  ``.alpha`` keys, or ``lora_alpha`` in the file's ``lora_adapter_metadata``; default alpha = rank).
* original HunyuanVideo / diffusion-pipe: ``diffusion_model.<original module>.lora_A.weight`` / ``lora_B``
  (or ``lora_down`` / ``lora_up``), e.g. ``double_blocks.0.img_attn_qkv``. Fused projections are split onto
  diffusers' modules: ``img_attn_qkv`` -> ``attn.to_q/to_k/to_v``, ``txt_attn_qkv`` ->
  ``attn.add_q_proj/add_k_proj/add_v_proj``, single-block ``linear1`` -> ``attn.to_q/to_k/to_v`` +
  ``proj_mlp`` (rows h, h, h, rest), the token refiner's ``self_attn_qkv`` likewise. The up (B) matrix is cut
  by rows; the down (A) matrix is shared, which is exact because the fused delta is ``B @ A``.
  ``final_layer.adaLN_modulation.1`` has its (shift, scale) halves swapped into diffusers' (scale, shift).
* musubi-tuner / kohya: ``lora_unet_<module with dots as underscores>.lora_down.weight`` / ``.lora_up.weight``
  / ``.alpha``; the module may be in either the original HunyuanVideo layout (HunyuanVideo LoRAs) or the
  diffusers layout (musubi's FramePack LoRAs). ``lora_te*`` text-encoder keys are ignored.

The key vocabulary and the layout (``plan_lora``), the header-only check and the fit check against a
transformer's Linear shapes (``check_layers``) live in lora_files.py without torch: the listing and the
input checker use them when a file is listed or a job added, and this module when it reads the tensors.

:func:`read_lora` returns one normalised format: ``<diffusers module>.lora_A.weight`` ([rank, in]) and
``<diffusers module>.lora_B.weight`` ([out, rank]) with ``alpha / rank`` folded into B, so the weight delta
of a module is ``B @ A`` times the user's weight.

Mechanism: :class:`LoraApplier` registers a forward hook on each targeted ``nn.Linear`` that adds
``sum_i weight_i * (x @ A_i^T) @ B_i^T`` to the module's output. Base parameters are never modified (so
nothing needs restoring, and a weight of 0 is exactly the base model: a LoRA at weight 0 installs nothing).
Re-weighting only changes the scales; a new LoRA set reads only the new files. Hooks follow the module when
it moves between devices (block streaming); the LoRA matrices are copied to the input's device and dtype on
first use there. The state lives on the transformer object, so every LoraApplier made for the same
transformer shares it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from modules.framepack.params import LoraSpec
from modules.models.lora_files import (SWAP, LoraFormatError, check_container, check_layers, plan_lora,
                                       resolve_lora_path)

log = logging.getLogger(__name__)

_STATE_ATTR = "_fpstudio_lora_state"


# --- reading ----------------------------------------------------------------------------------------------

def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for every malformed file
        raise LoraFormatError(f"{path.name}: not a valid safetensors file ({exc})") from exc
    return tensors, metadata


def read_lora(path: Path, hidden_size: int | None = None) -> dict[str, torch.Tensor]:
    """Read a LoRA file in any supported format, normalised (module docstring); LoraFormatError otherwise.

    The layout (which module goes where, row splits) is planned by lora_files.plan_lora from the keys and
    shapes, as the listing checks it; this only cuts the tensors. `hidden_size` (heads * head dim of the
    transformer) splits fused single-block projections; without it HunyuanVideo's mlp ratio 4 is assumed.
    """
    path = Path(path)
    check_container(path)
    tensors, metadata = _load_tensors(path)
    plan = plan_lora(path.name, {k: tuple(t.shape) for k, t in tensors.items()}, metadata, hidden_size)
    out: dict[str, torch.Tensor] = {}
    for m in plan.modules:
        a, b = tensors[m.a_key], tensors[m.b_key]
        alpha = float(tensors[m.alpha_key].item()) if m.alpha_key else plan.default_alpha
        scale = (alpha / m.rank) if alpha is not None else 1.0
        if scale != 1.0:
            b = (b.float() * scale).to(b.dtype)
        if m.kind == SWAP:
            shift, scale_rows = b.chunk(2, dim=0)
            b = torch.cat([scale_rows, shift], dim=0)
        for target, b_part in zip(m.targets, torch.split(b, list(m.splits), dim=0)):
            out[f"{target}.lora_A.weight"] = a
            out[f"{target}.lora_B.weight"] = b_part.contiguous()
    return out


# --- applying ---------------------------------------------------------------------------------------------

@dataclass
class _Entry:
    """One LoRA on one module: the CPU matrices, the user's weight and a copy for the compute device."""

    a: torch.Tensor
    b: torch.Tensor
    scale: float
    _cached: tuple[torch.Tensor, torch.Tensor] | None = None

    def on(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._cached
        if c is None or c[0].device != like.device or c[0].dtype != like.dtype:
            c = (self.a.to(like.device, like.dtype), self.b.to(like.device, like.dtype))
            self._cached = c
        return c


@dataclass
class _Adapter:
    name: str
    file_key: tuple[str, int, int]  # resolved path, size, mtime_ns: a changed file is read again
    modules: dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class _State:
    adapters: dict[str, _Adapter] = field(default_factory=dict)  # by LoRA file name
    entries: dict[str, list[_Entry]] = field(default_factory=dict)  # by module name
    hooks: dict[str, torch.utils.hooks.RemovableHandle] = field(default_factory=dict)
    active: list[LoraSpec] = field(default_factory=list)
    files_read: int = 0  # for tests and logs: how many LoRA files were read from disk


def _make_hook(entries: list[_Entry]):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        for entry in entries:
            a, b = entry.on(x)
            output = output + (F.linear(F.linear(x, a), b) * entry.scale).to(output.dtype)
        return output
    return hook


class LoraApplier:
    """Make a transformer carry exactly a list of LoRAs with weights (module docstring)."""

    def __init__(self, transformer: nn.Module) -> None:
        self.transformer = transformer
        state = getattr(transformer, _STATE_ATTR, None)
        if state is None:
            state = _State()
            # object.__setattr__: nn.Module.__setattr__ would try to register it; this is plain bookkeeping.
            object.__setattr__(transformer, _STATE_ATTR, state)
        self._state: _State = state
        self._linears = {n: m for n, m in transformer.named_modules() if isinstance(m, nn.Linear)}

    @property
    def active(self) -> list[LoraSpec]:
        return [s.model_copy() for s in self._state.active]

    @property
    def files_read(self) -> int:
        return self._state.files_read

    def _hidden_size(self) -> int | None:
        cfg = getattr(self.transformer, "config", None)
        try:
            return int(cfg.num_attention_heads) * int(cfg.attention_head_dim)
        except (AttributeError, TypeError):
            return None

    def _load(self, spec: LoraSpec, lora_dir: Path) -> _Adapter:
        path = resolve_lora_path(spec.name, lora_dir)
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        cached = self._state.adapters.get(spec.name)
        if cached is not None and cached.file_key == key:
            return cached
        tensors = read_lora(path, self._hidden_size())
        self._state.files_read += 1
        layers = {n: (m.in_features, m.out_features) for n, m in self._linears.items()}
        shapes = {k[: -len(".lora_A.weight")]: (a.shape[1], tensors[k.replace(".lora_A.", ".lora_B.")].shape[0])
                  for k, a in tensors.items() if k.endswith(".lora_A.weight")}
        missing = check_layers(spec.name, shapes, layers)  # the same fit check as the listing's
        if missing:
            log.warning("%s: %d LoRA modules do not exist in this transformer and are ignored, e.g. %s",
                        spec.name, len(missing), ", ".join(missing[:3]))
        modules = {t: (tensors[f"{t}.lora_A.weight"], tensors[f"{t}.lora_B.weight"]) for t in shapes
                   if t in layers}
        log.info("LoRA %s: %d modules", spec.name, len(modules))
        return _Adapter(spec.name, key, modules)

    def apply(self, specs: Sequence[LoraSpec] | Iterable[LoraSpec], lora_dir: Path | None) -> None:
        """Carry exactly `specs` (same name twice is an error). Nothing changes if any file is refused."""
        specs = [LoraSpec.model_validate(s) if not isinstance(s, LoraSpec) else s for s in specs]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise LoraFormatError(f"{', '.join(sorted({n for n in names if names.count(n) > 1}))}: "
                                  "the same LoRA is selected twice")
        if specs and lora_dir is None:
            raise LoraFormatError(f"{specs[0].name}: no LoRA folder configured")

        # Read and check everything first, so a bad file leaves the current set untouched.
        adapters = {s.name: self._load(s, Path(lora_dir)) for s in specs}  # type: ignore[arg-type]
        state = self._state
        state.adapters = adapters  # LoRAs no longer selected are dropped (memory)

        per_module: dict[str, list[_Entry]] = {}
        for spec in specs:
            if spec.weight == 0.0:
                continue  # exactly the base model for this LoRA
            for target, (a, b) in adapters[spec.name].modules.items():
                per_module.setdefault(target, []).append(self._entry(spec.name, target, a, b, spec.weight))

        for target in list(state.hooks):
            if target not in per_module:
                state.hooks.pop(target).remove()
                state.entries.pop(target, None)
        for target, new_entries in per_module.items():
            entries = state.entries.get(target)
            if entries is None:
                entries = state.entries[target] = []
                state.hooks[target] = self._linears[target].register_forward_hook(_make_hook(entries))
            entries[:] = new_entries  # the hook closes over this list: update in place
        state.active = [s.model_copy() for s in specs]
        log.info("LoRAs active: %s", ", ".join(f"{s.name}={s.weight:g}" for s in specs) or "none")

    def _entry(self, name: str, target: str, a: torch.Tensor, b: torch.Tensor, weight: float) -> _Entry:
        # Reuse the device copy of an entry that already carries these matrices (re-weighting).
        for old in self._state.entries.get(target, []):
            if old.a is a and old.b is b:
                return _Entry(a, b, float(weight), old._cached)
        return _Entry(a, b, float(weight))

    def clear(self) -> None:
        self.apply([], None)
