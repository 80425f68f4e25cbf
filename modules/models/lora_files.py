"""The LoRA folder without PyTorch: which files it holds, which file a LoRA name means, and whether a file is a
LoRA this app can apply to the selected transformer.

Apart from lora.py (which reads and applies LoRAs with torch) so that the Generate form can list and check the
folder on every page load, and the input checker can refuse a bad LoRA when a job is added, without importing
torch or safetensors (start-up stays light, tests/ui/test_startup.py). Everything about a file's *layout* lives
here: the key vocabulary of the supported formats, how a file's modules map onto diffusers' modules
(`plan_lora`), and whether the result fits a transformer's Linear layers (`check_layers`); lora.py only reads
the tensors and applies them. A file is checked from its safetensors header alone (key names, dtypes, shapes),
and the transformer's layer shapes come from its config.json (`transformer_layers`), so no weights load.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.models.registry import ModelSet, TransformerKind, transformer_config

log = logging.getLogger(__name__)

LORA_SUFFIX = ".safetensors"

Layers = Mapping[str, tuple[int, int]]
"""(in_features, out_features) of a transformer's nn.Linear modules, by diffusers module name."""


class LoraFormatError(ValueError):
    """A LoRA file that cannot be used; the message names the file."""


def list_loras(lora_dir: Path) -> list[str]:
    """File names of the LoRAs in the folder (safetensors only), sorted case-insensitively."""
    lora_dir = Path(lora_dir)
    if not lora_dir.is_dir():
        return []
    return sorted((p.name for p in lora_dir.iterdir() if p.is_file() and p.suffix.lower() == LORA_SUFFIX
                   and not p.name.startswith(".")), key=str.lower)


