"""An advisory OS lock on a file, shared or exclusive. The OS drops it when its holder dies, even by kill -9,
so a lock that can be taken tells that nobody alive holds it.

POSIX uses flock(). Windows' msvcrt offers exclusive byte-range locks only: a shared holder locks one byte at
a random offset and an exclusive holder the whole range, which conflicts with every shared byte.

Why not the `filelock` package: its FileLock is exclusive only, and these locks need shared holders (every add
or import holds the staging lock shared while the start-up sweep takes it exclusively; a `.part` writer locks
the partial file itself, which the sweep probes). filelock's ReadWriteLock is a SQLite database beside the
data, not a lock on the file in question. The queue's worker lock, exclusive only, does use filelock
(studio/jobs/service.py).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import IO

_SPAN = 1 << 30  # Windows: the byte range an exclusive holder locks


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self, *, shared: bool = False, blocking: bool = False) -> bool:
        """Takes the lock (creating the file if needed); False when it is held elsewhere and not blocking."""
        if self._fh is not None:
            raise RuntimeError(f"{self.path.name}: lock already held by this object")
        fh = open(self.path, "a+b")
        try:
            ok = _lock_windows(fh, shared, blocking) if os.name == "nt" else _lock_posix(fh, shared, blocking)
        except BaseException:
            fh.close()
            raise
        if not ok:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock
            self._fh = None

    def same_file_as_path(self) -> bool:
        """Whether the locked file is still the one at `path` (it may have been removed and re-created)."""
        if self._fh is None:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        fst = os.fstat(self._fh.fileno())
        return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _lock_posix(fh: IO[bytes], shared: bool, blocking: bool) -> bool:
    import fcntl

    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    try:
        fcntl.flock(fh.fileno(), flags)
    except BlockingIOError:
        return False
    return True


def _lock_windows(fh: IO[bytes], shared: bool, blocking: bool) -> bool:  # pragma: no cover
    import msvcrt
    import time

    while True:
        fh.seek(random.randrange(1, _SPAN) if shared else 0)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1 if shared else _SPAN)
            return True
        except OSError:
            if not blocking:
                return False
            time.sleep(0.1)  # msvcrt has no wait-for-unlock call
