"""Output names: sanitised, unique in their folder, never taken from user text unchecked."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 80
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def sanitize_stem(text: str) -> str:
    """A file stem of safe characters only ([A-Za-z0-9._-]); never empty, hidden or a reserved name."""
    stem = _UNSAFE.sub("_", text).strip("._-")[:MAX_STEM].strip("._-")
    if not stem or stem.lower() in RESERVED:
        stem = f"video_{stem}" if stem else "video"
    return stem


def default_stem(seed: int) -> str:
    return f"{time.strftime('%Y%m%d_%H%M%S')}_{seed}_{uuid.uuid4().hex[:6]}"


def unique_stem(folder: Path, stem: str, suffixes: tuple[str, ...] = (".mp4", ".json", ".png"),
                extra_folders: tuple[Path, ...] = ()) -> str:
    """`stem` or `stem_2`, `stem_3`, ... so that no file `<stem><suffix>` exists in `folder` (nor in any of
    `extra_folders`, e.g. a separate metadata directory) yet."""
    stem = sanitize_stem(stem)
    folders = [Path(folder), *(Path(f) for f in extra_folders)]
    candidate, n = stem, 1
    while any((f / f"{candidate}{s}").exists() for f in folders for s in suffixes):
        n += 1
        candidate = f"{stem}_{n}"
    return candidate
