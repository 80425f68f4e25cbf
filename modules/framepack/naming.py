"""Output names: sanitised, unique in their folder, never taken from user text unchecked."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modules.media.file_lock import FileLock

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


def _taken(folders: list[Path], candidate: str, suffixes: tuple[str, ...]) -> bool:
    return any((f / f"{candidate}{s}").exists() for f in folders for s in suffixes)


def unique_stem(folder: Path, stem: str, suffixes: tuple[str, ...] = (".mp4", ".json", ".png"),
                extra_folders: tuple[Path, ...] = ()) -> str:
    """`stem` or `stem_2`, `stem_3`, ... so that no file `<stem><suffix>` exists in `folder` (nor in any of
    `extra_folders`, e.g. a separate metadata directory) yet."""
    stem = sanitize_stem(stem)
    folders = [Path(folder), *(Path(f) for f in extra_folders)]
    candidate, n = stem, 1
    while _taken(folders, candidate, suffixes):
        n += 1
        candidate = f"{stem}_{n}"
    return candidate


CLAIM_SUFFIX = ".claim"


@contextmanager
def claimed_stem(folder: Path, stem: str, suffixes: tuple[str, ...] = (".mp4", ".json", ".png"),
                 extra_folders: tuple[Path, ...] = ()) -> Iterator[str]:
    """unique_stem, held: while the block runs, the stem is reserved by a locked claim file `.<stem>.claim` in
    `folder`, so two processes (the queue worker, `python -m studio generate`) writing into the same folder
    never pick the same name. The OS drops the lock when its holder dies, so a claim left by kill -9 is taken
    over, not honoured."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folders = [folder, *(Path(f) for f in extra_folders)]
    base = sanitize_stem(stem)
    n = 1
    while True:
        candidate = base if n == 1 else f"{base}_{n}"
        n += 1
        if _taken(folders, candidate, suffixes):
            continue
        lock = FileLock(folder / f".{candidate}{CLAIM_SUFFIX}")
        if not lock.acquire():
            continue  # another writer holds this name
        # Checked again while holding the claim: its previous holder may have finished its files meanwhile,
        # or removed the claim file between our open and our lock.
        if lock.same_file_as_path() and not _taken(folders, candidate, suffixes):
            try:
                yield candidate
            finally:
                _drop_claim(lock)
            return
        if lock.same_file_as_path():
            _drop_claim(lock)
        else:
            lock.release()


def _drop_claim(lock: FileLock) -> None:
    # Unlink before unlocking: whoever opens the name afterwards gets a new file (same_file_as_path tells).
    lock.path.unlink(missing_ok=True)
    lock.release()