def resolve_lora_path(name: str, lora_dir: Path) -> Path:
    """The file for a LoraSpec name; only plain file names inside the LoRA folder are accepted."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise LoraFormatError(f"{name}: a LoRA is named by its file name in the LoRA folder, not a path")
    path = Path(lora_dir) / name
    if path.suffix.lower() != LORA_SUFFIX:
        raise LoraFormatError(f"{name}: only .safetensors LoRA files are loaded")
    if not path.is_file():
        raise LoraFormatError(f"{name}: not found in the LoRA folder {lora_dir}")
    return path


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
QKV, QKV_MLP, SWAP = "qkv", "qkv_mlp", "swap"
_REFINER = "txt_in.individual_token_refiner.blocks.{i}"
_D_REFINER = "context_embedder.token_refiner.refiner_blocks.{i}"
_ORIGINAL_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "double_blocks.{i}.img_attn_qkv": (QKV, ("transformer_blocks.{i}.attn.to_q", "transformer_blocks.{i}.attn.to_k",
                                              "transformer_blocks.{i}.attn.to_v")),
    "double_blocks.{i}.txt_attn_qkv": (QKV, ("transformer_blocks.{i}.attn.add_q_proj",
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
    "single_blocks.{i}.linear1": (QKV_MLP, ("single_transformer_blocks.{i}.attn.to_q",
                                             "single_transformer_blocks.{i}.attn.to_k",
                                             "single_transformer_blocks.{i}.attn.to_v",
                                             "single_transformer_blocks.{i}.proj_mlp")),
    "single_blocks.{i}.linear2": ("", ("single_transformer_blocks.{i}.proj_out",)),
    "single_blocks.{i}.modulation.linear": ("", ("single_transformer_blocks.{i}.norm.linear",)),
    f"{_REFINER}.self_attn_qkv": (QKV, (f"{_D_REFINER}.attn.to_q", f"{_D_REFINER}.attn.to_k",
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
    "final_layer.adaLN_modulation.1": (SWAP, ("norm_out.linear",)),
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
    kind: str  # "" (one target), QKV, QKV_MLP or SWAP
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


# --- the safetensors container -----------------------------------------------------------------------------

def check_container(path: Path) -> None:
    """The cheap checks before any parsing: a .safetensors file, not a pickle, a plausible header length."""
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


_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


@dataclass(frozen=True)
class SafetensorsHeader:
    shapes: dict[str, tuple[int, ...]]  # tensor name -> shape
    metadata: dict[str, str]


def read_header(path: Path) -> SafetensorsHeader:
    """A safetensors file's tensor shapes and metadata from its JSON header, checked as the safetensors library
    checks it on open (known dtypes, each tensor's byte span matching its shape, spans tiling the data)."""
    path = Path(path)
    name = path.name
    check_container(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        raw = fh.read(header_len)

    def bad(why: str) -> LoraFormatError:
        return LoraFormatError(f"{name}: not a valid safetensors file ({why})")

    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("the header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ is not a map of strings")
    shapes: dict[str, tuple[int, ...]] = {}
    spans: list[tuple[int, int]] = []
    for key, info in header.items():
        dtype = info.get("dtype") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (dtype not in _DTYPE_BYTES or not isinstance(shape, list)
                or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and o >= 0 for o in offsets)):
            raise bad(f"tensor {key!r} has no valid dtype, shape and offsets")
        begin, end = offsets
        if end - begin != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise bad(f"tensor {key!r}: its byte span does not match its shape")
        shapes[key] = tuple(shape)
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise bad("the tensors' byte spans overlap or leave gaps")
        position = end
    if position != size - 8 - header_len:
        raise bad("the data is truncated or has trailing bytes")
    return SafetensorsHeader(shapes, {str(k): v for k, v in metadata.items()})


# --- a file's modules onto diffusers' modules ----------------------------------------------------------------

_PREFIXES = ("base_model.model.", "transformer.", "diffusion_model.", "model.diffusion_model.")
_PART_SUFFIXES = {
    ".lora_A.weight": "A", ".lora_B.weight": "B", ".lora_down.weight": "A", ".lora_up.weight": "B",
    ".lora_A.default.weight": "A", ".lora_B.default.weight": "B", ".alpha": "alpha",
}


@dataclass(frozen=True)
class LoraModule:
    """One module of a LoRA file: its tensors' keys and where its matrices go in diffusers' transformer.

    The down (A) matrix is shared by every target; the up (B) matrix is cut by rows into `splits`, one part per
    target (after swapping its halves when `kind` is SWAP)."""

    module: str  # as the file names it, prefix stripped
    a_key: str
    b_key: str
    alpha_key: str | None
    rank: int
    in_features: int
    kind: str
    targets: tuple[str, ...]
    splits: tuple[int, ...]


@dataclass(frozen=True)
class LoraPlan:
    """A file's LoRA modules in diffusers' layout; `default_alpha` applies to modules without an alpha key."""

    name: str
    modules: tuple[LoraModule, ...]
    default_alpha: float | None

    def target_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) each targeted diffusers module must have."""
        return {t: (m.in_features, rows) for m in self.modules for t, rows in zip(m.targets, m.splits)}


def _metadata_alpha(metadata: Mapping[str, str]) -> float | None:
    raw = metadata.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        value = json.loads(raw).get("lora_alpha")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _splits(rows: int, kind: str, hidden_size: int | None, name: str, module: str) -> tuple[int, ...]:
    if kind == QKV:
        if rows % 3:
            raise LoraFormatError(f"{name}: {module} has {rows} output rows, not divisible into q, k, v")
        return (rows // 3,) * 3
    if kind == QKV_MLP:
        h = hidden_size if hidden_size else rows // 7  # HunyuanVideo: mlp = 4 * hidden -> 3h + 4h rows
        if h <= 0 or rows <= 3 * h:
            raise LoraFormatError(f"{name}: {module} has {rows} output rows, cannot split q, k, v, mlp")
        return (h, h, h, rows - 3 * h)
    if kind == SWAP and rows % 2:
        raise LoraFormatError(f"{name}: {module} has {rows} output rows, not divisible into shift, scale")
    return (rows,)


def plan_lora(name: str, shapes: Mapping[str, Sequence[int]], metadata: Mapping[str, str],
              hidden_size: int | None = None) -> LoraPlan:
    """Map a file's tensors (by key and shape) onto diffusers' modules; LoraFormatError when the file is no LoRA
    in a supported format (module docstring of lora.py). `hidden_size` (heads * head dim) splits fused
    single-block projections; without it one is inferred from a fused double-block qkv, else mlp ratio 4."""
    if not shapes:
        raise LoraFormatError(f"{name}: contains no tensors")
    if any(k.endswith((".dora_scale", ".lora_magnitude_vector")) or ".lora_magnitude_vector." in k for k in shapes):
        raise LoraFormatError(f"{name}: DoRA LoRAs are not supported")

    groups: dict[str, dict[str, str]] = {}  # module -> part -> key
    resolved: dict[str, _Resolved] = {}
    unknown: list[str] = []
    text_encoder: list[str] = []
    for key in shapes:
        suffix = next((s for s in _PART_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            unknown.append(key)
            continue
        module = key[: -len(suffix)]
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
        groups.setdefault(module, {})[_PART_SUFFIXES[suffix]] = key
        resolved[module] = res

    if text_encoder:
        log.debug("%s: ignoring %d text-encoder LoRA tensors (only the transformer takes LoRAs)",
                  name, len(text_encoder))
    if not groups:
        sample = ", ".join(sorted(unknown)[:3])
        raise LoraFormatError(
            f"{name}: not a LoRA in a supported format (diffusers/PEFT 'transformer.', HunyuanVideo / "
            f"diffusion-pipe 'diffusion_model.', musubi-tuner 'lora_unet_'); first keys: {sample}")
    if unknown:
        log.debug("%s: ignoring %d tensors of unknown modules, e.g. %s", name, len(unknown),
                  ", ".join(sorted(unknown)[:3]))

    if hidden_size is None:  # infer from a fused double-block qkv when present
        for module, parts in groups.items():
            if resolved[module].kind == QKV and module.startswith("double_blocks") and "B" in parts:
                hidden_size = shapes[parts["B"]][0] // 3
                break

    modules: list[LoraModule] = []
    seen: set[str] = set()
    for module, parts in groups.items():
        if "A" not in parts or "B" not in parts:
            raise LoraFormatError(f"{name}: module {module} lacks its "
                                  f"{'down/A' if 'A' not in parts else 'up/B'} matrix")
        a, b = tuple(shapes[parts["A"]]), tuple(shapes[parts["B"]])
        if len(a) != 2 or len(b) != 2 or a[0] != b[1]:
            raise LoraFormatError(f"{name}: module {module} has inconsistent LoRA shapes "
                                  f"{a} / {b} (only Linear LoRAs are supported)")
        res = resolved[module]
        for target in res.targets:
            if target in seen:
                raise LoraFormatError(f"{name}: module {target} appears twice (mixed key layouts?)")
            seen.add(target)
        modules.append(LoraModule(module, parts["A"], parts["B"], parts.get("alpha"), a[0], a[1], res.kind,
                                  res.targets, _splits(b[0], res.kind, hidden_size, name, module)))
    return LoraPlan(name, tuple(modules), _metadata_alpha(metadata))


# --- fitting a transformer ------------------------------------------------------------------------------------

def check_layers(name: str, target_shapes: Mapping[str, tuple[int, int]], layers: Layers) -> list[str]:
    """Raise LoraFormatError when the LoRA does not fit the transformer's Linear layers (a matrix of another size,
    or no module of it exists there); returns the targets the transformer lacks (ignored, with a warning)."""
    missing: list[str] = []
    for target, (n_in, n_out) in target_shapes.items():
        layer = layers.get(target)
        if layer is None:
            missing.append(target)
        elif layer != (n_in, n_out):
            raise LoraFormatError(f"{name}: made for a different model: {target} is {layer[0]}->{layer[1]} here, "
                                  f"the LoRA expects {n_in}->{n_out}")
    if len(missing) == len(target_shapes):
        raise LoraFormatError(f"{name}: none of its modules exist in this transformer (e.g. {', '.join(missing[:3])})")
    return missing


def transformer_layers(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) of every nn.Linear of diffusers' HunyuanVideoFramepackTransformer3DModel built from `config`
    (its config.json), by module name; tests/features/test_lora_check.py compares it with the loaded model."""
    h = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    mlp = int(h * float(config.get("mlp_ratio", 4.0)))
    text, pooled = int(config["text_embed_dim"]), int(config["pooled_projection_dim"])
    t_freq = 256  # diffusers' sinusoidal timestep projection width
    out: dict[str, tuple[int, int]] = {}

    def embedder(prefix: str, n_in: int) -> None:
        out[f"{prefix}.linear_1"], out[f"{prefix}.linear_2"] = (n_in, h), (h, h)

    embedder("context_embedder.time_text_embed.timestep_embedder", t_freq)
    embedder("context_embedder.time_text_embed.text_embedder", text)
    out["context_embedder.proj_in"] = (text, h)
    for i in range(int(config.get("num_refiner_layers", 2))):
        p = f"context_embedder.token_refiner.refiner_blocks.{i}"
        for m in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0"):
            out[f"{p}.{m}"] = (h, h)
        # The token refiner's MLP ratio is fixed at 4 in diffusers, whatever the config's mlp_ratio.
        out[f"{p}.ff.net.0.proj"], out[f"{p}.ff.net.2"] = (h, 4 * h), (4 * h, h)
        out[f"{p}.norm_out.linear"] = (h, 2 * h)
    if config.get("has_image_proj", False):
        proj = int(config.get("image_proj_dim", 1152))
        out["image_projection.up"], out["image_projection.down"] = (proj, 3 * h), (3 * h, h)
    embedder("time_text_embed.timestep_embedder", t_freq)
    embedder("time_text_embed.text_embedder", pooled)
    if config.get("guidance_embeds", True):
        embedder("time_text_embed.guidance_embedder", t_freq)
    for i in range(int(config["num_layers"])):
        p = f"transformer_blocks.{i}"
        out[f"{p}.norm1.linear"] = out[f"{p}.norm1_context.linear"] = (h, 6 * h)
        for m in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"):
            out[f"{p}.attn.{m}"] = (h, h)
        for ff in ("ff", "ff_context"):
            out[f"{p}.{ff}.net.0.proj"], out[f"{p}.{ff}.net.2"] = (h, mlp), (mlp, h)
    for i in range(int(config["num_single_layers"])):
        p = f"single_transformer_blocks.{i}"
        for m in ("attn.to_q", "attn.to_k", "attn.to_v"):
            out[f"{p}.{m}"] = (h, h)
        out[f"{p}.norm.linear"] = (h, 3 * h)
        out[f"{p}.proj_mlp"], out[f"{p}.proj_out"] = (h, mlp), (h + mlp, h)
    patch = int(config.get("patch_size_t", 1)) * int(config.get("patch_size", 2)) ** 2
    out["norm_out.linear"] = (h, 2 * h)
    out["proj_out"] = (h, patch * int(config.get("out_channels") or config["in_channels"]))
    return out


