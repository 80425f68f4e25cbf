"""Polling helpers for the queue tests (a unique module name: test folders share one import namespace)."""

from __future__ import annotations

from collections.abc import Callable

from studio.cli import main
from studio.jobs.model import JobStatus
from studio.jobs.service import QueueService
from tests.hang import wait_until


def wait_for(cond: Callable[[], object], describe: Callable[[], str] = lambda: "condition not met",
             interval: float = 0.02) -> None:
    """Waits for cond() to be true; only a hang (tests/hang.py HANG_S) fails it."""
    wait_until(cond, describe, interval)


def wait_status(svc: QueueService, job_id: str, *statuses: JobStatus) -> None:
    """Waits for the job to reach one of `statuses`; only a hang fails it."""
    wait_until(lambda: svc.store.status(job_id) in statuses, interval=0.02,
               describe=lambda: f"job {job_id} is {svc.store.status(job_id)}, waiting for "
                                f"{', '.join(s.value for s in statuses)}; error: {_error(svc, job_id)}")


def _error(svc: QueueService, job_id: str) -> str | None:
    job = svc.get(job_id)
    return job.error if job is not None else "(no such job)"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`python -m studio ARGV...` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err
