"""Queue test fixtures: input images in the data directory, and services over a fake or the real engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from queue_fake_engine import FakeEngine  # noqa: E402

from studio.jobs.service import QueueService  # noqa: E402
from studio.paths import DataPaths  # noqa: E402
from studio.settings import Settings  # noqa: E402


@pytest.fixture()
def data_image(paths: DataPaths, image: Path) -> Path:
    """The start image inside the data directory: API clients may only name files there."""
    dest = paths.root / "inputs" / "start.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(image.read_bytes())
    return dest


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


@pytest.fixture()
def api(make_service, fake_engine):
    """(service, TestClient) of the /api routes on a service whose worker is not started."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from studio.api import mount_api

    svc = make_service(fake_engine, start=False)
    app = FastAPI()
    mount_api(app, svc)
    with TestClient(app) as client:
        yield svc, client


@pytest.fixture()
def old_database(tmp_path):
    """old_database(version) -> the path of a queue.db as a release at that schema version left it: the first
    `version` migrations and one PENDING job "old"."""
    import sqlite3

    from studio.jobs import store as store_mod

    def make(version: int) -> Path:
        path = tmp_path / "queue.db"
        db = sqlite3.connect(path, isolation_level=None)
        for migrate in store_mod.MIGRATIONS[:version]:
            migrate(db)
        db.execute(f"PRAGMA user_version = {int(version)}")
        db.execute("INSERT INTO jobs (id, position, generation_type, status, params, job_dir, created_at) "
                   "VALUES ('old', 1, 'F1', 'PENDING', '{}', '/x', 1.0)")
        db.close()
        return path

    return make
