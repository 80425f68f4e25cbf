"""SQLite store: schema versions, migration backups, status authority, listing speed."""

from __future__ import annotations

import sqlite3

import pytest

from studio.jobs.model import JobStatus
from studio.jobs.store import SCHEMA_VERSION, JobStore, StoreError


def _add(st: JobStore, n: int) -> list[str]:
    ids = [f"job{i:05d}" for i in range(n)]
    st.insert_many({"id": i, "generation_type": "Original", "title": f"prompt {i}", "params_json": "{}",
                    "job_dir": f"/x/{i}"} for i in ids)
    return ids


def test_fresh_db_is_wal_and_current(tmp_path):
    st = JobStore(tmp_path / "queue.db")
    assert st.schema_version == SCHEMA_VERSION
    assert st._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not list(tmp_path.glob("queue.db.bak-*"))  # nothing to back up on a fresh file


def test_migration_backs_up_first_and_keeps_rows(old_database, tmp_path):
    st = JobStore(old_database(1))  # a version-1 database, as an older release left it
    assert st.schema_version == SCHEMA_VERSION
    backups = list(tmp_path.glob("queue.db.bak-v1-*"))
    assert len(backups) == 1
    old = sqlite3.connect(backups[0])
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert old.execute("SELECT id FROM jobs").fetchall() == [("old",)]
    old.close()
    [row] = st.list()
    assert row.id == "old" and row.thumbnail is None and row.status == JobStatus.PENDING


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "queue.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        JobStore(path)


def test_row_is_the_authority_on_status(tmp_path):
    st = JobStore(tmp_path / "queue.db")
    a, b = _add(st, 2)
    job = st.claim_next()
    assert job.id == a and job.status == JobStatus.RUNNING and job.attempts == 1
    assert st.cancel(b) == JobStatus.PENDING
    assert st.claim_next() is None  # cancelled jobs are never claimed
    assert not st.finish(b, JobStatus.COMPLETED)  # not RUNNING: refused
    assert st.cancel(a) == JobStatus.RUNNING and st.cancel_requested(a)
    assert st.finish(a, JobStatus.CANCELLED)
    assert not st.finish(a, JobStatus.COMPLETED)  # a late finish cannot overwrite the cancel
    assert st.status(a) == JobStatus.CANCELLED
    assert st.delete(a) is not None and st.get(a) is None


def test_listing_1000_jobs_in_queue_order(tmp_path):
    # Its speed is measured by bench/queue_list.py, not asserted here.
    st = JobStore(tmp_path / "queue.db")
    ids = _add(st, 1000)
    jobs = st.list()
    assert len(jobs) == 1000 and [j.position for j in jobs] == sorted(j.position for j in jobs)
    assert [j.id for j in jobs] == list(ids)


def test_restart_interrupts_running_but_honours_a_pending_cancel(tmp_path):
    st = JobStore(tmp_path / "queue.db")
    a, b, c = _add(st, 3)
    st.claim_next()
    st.close()
    st = JobStore(tmp_path / "queue.db")  # the process died with `a` running
    assert st.interrupt_running() == [a]
    assert st.status(a) == JobStatus.INTERRUPTED and st.status(b) == JobStatus.PENDING
    assert st.claim_next().id == b  # INTERRUPTED is not claimed again
    st.cancel(b)
    assert st.interrupt_running() == [] and st.status(b) == JobStatus.CANCELLED
    assert st.retry(a) and st.claim_next().id == c and st.claim_next().id == a


def test_retry_first_goes_before_the_jobs_queued_behind_it(tmp_path):
    """A job whose worker went away (WorkerLost) is queued again at the front, not after everything else."""
    st = JobStore(tmp_path / "queue.db")
    a, b, c = _add(st, 3)
    assert st.claim_next(worker="ray:10.0.0.2:gpu0").id == a
    assert st.finish(a, JobStatus.INTERRUPTED, error="lost")
    assert st.retry(a, first=True)
    assert [st.claim_next(worker="gpu0").id for _ in range(3)] == [a, b, c]
    assert st.get(a).worker == "gpu0" and st.get(a).attempts == 2
