"""Queue test fixtures: a data directory, input images, and services over a fake or the real engine."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from fake_engine import FakeEngine  # noqa: E402

from studio.jobs.model import JobStatus  # noqa: E402
from studio.jobs.service import QueueService  # noqa: E402
from studio.paths import DataPaths  # noqa: E402
from studio.settings import Settings  # noqa: E402


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    p = tmp_path / "start.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
    return p


@pytest.fixture()
def paths(data_dir: Path) -> DataPaths:
    return DataPaths(data_dir)


@pytest.fixture()
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture()
def make_service(paths: DataPaths):
    """make_service(engine=None, start=True) -> a QueueService on the test data dir; closed afterwards."""
    made: list[QueueService] = []

    def make(engine=None, start: bool = True, settings: Settings | None = None) -> QueueService:
        s = settings or Settings()
        svc = QueueService(paths, settings_provider=lambda: s,
                           engine_provider=(lambda _s: engine) if engine is not None else None,
                           poll_interval=0.05, progress_interval=0.0)
        if start:
            assert svc.start()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, interval: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError("condition not met within timeout")


def wait_status(svc: QueueService, job_id: str, *statuses: JobStatus, timeout: float = 30.0) -> None:
    wait_for(lambda: svc.store.status(job_id) in statuses, timeout)
