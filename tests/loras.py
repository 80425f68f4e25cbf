"""LoRA files for tests, written without torch (numpy through safetensors.numpy): the tiny transformer's shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

H = 20  # the tiny transformer's hidden size (2 heads x 10)
RANK = 4

# diffusers module -> (in, out) of its Linear in the tiny transformer (modules/models/tiny_hub).
TINY_MODULES = {
    "transformer_blocks.0.attn.to_q": (H, H),
    "transformer_blocks.0.ff.net.0.proj": (H, 4 * H),
    "single_transformer_blocks.0.proj_out": (5 * H, H),
    "proj_out": (H, 64),
}


def write_lora(path: Path, modules: dict[str, tuple[int, int]] | None = None, prefix: str = "transformer.",
               rank: int = RANK) -> Path:
    """A diffusers/PEFT-format LoRA on `modules` ((in, out) each; default: fits the tiny transformer)."""
    rng = np.random.default_rng(3)
    tensors: dict[str, np.ndarray] = {}
    for module, (n_in, n_out) in (modules or TINY_MODULES).items():
        tensors[f"{prefix}{module}.lora_A.weight"] = rng.standard_normal((rank, n_in), dtype=np.float32) * 0.1
        tensors[f"{prefix}{module}.lora_B.weight"] = rng.standard_normal((n_out, rank), dtype=np.float32) * 0.1
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def write_wrong_shape_lora(path: Path) -> Path:
    """A well-formed LoRA made for a wider model (hidden size 24): every matrix mismatches the tiny layers."""
    return write_lora(path, {"transformer_blocks.0.attn.to_q": (24, 24), "proj_out": (24, 64)})
