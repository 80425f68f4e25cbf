"""Cluster test fixtures: a local Ray cluster per module, two engine actors per test, a queue over the tiny models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modules.models.registry import ModelSet
from studio.jobs.service import QueueService
from studio.paths import DataPaths
from studio.settings import Settings
from tests.cluster.cluster_helpers import RUNTIME_ENV, import_ray


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """A Ray instance on this machine: 2 CPUs and 2 units of `fp_worker`, the stand-in for two GPUs."""
    ray = import_ray()
    ray.init(num_cpus=2, resources={"fp_worker": 2}, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env=RUNTIME_ENV)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture()
def settings(data_dir: Path) -> Settings:
    return Settings(models=ModelSet.TINY, save_metadata=True, lora_dir=str(data_dir / "loras"))


@pytest.fixture()
def queue(paths: DataPaths, settings: Settings) -> Iterator[QueueService]:
    """The studio's queue facade for adding and cancelling; its own worker never starts (the tests run theirs)."""
    svc = QueueService(paths, settings_provider=lambda: settings, poll_interval=0.05, progress_interval=0.0)
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture()
def cluster_actors(ray_cluster, paths: DataPaths, settings: Settings) -> Iterator[list]:
    """Two ready EngineActors (one per `fp_worker` unit), killed after the test."""
    from studio.cluster.connect import connect

    actors = connect(None, paths.resolved_settings(settings), resource="fp_worker")
    try:
        yield actors
    finally:
        for a in actors:
            ray_cluster.kill(a.actor)


@pytest.fixture()
def run_workers() -> Iterator[Callable[[list], list]]:
    """run_workers(workers) starts them; they are stopped after the test."""
    started: list = []

    def run(workers: list) -> list:
        for w in workers:
            w.start()
            started.append(w)
        return workers

    yield run
    for w in started:
        w.stop()
