"""A machine that joins the Ray cluster while the studio runs gets its workers (studio/cluster/growth.py): two Ray
nodes on this machine (ray.cluster_utils.Cluster), the second added after the studio connected."""

from __future__ import annotations

import pytest

from studio.jobs.model import JobStatus
from tests.cluster.cluster_helpers import RUNTIME_ENV, import_ray, job_params
from tests.hang import HANG_S, wait_until

import_ray()

pytestmark = pytest.mark.slow


def test_a_machine_that_joins_gets_a_worker(paths, settings, image):
    ray = import_ray()
    from ray.cluster_utils import Cluster

    from studio.cluster.growth import ClusterGrowth
    from studio.jobs.service import QueueService

    # Nodes are added without Ray's own 30 s wait; the waits below end only at the hang limit (a busy machine).
    cluster = Cluster()
    cluster.add_node(wait=False, num_cpus=1, resources={"fp_worker": 1})  # the head: the studio's machine
    cluster.wait_for_nodes(timeout=HANG_S)
    svc = QueueService(paths, settings_provider=lambda: settings, slots=[], poll_interval=0.05,
                       progress_interval=0.0)
    try:
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False,
                 runtime_env=RUNTIME_ENV)
        assert svc.start()
        growth = ClusterGrowth(svc, "fp_worker", poll_interval=0.05, progress_interval=0.0)
        (first,) = growth.step()
        assert growth.step() == []
        cluster.add_node(wait=False, num_cpus=1, resources={"fp_worker": 1})  # the new machine
        cluster.wait_for_nodes(timeout=HANG_S)
        (joined,) = growth.step()
        assert joined.name != first.name and sorted(svc.workers.names) == sorted([first.name, joined.name])
        job_id = svc.add(job_params(image, "on the new machine"), gpu=joined.name)
        wait_until(lambda: svc.store.status(job_id).finished, lambda: f"the job is {svc.store.status(job_id)}")
        job = svc.get(job_id)
        assert job.status == JobStatus.COMPLETED and job.worker == joined.name, (job.error, job.traceback)
    finally:
        svc.close()
        ray.shutdown()
        cluster.shutdown()
