"""A full data directory, recognised once: OSError ENOSPC/EDQUOT (file writes, PyAV, ffmpeg) and SQLite's
"database or disk is full" all become StorageFullError, which the API answers with 507."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator

_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)

STORAGE_FULL_MESSAGE = ("the data directory is full: free some space (old outputs, finished jobs, the temp folder) "
                        "and try again")


class StorageFullError(OSError):
    """No space left where the queue keeps its database and files."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(errno.ENOSPC, f"no space left on device: {STORAGE_FULL_MESSAGE}"
                                       + (f" ({detail})" if detail else ""))

    def __str__(self) -> str:
        return str(self.strerror)


def is_storage_full(exc: BaseException) -> bool:
    """Whether exc, or an exception it was raised from, says the disk (or quota) is full."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _FULL_ERRNOS:
            return True
        if isinstance(cur, sqlite3.Error) and (getattr(cur, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                                               or "database or disk is full" in str(cur)):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


@contextlib.contextmanager
def storage_full_as_error() -> Iterator[None]:
    """Re-raises a disk-full failure of the block as StorageFullError; anything else passes unchanged."""
    try:
        yield
    except StorageFullError:
        raise
    except (OSError, sqlite3.Error) as exc:
        if is_storage_full(exc):
            raise StorageFullError(str(exc)) from exc
        raise