def hidden_size_of(layers: Layers) -> int | None:
    """heads * head dim: the width of the attention projections (splits fused single-block projections)."""
    q = layers.get("single_transformer_blocks.0.attn.to_q") or layers.get("transformer_blocks.0.attn.to_q")
    return q[1] if q else None


# --- the checks the app runs -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoraContext:
    """Where the LoRA files are and which model set their shapes must fit (from the settings)."""

    folder: Path
    model_set: ModelSet = ModelSet.REAL
    hf_home: Path | None = None

    def layers(self, kind: TransformerKind = TransformerKind.ORIGINAL) -> Layers | None:
        """The transformer's Linear shapes from its config.json; None while it is not downloaded (then only the
        file's own format is checked before a job runs; the shapes are checked when the model loads)."""
        config = transformer_config(kind, self.model_set, self.hf_home)
        return transformer_layers(config) if config is not None else None


def check_lora_file(path: Path, layers: Layers | None) -> None:
    """LoraFormatError (naming the file) unless the file is a LoRA in a supported format that fits `layers`;
    reads the header only."""
    path = Path(path)
    header = read_header(path)
    plan = plan_lora(path.name, header.shapes, header.metadata, hidden_size_of(layers) if layers else None)
    if layers is not None:
        check_layers(path.name, plan.target_shapes(), layers)


