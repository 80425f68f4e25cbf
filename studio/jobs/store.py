"""SQLite job store (standard library, WAL). The row is the authority on a job's status.

Every status change is a conditional UPDATE (`... WHERE status IN (...)`), so a cancel racing the worker's
finish, or a second process (the CLI) acting on the same file, can never produce an impossible transition.
Schema changes are numbered migrations; an existing file is backed up before any of them runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from studio.jobs.model import (FINISHED, INTERRUPTED_MESSAGE, RETRYABLE, Counts, Job, JobStatus, JobSummary,
                               Progress)
from studio.jobs.storage import storage_full_as_error

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    pass


def _script(db: sqlite3.Connection, sql: str) -> None:
    # Statement by statement: executescript() would COMMIT the migration's transaction half-way.
    for stmt in sql.split(";"):
        if stmt.strip():
            db.execute(stmt)


def _v1(db: sqlite3.Connection) -> None:
    _script(db, 
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            generation_type TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            params TEXT NOT NULL,
            job_dir TEXT NOT NULL,
            created_at REAL NOT NULL,
            started_at REAL,
            completed_at REAL,
            progress TEXT,
            error TEXT,
            traceback TEXT,
            outputs TEXT NOT NULL DEFAULT '[]',
            output_video TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX jobs_position ON jobs(position);
        CREATE INDEX jobs_status_position ON jobs(status, position);
        """
    )


def _v2(db: sqlite3.Connection) -> None:
    # v2: queue-table thumbnail and the result summary (frames, fps, size, skipped steps).
    _script(db, 
        """
        ALTER TABLE jobs ADD COLUMN thumbnail TEXT;
        ALTER TABLE jobs ADD COLUMN result_info TEXT NOT NULL DEFAULT '{}';
        """
    )


def _v3(db: sqlite3.Connection) -> None:
    # v3: the job's name (output file stem) and its batch group.
    _script(db,
        """
        ALTER TABLE jobs ADD COLUMN name TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN group_id TEXT;
        CREATE INDEX jobs_group ON jobs(group_id);
        """
    )


def _v4(db: sqlite3.Connection) -> None:
    # v4: several workers over one queue: the worker a job asks for ('' = any) and the one that ran it.
    _script(db,
        """
        ALTER TABLE jobs ADD COLUMN gpu TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN worker TEXT NOT NULL DEFAULT '';
        """
    )


# MIGRATIONS[n] upgrades a version-n database to n+1. Append only.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4]
SCHEMA_VERSION = len(MIGRATIONS)

_SUMMARY_COLS = ("id, position, generation_type, status, title, created_at, started_at, completed_at, "
                 "thumbnail, progress, error, output_video, name, group_id, gpu, worker")
_FULL_COLS = _SUMMARY_COLS + ", params, job_dir, traceback, outputs, result_info, attempts, cancel_requested"
# The one listing order (Queue tab, API, CLI): the running job, then PENDING jobs in the order the worker claims
# them (claim_next: by position), then every other job newest first, so neither the running job nor the newest
# result scrolls out of sight below a long history.
DISPLAY_ORDER = ("CASE status WHEN 'RUNNING' THEN 0 WHEN 'PENDING' THEN 1 ELSE 2 END, "
                 "CASE WHEN status IN ('RUNNING', 'PENDING') THEN position END, "
                 "COALESCE(completed_at, started_at, created_at) DESC, position DESC")
# Statuses an import may give a new row: PENDING, or how the job had ended elsewhere (never RUNNING or COMPLETED:
# this process neither runs it nor holds its outputs).
IMPORTABLE = frozenset({JobStatus.PENDING, *RETRYABLE})


