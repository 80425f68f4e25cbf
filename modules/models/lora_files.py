"""The LoRA folder without PyTorch: which files it holds and which file a LoRA name means.

Apart from lora.py (which reads and applies LoRAs with torch) so that the Generate form can list the folder
without importing torch; lora.py re-exports every name defined here.
"""

from __future__ import annotations

from pathlib import Path

LORA_SUFFIX = ".safetensors"


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
