"""Housekeeping: clear the post-processing temp folder, save results to the permanent folder."""

from __future__ import annotations

import logging
import re
import shutil
import time
import uuid
from pathlib import Path

from modules.media.video_io import atomic_output

from .common import PostProcessError

log = logging.getLogger(__name__)


def clear_folder(folder: Path) -> int:
    """Delete everything inside `folder` (not the folder itself). Returns the number of entries removed."""
    folder = Path(folder)
    if not folder.exists():
        return 0
    if not folder.is_dir():
        raise PostProcessError(f"{folder} is not a folder")
    resolved = folder.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise PostProcessError(f"refusing to clear {resolved}")
    removed = 0
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    log.info("cleared %d entries from %s", removed, folder)
    return removed


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    """`<stem>_<time>_<id><suffix>` in `folder`: never collides, never uses unsanitised user text."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:64].strip("_") or "video"
    return Path(folder) / f"{clean}_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:6]}{suffix}"


def save_to_folder(path: Path, folder: Path) -> Path:
    """Copy a processed file to the permanent folder under a unique name (atomically). Returns the copy."""
    path = Path(path)
    if not path.is_file():
        raise PostProcessError(f"{path.name}: nothing to save (file not found)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = unique_path(folder, path.stem, path.suffix)
    with atomic_output(target) as tmp:
        shutil.copyfile(path, tmp)
    log.info("saved %s -> %s", path.name, target)
    return target
