"""safetensors files with stable bytes: the same tensors and metadata always give the same file.

`safetensors.torch.save` builds its JSON header from hash maps, so the key order (and with it the bytes)
changes from call to call. Here the header is rewritten with sorted keys; the data section is untouched
(its layout is already fixed by dtype alignment and name), so every reader loads the file as before.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save

_ALIGN = 8  # the format pads the header with spaces so the data starts 8-byte aligned


def stable_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The serialized file, header keys sorted."""
    raw = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % _ALIGN)
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` to `path` (not atomic: callers write to a temporary name; mode 0666 less umask)."""
    Path(path).write_bytes(stable_bytes(tensors, metadata))