def check_lora(name: str, context: LoraContext, kind: TransformerKind = TransformerKind.ORIGINAL) -> None:
    """The LoRA a job names (a file name in the folder) is usable with the job's transformer; LoraFormatError.

    A plain name whose file is not in the folder (yet) passes: a queued job may name a file copied in later, and
    an imported queue names another machine's files; the job refuses it when it runs if it is still missing."""
    if Path(name).name == name and name not in (".", "..") and not (Path(context.folder) / name).exists():
        return
    check_lora_file(resolve_lora_path(name, context.folder), context.layers(kind))


@dataclass(frozen=True)
class LoraFile:
    name: str
    problem: str | None  # why it cannot be used (a sentence naming the file); None when usable


def scan_loras(context: LoraContext, kind: TransformerKind = TransformerKind.ORIGINAL) -> list[LoraFile]:
    """Every LoRA file of the folder, checked (header only) against the transformer; list_loras' order."""
    layers = context.layers(kind)
    found: list[LoraFile] = []
    for name in list_loras(context.folder):
        try:
            check_lora_file(context.folder / name, layers)
        except (LoraFormatError, OSError) as exc:  # OSError: unreadable, or removed while listing
            found.append(LoraFile(name, str(exc) if isinstance(exc, LoraFormatError) else f"{name}: {exc}"))
        else:
            found.append(LoraFile(name, None))
    return found
