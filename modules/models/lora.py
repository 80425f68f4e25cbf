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
  diffusers layout (musubi's FramePack LoRAs). ``lora_te*`` text-encoder keys are ignored with a warning.

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

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from modules.framepack.params import LoraSpec
from modules.models.lora_files import LORA_SUFFIX, LoraFormatError, resolve_lora_path

log = logging.getLogger(__name__)

_STATE_ATTR = "_fpstudio_lora_state"


# --- module vocabularies ----------------------------------------------------------------------------------

# diffusers HunyuanVideoFramepackTransformer3DModel nn.Linear modules ({i} = block index).
_DIFFUSERS_MODULES: tuple[str, ...] = tuple(
    [f"transformer_blocks.{{i}}.{m}" for m in (
        "norm1.linear", "norm1_context.linear", "attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj",
        "attn.add_k_proj", "attn.add_v_proj", "attn.to_out.0", "attn.to_add_out", "ff.net.0.proj", "ff.net.2",
        "ff_context.net.0.proj", "ff_context.net.2")]
    + [f"single_transformer_blocks.{{i}}.{m}" for m in (
        "attn.to_q", "attn.to_k", "attn.to_v", "norm.linear", "proj_mlp", "proj_out")]
    + [f"context_embedder.token_refiner.refiner_blocks.{{i}}.{m}" for m in (
        "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "ff.net.0.proj", "ff.net.2", "norm_out.linear")]
    + ["context_embedder.proj_in",
       "context_embedder.time_text_embed.timestep_embedder.linear_1",
       "context_embedder.time_text_embed.timestep_embedder.linear_2",
       "context_embedder.time_text_embed.text_embedder.linear_1",
       "context_embedder.time_text_embed.text_embedder.linear_2",
       "time_text_embed.timestep_embedder.linear_1", "time_text_embed.timestep_embedder.linear_2",
       "time_text_embed.text_embedder.linear_1", "time_text_embed.text_embedder.linear_2",
       "time_text_embed.guidance_embedder.linear_1", "time_text_embed.guidance_embedder.linear_2",
       "image_projection.up", "image_projection.down", "norm_out.linear", "proj_out"]
)

# Original HunyuanVideo module -> diffusers module(s). A tuple of targets means "split B by rows":
# QKV = three equal parts; QKV_MLP = three parts of the hidden size, then the rest (single-block linear1).
_QKV, _QKV_MLP, _SWAP = "qkv", "qkv_mlp", "swap"
_REFINER = "txt_in.individual_token_refiner.blocks.{i}"
_D_REFINER = "context_embedder.token_refiner.refiner_blocks.{i}"
_ORIGINAL_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "double_blocks.{i}.img_attn_qkv": (_QKV, ("transformer_blocks.{i}.attn.to_q", "transformer_blocks.{i}.attn.to_k",
                                              "transformer_blocks.{i}.attn.to_v")),
    "double_blocks.{i}.txt_attn_qkv": (_QKV, ("transformer_blocks.{i}.attn.add_q_proj",
                                              "transformer_blocks.{i}.attn.add_k_proj",
                                              "transformer_blocks.{i}.attn.add_v_proj")),
    "double_blocks.{i}.img_attn_proj": ("", ("transformer_blocks.{i}.attn.to_out.0",)),
    "double_blocks.{i}.txt_attn_proj": ("", ("transformer_blocks.{i}.attn.to_add_out",)),
    "double_blocks.{i}.img_mlp.fc1": ("", ("transformer_blocks.{i}.ff.net.0.proj",)),
    "double_blocks.{i}.img_mlp.fc2": ("", ("transformer_blocks.{i}.ff.net.2",)),
    "double_blocks.{i}.txt_mlp.fc1": ("", ("transformer_blocks.{i}.ff_context.net.0.proj",)),
    "double_blocks.{i}.txt_mlp.fc2": ("", ("transformer_blocks.{i}.ff_context.net.2",)),
    "double_blocks.{i}.img_mod.linear": ("", ("transformer_blocks.{i}.norm1.linear",)),
    "double_blocks.{i}.txt_mod.linear": ("", ("transformer_blocks.{i}.norm1_context.linear",)),
    "single_blocks.{i}.linear1": (_QKV_MLP, ("single_transformer_blocks.{i}.attn.to_q",
                                             "single_transformer_blocks.{i}.attn.to_k",
                                             "single_transformer_blocks.{i}.attn.to_v",
                                             "single_transformer_blocks.{i}.proj_mlp")),
    "single_blocks.{i}.linear2": ("", ("single_transformer_blocks.{i}.proj_out",)),
    "single_blocks.{i}.modulation.linear": ("", ("single_transformer_blocks.{i}.norm.linear",)),
    f"{_REFINER}.self_attn_qkv": (_QKV, (f"{_D_REFINER}.attn.to_q", f"{_D_REFINER}.attn.to_k",
                                         f"{_D_REFINER}.attn.to_v")),
    f"{_REFINER}.self_attn_proj": ("", (f"{_D_REFINER}.attn.to_out.0",)),
    f"{_REFINER}.mlp.fc1": ("", (f"{_D_REFINER}.ff.net.0.proj",)),
    f"{_REFINER}.mlp.fc2": ("", (f"{_D_REFINER}.ff.net.2",)),
    f"{_REFINER}.adaLN_modulation.1": ("", (f"{_D_REFINER}.norm_out.linear",)),
    "txt_in.input_embedder": ("", ("context_embedder.proj_in",)),
    "txt_in.t_embedder.mlp.0": ("", ("context_embedder.time_text_embed.timestep_embedder.linear_1",)),
    "txt_in.t_embedder.mlp.2": ("", ("context_embedder.time_text_embed.timestep_embedder.linear_2",)),
    "txt_in.c_embedder.linear_1": ("", ("context_embedder.time_text_embed.text_embedder.linear_1",)),
    "txt_in.c_embedder.linear_2": ("", ("context_embedder.time_text_embed.text_embedder.linear_2",)),
    "time_in.mlp.0": ("", ("time_text_embed.timestep_embedder.linear_1",)),
    "time_in.mlp.2": ("", ("time_text_embed.timestep_embedder.linear_2",)),
    "vector_in.in_layer": ("", ("time_text_embed.text_embedder.linear_1",)),
    "vector_in.out_layer": ("", ("time_text_embed.text_embedder.linear_2",)),
    "guidance_in.mlp.0": ("", ("time_text_embed.guidance_embedder.linear_1",)),
    "guidance_in.mlp.2": ("", ("time_text_embed.guidance_embedder.linear_2",)),
    "final_layer.linear": ("", ("proj_out",)),
    "final_layer.adaLN_modulation.1": (_SWAP, ("norm_out.linear",)),
}


def _pattern(dotted: str, sep: str) -> re.Pattern[str]:
    parts = [re.escape(p) if p != "{i}" else r"(\d+)" for p in dotted.split(".")]
    return re.compile("^" + re.escape(sep).join(parts) + "$")


_DOTTED = [(_pattern(m, "."), m, None) for m in _DIFFUSERS_MODULES] + \
          [(_pattern(m, "."), m, spec) for m, spec in _ORIGINAL_MODULES.items()]
_UNDERSCORED = [(_pattern(m, "_"), m, None) for m in _DIFFUSERS_MODULES] + \
               [(_pattern(m, "_"), m, spec) for m, spec in _ORIGINAL_MODULES.items()]


@dataclass
class _Resolved:
    kind: str  # "" (one target), _QKV, _QKV_MLP or _SWAP
    targets: tuple[str, ...]


def _resolve(module: str, underscored: bool) -> _Resolved | None:
    for pattern, template, spec in (_UNDERSCORED if underscored else _DOTTED):
        match = pattern.match(module)
        if match is None:
            continue
        fill = (lambda s: s.replace("{i}", match.group(1))) if match.groups() else (lambda s: s)
        if spec is None:
            return _Resolved("", (fill(template),))
        kind, targets = spec
        return _Resolved(kind, tuple(fill(t) for t in targets))
    return None


# --- reading ----------------------------------------------------------------------------------------------

_PREFIXES = ("base_model.model.", "transformer.", "diffusion_model.", "model.diffusion_model.")
_PART_SUFFIXES = {
    ".lora_A.weight": "A", ".lora_B.weight": "B", ".lora_down.weight": "A", ".lora_up.weight": "B",
    ".lora_A.default.weight": "A", ".lora_B.default.weight": "B", ".alpha": "alpha",
}


def _check_container(path: Path) -> None:
    name = path.name
    if not path.is_file():
        raise LoraFormatError(f"{name}: LoRA file not found")
    if path.suffix.lower() != LORA_SUFFIX:
        raise LoraFormatError(f"{name}: only .safetensors LoRA files are loaded")
    size = path.stat().st_size
    if size < 16:
        raise LoraFormatError(f"{name}: file is empty or truncated, not a safetensors LoRA")
    with path.open("rb") as fh:
        head = fh.read(8)
    # Pickles start with PROTO (0x80); torch.save's zip container with "PK". Never unpickle user files.
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise LoraFormatError(f"{name}: is a pickle / PyTorch checkpoint, not safetensors (renamed?); "
                              "only real safetensors files are loaded, pickles can run code")
    header_len = int.from_bytes(head, "little")
    if header_len <= 0 or header_len > min(size - 8, 100_000_000):
        raise LoraFormatError(f"{name}: not a valid safetensors file (bad header length)")


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for every malformed file
        raise LoraFormatError(f"{path.name}: not a valid safetensors file ({exc})") from exc
    return tensors, metadata


def _metadata_alpha(metadata: dict[str, str]) -> float | None:
    raw = metadata.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        value = json.loads(raw).get("lora_alpha")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _split_rows(b: torch.Tensor, kind: str, n_targets: int, hidden_size: int | None,
                name: str, module: str) -> list[torch.Tensor]:
    rows = b.shape[0]
    if kind == _QKV:
        if rows % 3:
            raise LoraFormatError(f"{name}: {module} has {rows} output rows, not divisible into q, k, v")
        return list(b.chunk(3, dim=0))
    if kind == _QKV_MLP:
        h = hidden_size if hidden_size else rows // 7  # HunyuanVideo: mlp = 4 * hidden -> 3h + 4h rows
        if h <= 0 or rows <= 3 * h:
            raise LoraFormatError(f"{name}: {module} has {rows} output rows, cannot split q, k, v, mlp")
        return list(torch.split(b, [h, h, h, rows - 3 * h], dim=0))
    if kind == _SWAP:
        shift, scale = b.chunk(2, dim=0)
        return [torch.cat([scale, shift], dim=0)]
    assert n_targets == 1
    return [b]


def read_lora(path: Path, hidden_size: int | None = None) -> dict[str, torch.Tensor]:
    """Read a LoRA file in any supported format, normalised (module docstring); LoraFormatError otherwise.

    `hidden_size` (heads * head dim of the transformer) splits fused single-block projections; without it
    HunyuanVideo's mlp ratio 4 is assumed.
    """
    path = Path(path)
    name = path.name
    _check_container(path)
    tensors, metadata = _load_tensors(path)
    if not tensors:
        raise LoraFormatError(f"{name}: contains no tensors")
    if any(k.endswith((".dora_scale", ".lora_magnitude_vector")) or ".lora_magnitude_vector." in k
           for k in tensors):
        raise LoraFormatError(f"{name}: DoRA LoRAs are not supported")

    groups: dict[str, dict[str, torch.Tensor]] = {}
    resolved: dict[str, _Resolved] = {}
    unknown: list[str] = []
    text_encoder: list[str] = []
    for key, tensor in tensors.items():
        part = next((p for s, p in _PART_SUFFIXES.items() if key.endswith(s)), None)
        if part is None:
            unknown.append(key)
            continue
        module = key[: -len(next(s for s in _PART_SUFFIXES if key.endswith(s)))]
        if module.startswith(("lora_te", "text_encoder")):
            text_encoder.append(key)
            continue
        underscored = module.startswith("lora_unet_")
        if underscored:
            module = module[len("lora_unet_"):]
        else:
            for prefix in _PREFIXES:
                if module.startswith(prefix):
                    module = module[len(prefix):]
                    break
        res = _resolve(module, underscored)
        if res is None:
            unknown.append(key)
            continue
        groups.setdefault(module, {})[part] = tensor
        resolved[module] = res

    if text_encoder:
        log.warning("%s: ignoring %d text-encoder LoRA tensors (only the transformer takes LoRAs)",
                    name, len(text_encoder))
    if not groups:
        sample = ", ".join(sorted(unknown)[:3])
        raise LoraFormatError(
            f"{name}: not a LoRA in a supported format (diffusers/PEFT 'transformer.', HunyuanVideo / "
            f"diffusion-pipe 'diffusion_model.', musubi-tuner 'lora_unet_'); first keys: {sample}")
    if unknown:
        log.warning("%s: ignoring %d tensors of unknown modules, e.g. %s", name, len(unknown),
                    ", ".join(sorted(unknown)[:3]))

    if hidden_size is None:  # infer from a fused double-block qkv when present
        for module, parts in groups.items():
            if resolved[module].kind == _QKV and module.startswith("double_blocks") and "B" in parts:
                hidden_size = parts["B"].shape[0] // 3
                break

    default_alpha = _metadata_alpha(metadata)
    out: dict[str, torch.Tensor] = {}
    for module, parts in groups.items():
        if "A" not in parts or "B" not in parts:
            raise LoraFormatError(f"{name}: module {module} lacks its "
                                  f"{'down/A' if 'A' not in parts else 'up/B'} matrix")
        a, b = parts["A"], parts["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise LoraFormatError(f"{name}: module {module} has inconsistent LoRA shapes "
                                  f"{tuple(a.shape)} / {tuple(b.shape)} (only Linear LoRAs are supported)")
        rank = a.shape[0]
        alpha = float(parts["alpha"].item()) if "alpha" in parts else default_alpha
        scale = (alpha / rank) if alpha is not None else 1.0
        if scale != 1.0:
            b = (b.float() * scale).to(b.dtype)
        res = resolved[module]
        for target, b_part in zip(res.targets, _split_rows(b, res.kind, len(res.targets), hidden_size,
                                                           name, module)):
            if f"{target}.lora_A.weight" in out:
                raise LoraFormatError(f"{name}: module {target} appears twice (mixed key layouts?)")
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
        modules: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        missing: list[str] = []
        for k, a in tensors.items():
            if not k.endswith(".lora_A.weight"):
                continue
            target = k[: -len(".lora_A.weight")]
            b = tensors[f"{target}.lora_B.weight"]
            linear = self._linears.get(target)
            if linear is None:
                missing.append(target)
                continue
            if a.shape[1] != linear.in_features or b.shape[0] != linear.out_features:
                raise LoraFormatError(
                    f"{spec.name}: made for a different model: {target} is {linear.in_features}->"
                    f"{linear.out_features} here, the LoRA expects {a.shape[1]}->{b.shape[0]}")
            modules[target] = (a, b)
        if not modules:
            raise LoraFormatError(f"{spec.name}: none of its modules exist in this transformer "
                                  f"(e.g. {', '.join(missing[:3])})")
        if missing:
            log.warning("%s: %d LoRA modules do not exist in this transformer and are ignored, e.g. %s",
                        spec.name, len(missing), ", ".join(missing[:3]))
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
