"""Faults that used to wedge the worker: a full disk during a job, a BaseException raised by a job."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
from PIL import Image
from fastapi import FastAPI
from fastapi.testclient import TestClient
from queue_fake_engine import FakeEngine
from queue_helpers import wait_for, wait_status

import modules.media.video_io as video_io
from modules.framepack.events import StageEvent
from studio.api_errors import register_error_handlers
from studio.jobs.model import JobStatus
from studio.jobs.service import QueueService
from studio.jobs.storage import StorageFullError
from studio.jobs.store import JobStore
from studio.paths import DataPaths
from studio.settings import Settings


def _p(image: Path, prompt: str, **kw) -> dict:
    return {"prompt": prompt, "start_image": str(image), "total_seconds": 2, "steps": 3, **kw}


class FullDisk:
    """Stands in for a store's SQLite connection: while `full` is set, every statement that writes fails the
    way SQLite fails on a full disk (reads still work, as they do there)."""

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT")

    def __init__(self, db: sqlite3.Connection, refuse: tuple[str, ...] = WRITES) -> None:
        self._db = db
        self.refuse = refuse
        self.full = threading.Event()
        self.refused: list[str] = []

    def execute(self, sql: str, args=()):
        if self.full.is_set() and sql.lstrip().upper().startswith(self.refuse):
            self.refused.append(" ".join(sql.split()))
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, args)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def _fill_disk(store: JobStore, **kw) -> FullDisk:
    disk = FullDisk(store._db, **kw)
    store._db = disk
    return disk


class RunningCounter(FakeEngine):
    """Notes how many rows say RUNNING whenever a job starts (the one starting included)."""

    def __init__(self) -> None:
        super().__init__()
        self.store: JobStore | None = None
        self.running_at_start: list[int] = []

    def generate(self, params, out, cancel):
        self.running_at_start.append(self.store.counts().running)
        yield from super().generate(params, out, cancel)


def _count_finishes(store: JobStore, monkeypatch) -> list[JobStatus]:
    """The statuses the worker tried to record, successful or not, in order."""
    attempts: list[JobStatus] = []
    real_finish = store.finish

    def finish(job_id, status, **kw):
        attempts.append(status)
        return real_finish(job_id, status, **kw)

    monkeypatch.setattr(store, "finish", finish)
    return attempts


def _job_dirs(svc) -> list[str]:
    return sorted(p.name for p in svc.paths.jobs_dir.iterdir())


def test_disk_full_during_a_job_fails_it_as_soon_as_the_store_can_be_written(make_service, image, monkeypatch):
    engine = RunningCounter()
    svc = make_service(engine, start=False)
    engine.store = svc.store
    disk = _fill_disk(svc.store)
    first = svc.add(_p(image, "first"))
    second = svc.add(_p(image, "second"))

    real_encode = video_io.encode_frames
    filled = threading.Event()

    def encode_on_a_filling_disk(path, *args, **kw):
        if filled.is_set():
            return real_encode(path, *args, **kw)
        filled.set()
        disk.full.set()  # the disk fills up while the first job writes its video
        Path(path).write_bytes(b"\0" * 1024)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(video_io, "encode_frames", encode_on_a_filling_disk)
    finish_attempts = _count_finishes(svc.store, monkeypatch)
    svc.start()

    # The worker keeps trying to record the outcome, and runs nothing else meanwhile.
    wait_for(lambda: len(finish_attempts) >= 3)
    assert set(finish_attempts) == {JobStatus.FAILED}
    assert svc.store.status(first) == JobStatus.RUNNING and svc.store.status(second) == JobStatus.PENDING
    assert engine.calls == ["first"]
    # While the disk is full, queue actions say so instead of answering ok and changing nothing.
    with pytest.raises(StorageFullError, match="no space left on device"):
        svc.cancel(first)
    with pytest.raises(StorageFullError):
        svc.add(_p(image, "third"))
    assert _job_dirs(svc) == sorted([first, second])  # the refused add left nothing behind

    disk.full.clear()  # space returns
    wait_status(svc, first, JobStatus.FAILED)
    wait_status(svc, second, JobStatus.COMPLETED)
    job = svc.get(first)
    assert job.error.startswith("no space left on device") and "No space left on device" in job.traceback
    assert engine.running_at_start == [1, 1]  # never two RUNNING rows
    assert not list((svc.paths.root / "outputs").glob(".*.part*"))  # the failed write left no temp file
    # The failed job is an ordinary FAILED job again: retry and delete work.
    assert svc.retry(first)
    wait_status(svc, first, JobStatus.COMPLETED)
    assert svc.remove(first) and svc.get(first) is None


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A real 5 MB filesystem (tmpfs); skipped where this process may not mount one."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_really_full_disk_during_a_job(small_disk, image, monkeypatch):
    """The same story on a real full filesystem: PyAV, file copies and SQLite report it their own way."""
    filler = small_disk / "filler"
    real_encode = video_io.encode_frames
    filled = threading.Event()

    def fill_then_encode(path, *args, **kw):
        if not filled.is_set():  # the first job's video write meets a disk that just filled up
            filled.set()
            with open(filler, "wb") as f, pytest.raises(OSError) as full:
                while True:
                    f.write(b"\0" * 65536)
            assert full.value.errno == errno.ENOSPC
        return real_encode(path, *args, **kw)

    monkeypatch.setattr(video_io, "encode_frames", fill_then_encode)
    engine = RunningCounter()
    svc = QueueService(DataPaths(small_disk / "data"), settings_provider=Settings,
                       engine_provider=lambda _s: engine, poll_interval=0.05, progress_interval=0.0)
    try:
        engine.store = svc.store
        first, second = svc.add(_p(image, "first")), svc.add(_p(image, "second"))
        attempts = _count_finishes(svc.store, monkeypatch)
        svc.start()
        wait_for(lambda: len(attempts) >= 3)
        assert svc.store.status(first) == JobStatus.RUNNING and svc.store.status(second) == JobStatus.PENDING
        with pytest.raises(StorageFullError):
            svc.add(_p(image, "third"))
        filler.unlink()
        wait_status(svc, first, JobStatus.FAILED)
        wait_status(svc, second, JobStatus.COMPLETED)
        assert svc.get(first).error.startswith("no space left on device")
        assert engine.running_at_start == [1, 1]
        assert not [p for p in svc.paths.root.rglob(".*") if p.name != ".keep"]  # no temp file, no staging folder
    finally:
        svc.close()


def test_adding_on_a_full_disk_raises_storage_full_and_leaves_nothing(make_service, image, monkeypatch, tmp_path):
    svc = make_service(start=False)
    kept = svc.add(_p(image, "kept"))
    # Inputs are kept once per content (kept_inputs.py): only an image not kept yet needs a copy.
    other = tmp_path / "other.png"
    Image.new("RGB", (64, 64), (9, 8, 7)).save(other)
    archive = svc.export_json(tmp_path / "q.json")
    archive.write_text(archive.read_text().replace(str(svc.get(kept).params.start_image), str(other)))

    def no_space(src, dst, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    with monkeypatch.context() as m:
        m.setattr(shutil, "copyfile", no_space)  # copying the input into the kept inputs fails
        with pytest.raises(StorageFullError, match="the data directory is full"):
            svc.add(_p(other, "copy fails"))
        with pytest.raises(StorageFullError):
            svc.import_file(archive)

    disk = _fill_disk(svc.store)
    disk.full.set()
    with pytest.raises(StorageFullError):
        svc.add(_p(image, "insert fails"))
    with pytest.raises(StorageFullError):
        svc.import_file(archive)
    assert [j.id for j in svc.list()] == [kept] and _job_dirs(svc) == [kept]


def test_a_failed_commit_does_not_wedge_the_store(tmp_path):
    """SQLite reports a full disk at COMMIT too; the transaction must not stay open and refuse every later one."""
    st = JobStore(tmp_path / "queue.db")
    st.insert("a" * 12, "Original", "a", "{}", str(tmp_path / "a"))
    disk = _fill_disk(st, refuse=("COMMIT",))
    disk.full.set()
    with pytest.raises(StorageFullError):
        st.claim_next()
    assert st.status("a" * 12) == JobStatus.PENDING
    disk.full.clear()
    assert st.cancel("a" * 12) == JobStatus.PENDING and st.status("a" * 12) == JobStatus.CANCELLED


def test_api_answers_507_while_the_data_directory_is_full(make_service, image):
    svc = make_service(start=False)
    disk = _fill_disk(svc.store)
    app = FastAPI()
    register_error_handlers(app)

    @app.post("/jobs")
    def add(body: dict) -> dict:
        return {"id": svc.add(body)}

    @app.post("/uploads")
    def upload() -> dict:  # a route that writes a file itself, as uploads do
        with open(svc.paths.root / "upload.bin", "wb"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    @app.get("/forbidden")
    def forbidden() -> dict:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/jobs", json=_p(image, "fits")).status_code == 200
        disk.full.set()
        for r in (c.post("/jobs", json=_p(image, "does not fit")), c.post("/uploads")):
            assert r.status_code == 507, r.text
            assert r.json()["detail"].startswith("the data directory is full: free some space")
        assert c.get("/forbidden").status_code == 500  # other OS errors stay what they were


class Abort(BaseException):
    """Neither Exception nor a shutdown signal."""


class RaisingEngine(FakeEngine):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def generate(self, params, out, cancel):
        if params.prompt == "raises":
            self.calls.append(params.prompt)
            yield StageEvent("Loading models")
            raise self.exc
        yield from super().generate(params, out, cancel)


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), Abort("engine gave up")],
                         ids=["SystemExit", "KeyboardInterrupt", "BaseException"])
def test_a_base_exception_fails_only_its_job(make_service, image, exc):
    engine = RaisingEngine(exc)
    svc = make_service(engine, start=False)
    bad = svc.add(_p(image, "raises"))
    good = svc.add(_p(image, "next"))
    svc.start()
    wait_status(svc, bad, JobStatus.FAILED)
    wait_status(svc, good, JobStatus.COMPLETED)
    assert svc.get(bad).error.startswith(type(exc).__name__)
    assert engine.calls == ["raises", "next"] and svc.workers.is_alive()
    # ... and keeps serving: a retry of the failed job runs again.
    assert svc.retry(bad)
    wait_status(svc, bad, JobStatus.FAILED)
    assert svc.workers.is_alive()