class JobStore:
    """Thread-safe access to queue.db: one connection, one lock (SQLite serialises writers anyway)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # Autocommit mode; multi-statement changes use explicit BEGIN IMMEDIATE transactions.
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 30000")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("queue.db: WAL journal mode unavailable (got %s)", mode)
        self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL survives a process crash
        self._migrate()

    # ---- schema -------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}, newer than this program's "
                                 f"{SCHEMA_VERSION}; update FP-Studio or point --data-dir elsewhere")
            if version == SCHEMA_VERSION:
                return
            has_tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
            if version > 0 or has_tables:
                self.backup(self.path.with_name(f"{self.path.name}.bak-v{version}-{time.strftime('%Y%m%d-%H%M%S')}"))
            for n in range(version, SCHEMA_VERSION):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    MIGRATIONS[n](self._db)
                    self._db.execute(f"PRAGMA user_version = {n + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                log.info("queue.db migrated to schema version %d", n + 1)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def backup(self, dest: Path) -> Path:
        """A consistent copy of the database (SQLite online backup, safe while others write)."""
        with self._lock:
            target = sqlite3.connect(str(dest))
            try:
                self._db.backup(target)
            finally:
                target.close()
        log.info("queue.db backed up to %s", dest)
        return dest

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- helpers ------------------------------------------------------------------------------------------
    # Every statement goes through _rows or _write, which step it to the end inside the translation: a full
    # disk (reported by the final step, where SQLite commits) becomes StorageFullError, the API's 507.
    def _rows(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        with storage_full_as_error():
            return self._db.execute(sql, args).fetchall()

    def _row(self, sql: str, args: tuple | list = ()) -> sqlite3.Row | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def _write(self, sql: str, args: tuple | list = ()) -> int:
        """Runs a statement without result rows; returns how many rows it changed."""
        with storage_full_as_error():
            return self._db.execute(sql, args).rowcount

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    @staticmethod
    def _summary(row: sqlite3.Row) -> dict:
        return {
            "id": row["id"], "position": row["position"], "generation_type": row["generation_type"],
            "status": row["status"], "title": row["title"], "created_at": row["created_at"],
            "started_at": row["started_at"], "completed_at": row["completed_at"], "thumbnail": row["thumbnail"],
            "progress": _progress(row["progress"]),
            "error": row["error"], "output_video": row["output_video"],
            "name": row["name"], "group_id": row["group_id"], "gpu": row["gpu"], "worker": row["worker"],
        }

    def _full(self, row: sqlite3.Row) -> Job:
        data = self._summary(row)
        data.update(
            params=json.loads(row["params"]), job_dir=row["job_dir"], traceback=row["traceback"],
            outputs=json.loads(row["outputs"]), result_info=json.loads(row["result_info"] or "{}"),
            attempts=row["attempts"], cancel_requested=bool(row["cancel_requested"]),
        )
        return Job.model_validate(data)

    # ---- create / read ------------------------------------------------------------------------------------
    def insert(self, job_id: str, generation_type: str, title: str, params_json: str, job_dir: str,
               thumbnail: str | None = None, status: JobStatus = JobStatus.PENDING,
               created_at: float | None = None) -> None:
        with self._lock:
            self._write(
                "INSERT INTO jobs (id, position, generation_type, title, status, params, job_dir, created_at, "
                "thumbnail) VALUES (?, (SELECT COALESCE(MAX(position), 0) + 1 FROM jobs), ?, ?, ?, ?, ?, ?, ?)",
                (job_id, generation_type, title[:200], status.value, params_json, job_dir,
                 created_at if created_at is not None else time.time(), thumbnail),
            )

    def insert_many(self, rows: Iterable[dict], before_commit: Callable[[], None] | None = None) -> None:
        """New rows, all or nothing: one transaction. PENDING unless a row names another IMPORTABLE "status"
        (an imported FAILED job stays FAILED, with its "error" and "completed_at").

        before_commit runs inside it, after the INSERTs and holding the write lock (add and import move the
        job folders into place there); if it raises, nothing is added."""
        with self._tx():
            for r in rows:
                status = JobStatus(r.get("status") or JobStatus.PENDING)
                if status not in IMPORTABLE:
                    raise StoreError(f"a new job cannot start {status.value}")
                now = time.time()
                done = None if status is JobStatus.PENDING else (r.get("completed_at") or now)
                error = None if status is JobStatus.PENDING else r.get("error")
                self._write(
                    "INSERT INTO jobs (id, position, generation_type, title, status, params, job_dir, created_at, "
                    "thumbnail, completed_at, error, name, group_id, gpu) "
                    "VALUES (?, (SELECT COALESCE(MAX(position), 0) + 1 FROM jobs), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r["id"], r["generation_type"], r["title"][:200], status.value, r["params_json"],
                     r["job_dir"], now, r.get("thumbnail"), done, error, r.get("name") or "", r.get("group_id"),
                     r.get("gpu") or ""),
                )
            if before_commit is not None:
                before_commit()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._row(f"SELECT {_FULL_COLS} FROM jobs WHERE id = ?", (job_id,))
        return self._full(row) if row else None

    def list(self, statuses: Iterable[JobStatus] | None = None) -> list[JobSummary]:
        """Summaries in DISPLAY_ORDER (running, pending in run order, the rest newest first)."""
        sql = f"SELECT {_SUMMARY_COLS} FROM jobs"
        args: tuple = ()
        if statuses is not None:
            st = [JobStatus(s).value for s in statuses]
            sql += f" WHERE status IN ({','.join('?' * len(st))})"
            args = tuple(st)
        with self._lock:
            rows = self._rows(f"{sql} ORDER BY {DISPLAY_ORDER}", args)
        # Rows come from our own writes (validated on the way in): construct without re-validating, which
        # keeps listing 1,000 jobs fast.
        out = []
        for r in rows:
            d = self._summary(r)
            d["status"] = JobStatus(d["status"])
            out.append(JobSummary.model_construct(**d))
        return out

    def list_full(self, ids: Iterable[str] | None = None) -> list[Job]:
        with self._lock:
            rows = self._rows(f"SELECT {_FULL_COLS} FROM jobs ORDER BY position")
        wanted = set(ids) if ids is not None else None
        return [self._full(r) for r in rows if wanted is None or r["id"] in wanted]

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            row = self._row("SELECT status FROM jobs WHERE id = ?", (job_id,))
        return JobStatus(row[0]) if row else None

    def counts(self) -> Counts:
        with self._lock:
            rows = self._rows("SELECT status, count(*) FROM jobs GROUP BY status")
        c = Counts()
        for status, n in rows:
            setattr(c, status.lower(), n)
        return c

    def job_dirs(self, job_ids: Iterable[str]) -> dict[str, str]:
        ids = list(job_ids)
        if not ids:
            return {}
        with self._lock:
            rows = self._rows(f"SELECT id, job_dir FROM jobs WHERE id IN ({','.join('?' * len(ids))})", ids)
        return {r[0]: r[1] for r in rows}

    @contextlib.contextmanager
    def write_locked(self) -> Iterator[dict[str, str]]:
        """Holds the database's write lock (every process waits) and yields {job id: job folder} of all rows.

        The start-up sweep decides inside it which job folders have no row: a concurrent add or import moves
        its folders into place inside its INSERT transaction, so none can appear half-done meanwhile."""
        with self._tx():
            yield {r[0]: r[1] for r in self._rows("SELECT id, job_dir FROM jobs")}

    # ---- worker transitions -------------------------------------------------------------------------------
    def claim_next(self, worker: str = "") -> Job | None:
        """PENDING -> RUNNING for the first job in queue order that this worker may run: one whose `gpu` is ''
        (any worker) or names it. Atomic across threads and processes (one conditional UPDATE), so two workers
        never claim one job. worker: recorded in the row (the Queue tab shows it)."""
        with self._tx():
            row = self._row("SELECT id FROM jobs WHERE status = 'PENDING' AND gpu IN ('', ?) ORDER BY position "
                            "LIMIT 1", (worker,))
            if row is None:
                return None
            self._write(
                "UPDATE jobs SET status = 'RUNNING', started_at = ?, completed_at = NULL, progress = NULL, "
                "error = NULL, traceback = NULL, cancel_requested = 0, attempts = attempts + 1, worker = ? "
                "WHERE id = ? AND status = 'PENDING'", (time.time(), worker, row[0]))
        return self.get(row[0])

    def update_progress(self, job_id: str, progress: Progress) -> bool:
        """Records progress; returns True when someone (maybe another process) asked to cancel the job."""
        with self._lock:
            row = self._row(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'RUNNING' RETURNING cancel_requested",
                (progress.model_dump_json(exclude_none=True), job_id))
        return bool(row and row[0])

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            row = self._row("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        return bool(row and row[0])

    def finish(self, job_id: str, status: JobStatus, *, error: str | None = None, traceback: str | None = None,
               outputs: list[str] | None = None, output_video: str | None = None,
               result_info: dict | None = None) -> bool:
        """RUNNING -> COMPLETED / FAILED / CANCELLED / INTERRUPTED. False when the row was not RUNNING."""
        with self._lock:
            changed = self._write(
                "UPDATE jobs SET status = ?, completed_at = ?, error = ?, traceback = ?, "
                "outputs = COALESCE(?, outputs), output_video = COALESCE(?, output_video), "
                "result_info = COALESCE(?, result_info), cancel_requested = 0 WHERE id = ? AND status = 'RUNNING'",
                (status.value, time.time(), error, traceback, json.dumps(outputs) if outputs is not None else None,
                 output_video, json.dumps(result_info) if result_info is not None else None, job_id))
        return changed == 1

    def interrupt_running(self) -> list[str]:
        """At start-up: jobs left RUNNING by a dead process become INTERRUPTED (never re-run automatically)."""
        with self._tx():
            # A cancel was asked for before the process died: honour it rather than offer a resume.
            self._write("UPDATE jobs SET status = 'CANCELLED', completed_at = ?, error = 'cancelled by user', "
                        "cancel_requested = 0 WHERE status = 'RUNNING' AND cancel_requested = 1", (time.time(),))
            rows = self._rows("UPDATE jobs SET status = 'INTERRUPTED', completed_at = ?, error = ? "
                              "WHERE status = 'RUNNING' RETURNING id", (time.time(), INTERRUPTED_MESSAGE))
        return [r[0] for r in rows]

    # ---- user actions -------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobStatus | None:
        """PENDING -> CANCELLED at once; RUNNING gets a cancel request the worker honours within one step.

        Returns the status the job had (None if unknown or already finished)."""
        with self._tx():
            row = self._row("SELECT status FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return None
            st = JobStatus(row[0])
            if st in (JobStatus.PENDING, JobStatus.INTERRUPTED):
                self._write("UPDATE jobs SET status = 'CANCELLED', completed_at = ? WHERE id = ?",
                            (time.time(), job_id))
            elif st == JobStatus.RUNNING:
                self._write("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            else:
                return None
        return st

    def cancel_group(self, group_id: str) -> tuple[int, list[str]]:
        """Cancel group: PENDING / INTERRUPTED jobs of the batch -> CANCELLED at once, a RUNNING one gets a
        cancel request. Returns (how many jobs it cancelled or asked to stop, the ids of the running ones)."""
        with self._tx():
            now = time.time()
            done = self._write("UPDATE jobs SET status = 'CANCELLED', completed_at = ? "
                               "WHERE group_id = ? AND status IN ('PENDING', 'INTERRUPTED')", (now, group_id))
            running = [r[0] for r in self._rows("UPDATE jobs SET cancel_requested = 1 "
                                                "WHERE group_id = ? AND status = 'RUNNING' RETURNING id", (group_id,))]
        return done + len(running), running

    def cancel_pending(self) -> int:
        with self._lock:
            return self._write("UPDATE jobs SET status = 'CANCELLED', completed_at = ? WHERE status = 'PENDING'",
                               (time.time(),))

    def retry(self, job_id: str, first: bool = False) -> bool:
        """FAILED / CANCELLED / INTERRUPTED -> PENDING at the end of the queue (its work folder is kept); first:
        at the front instead (a job whose worker went away goes on before the jobs queued behind it)."""
        st = ",".join(f"'{s.value}'" for s in RETRYABLE)
        position = "MIN(position) - 1" if first else "MAX(position) + 1"
        with self._lock:
            changed = self._write(
                f"UPDATE jobs SET status = 'PENDING', position = (SELECT {position} FROM jobs), "
                "completed_at = NULL, error = NULL, traceback = NULL, progress = NULL, cancel_requested = 0 "
                f"WHERE id = ? AND status IN ({st})", (job_id,))
        return changed == 1

    def replace_pending(self, job_id: str, generation_type: str, title: str, params_json: str,
                        thumbnail: str | None, before_commit: Callable[[], None] | None = None) -> bool:
        """Edit a pending job: new parameters in place (same id, same position), only while it is PENDING.

        One conditional UPDATE: the worker's claim (PENDING -> RUNNING) and this never both win. before_commit
        runs inside the transaction once the row changed (edit moves the new thumbnail into place there).
        False when the job is unknown or no longer PENDING."""
        with self._tx():
            changed = self._write(
                "UPDATE jobs SET generation_type = ?, title = ?, params = ?, thumbnail = ? "
                "WHERE id = ? AND status = 'PENDING'",
                (generation_type, title[:200], params_json, thumbnail, job_id))
            if changed == 1 and before_commit is not None:
                before_commit()
        return changed == 1

    def delete(self, job_id: str) -> str | None:
        """Removes a job that is not RUNNING; returns its job folder (the caller deletes it)."""
        with self._lock:
            row = self._row("DELETE FROM jobs WHERE id = ? AND status != 'RUNNING' RETURNING job_dir", (job_id,))
        return row[0] if row else None

    def delete_finished(self) -> list[str]:
        st = ",".join(f"'{s.value}'" for s in FINISHED)
        with self._lock:
            rows = self._rows(f"DELETE FROM jobs WHERE status IN ({st}) RETURNING job_dir")
        return [r[0] for r in rows]

    def move(self, job_id: str, delta: int) -> bool:
        """Swaps a PENDING job with the previous (delta < 0) or next PENDING job in queue order."""
        with self._tx():
            row = self._row("SELECT position, status FROM jobs WHERE id = ?", (job_id,))
            if row is None or row[1] != JobStatus.PENDING.value:
                return False
            pos = row[0]
            if delta < 0:
                other = self._row("SELECT id, position FROM jobs WHERE status = 'PENDING' AND position < ? "
                                  "ORDER BY position DESC LIMIT 1", (pos,))
            else:
                other = self._row("SELECT id, position FROM jobs WHERE status = 'PENDING' AND position > ? "
                                  "ORDER BY position ASC LIMIT 1", (pos,))
            if other is None:
                return False
            self._write("UPDATE jobs SET position = ? WHERE id = ?", (other[1], job_id))
            self._write("UPDATE jobs SET position = ? WHERE id = ?", (pos, other[0]))
        return True


def _progress(raw: str | None) -> Progress | None:
    if not raw:
        return None
    return Progress.model_construct(**json.loads(raw))


class _Transaction:
    """`with store._tx():` - BEGIN IMMEDIATE (takes the write lock up front), COMMIT or ROLLBACK.

    A failed COMMIT (disk full) rolls back too: an open transaction would refuse every later BEGIN."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._lock.acquire()
        try:
            self.store._write("BEGIN IMMEDIATE")
        except BaseException:
            self.store._lock.release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    self.store._write("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            else:
                self._rollback()
        finally:
            self.store._lock.release()

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (some errors, e.g. SQLITE_FULL, end the transaction).
        if self.store._db.in_transaction:
            self.store._db.execute("ROLLBACK")
