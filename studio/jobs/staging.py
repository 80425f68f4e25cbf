"""Where add and import build job folders before they enter the queue: a hidden `jobs/.import-<random>/`.

A folder appears as jobs/<id> only inside the transaction that inserts its row (see `insert`), so a process
killed at any moment leaves complete jobs, or job folders whose rows never committed, or a staging folder:
the start-up sweep (sweep.py) removes the last two. A process holds paths.staging_lock shared while it uses a
staging folder; the sweep deletes staging folders only while it holds that lock exclusively.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from modules.media.file_lock import FileLock
from studio.jobs import files
from studio.jobs.store import JobStore
from studio.paths import DataPaths

log = logging.getLogger(__name__)

STAGING_PREFIX = ".import-"


class Staging:
    """`with Staging(paths) as st:` build folders in st.job_dir(id), then `st.insert(store, rows)`."""

    def __init__(self, paths: DataPaths) -> None:
        self.paths = paths
        self._lock = FileLock(paths.staging_lock)
        self._root: Path | None = None
        self._staged: list[str] = []
        self._moved: list[Path] = []  # in jobs/ but their rows not yet committed

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("Staging used outside its `with` block")
        return self._root

    def __enter__(self) -> Staging:
        self.paths.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire(shared=True, blocking=True)
        try:
            self._root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.paths.jobs_dir))
        except BaseException:
            self._lock.release()
            raise
        return self

    def job_dir(self, job_id: str) -> Path:
        """A new, empty folder to build job `job_id` in."""
        d = self.root / job_id
        d.mkdir()
        self._staged.append(job_id)
        return d

    def final_dir(self, job_id: str) -> Path:
        return self.paths.jobs_dir / job_id

    def insert(self, store: JobStore, rows: list[dict]) -> None:
        """Inserts the rows in one transaction and moves every staged folder into jobs/ inside it."""
        store.insert_many(rows, before_commit=self._publish)
        self._moved.clear()  # committed: the rows own the folders now

    def _publish(self) -> None:
        for job_id in self._staged:
            dest = self.final_dir(job_id)
            move_into_place(self.root / job_id, dest)
            self._moved.append(dest)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            for d in self._moved:  # moved, but the transaction failed: their rows do not exist
                files.remove_tree(d)
            if self._root is not None:
                files.remove_tree(self._root)
        finally:
            self._lock.release()


def move_into_place(src: Path, dest: Path) -> None:
    """One job folder from staging into jobs/ (a rename: same filesystem, nothing copied)."""
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    src.rename(dest)
