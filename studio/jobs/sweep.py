"""Start-up clean-up of what a killed process left behind, run by the process that holds the worker lock,
before its worker starts (QueueService.start).

    jobs/<id>/ without a row        an add or import killed before its transaction committed
    jobs/.import-*/                 staging folders (staging.py)
    .<stem>.<hex>.part<suffix>      temporary files of atomic_output (modules/media/video_io.py) in the output
                                    folders, in job folders and in kept-inputs/ (kept_inputs.py)

It never removes what a row refers to (decided while holding the database's write lock, so no add or import
can commit in between), a staging folder another process is filling (it needs the staging lock exclusively),
or a temporary file someone is writing (atomic_output holds a lock on it while it writes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from modules.media.file_lock import FileLock
from modules.media.video_io import is_partial_name, remove_abandoned_partial
from studio.jobs import files
from studio.jobs.staging import STAGING_PREFIX
from studio.jobs.store import JobStore
from studio.paths import DataPaths

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    job_dirs: list[Path] = field(default_factory=list)
    staging_dirs: list[Path] = field(default_factory=list)
    partial_files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why something was left alone

    @property
    def removed(self) -> list[Path]:
        return [*self.job_dirs, *self.staging_dirs, *self.partial_files]


def sweep(store: JobStore, paths: DataPaths, output_dirs: Iterable[Path]) -> SweepReport:
    report = SweepReport()
    jobs_dir = paths.jobs_dir
    if jobs_dir.is_dir():
        _sweep_staging(paths, report)
        kept = _sweep_job_dirs(store, jobs_dir, report)
        for job_dir in kept:
            _sweep_partials(job_dir.rglob("*"), report)
    for folder in dict.fromkeys(Path(d).resolve() for d in [*output_dirs, paths.kept_inputs_dir]):
        if folder.is_dir():
            _sweep_partials(folder.iterdir(), report)
    _log(report)
    return report


def _sweep_staging(paths: DataPaths, report: SweepReport) -> None:
    lock = FileLock(paths.staging_lock)
    if not lock.acquire():
        report.skipped.append("another process is adding or importing jobs: staging folders left for the next start")
        return
    try:
        for d in sorted(paths.jobs_dir.iterdir()):
            if d.name.startswith(STAGING_PREFIX) and d.is_dir() and not d.is_symlink():
                if files.remove_tree(d):
                    report.staging_dirs.append(d)
    finally:
        lock.release()


def _sweep_job_dirs(store: JobStore, jobs_dir: Path, report: SweepReport) -> list[Path]:
    """Removes job folders no row refers to (by id or by path); returns the folders rows refer to."""
    kept = []
    with store.write_locked() as refs:
        referenced = {Path(p).resolve() for p in refs.values()}
        for d in sorted(jobs_dir.iterdir()):
            if d.name.startswith(".") or not d.is_dir() or d.is_symlink():
                continue
            if d.name in refs or d.resolve() in referenced:
                kept.append(d)
            elif files.remove_tree(d):
                report.job_dirs.append(d)
    return kept


def _sweep_partials(candidates: Iterable[Path], report: SweepReport) -> None:
    for p in candidates:
        if not is_partial_name(p.name) or p.is_symlink() or not p.is_file():
            continue
        try:
            if remove_abandoned_partial(p):
                report.partial_files.append(p)
            else:
                report.skipped.append(f"{p}: being written")
        except OSError as exc:
            log.warning("could not remove %s: %s", p, exc)


def _log(report: SweepReport) -> None:
    for what, items in (("job folder(s) without a queue row", report.job_dirs),
                        ("staging folder(s) of an interrupted add or import", report.staging_dirs),
                        ("partial file(s) of an interrupted write", report.partial_files)):
        if items:
            shown = ", ".join(str(p) for p in items[:20]) + (f" and {len(items) - 20} more" if len(items) > 20 else "")
            log.warning("start-up sweep removed %d %s: %s", len(items), what, shown)
    for why in report.skipped:
        log.info("start-up sweep left alone: %s", why)
