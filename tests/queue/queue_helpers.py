"""Polling helpers for the queue tests (a unique module name: test folders share one import namespace)."""

from __future__ import annotations

import time
from collections.abc import Callable

from studio.jobs.model import JobStatus
from studio.jobs.service import QueueService


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, interval: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError("condition not met within timeout")


def wait_status(svc: QueueService, job_id: str, *statuses: JobStatus, timeout: float = 30.0) -> None:
    wait_for(lambda: svc.store.status(job_id) in statuses, timeout)
