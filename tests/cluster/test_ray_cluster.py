"""Jobs of the studio's queue run on Ray actors (a local Ray cluster, CPU, tiny models): same bytes as a local
run, cancel within one step, and a job whose actor is killed resumes on the other actor from its last section."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modules.cancel import CancelToken
from modules.framepack.events import DoneEvent, SectionEvent, StepEvent
from studio.cluster.connect import ClusterActor, make_workers
from studio.cluster.remote_engine import RayEngineProvider
from studio.jobs.model import JobStatus
from studio.jobs.worker import DefaultEngineProvider, Worker
from tests.cluster.cluster_helpers import import_ray, job_params
from tests.hang import wait_until

import_ray()  # a skip without Ray (a failure under CI=true), before any test of this module runs

pytestmark = pytest.mark.slow

def _wait_done(queue, *job_ids: str) -> None:
    final = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    for job_id in job_ids:
        wait_until(lambda: queue.store.status(job_id) in final,
                   lambda: f"job {job_id} is {queue.store.status(job_id)}")


def _files(job) -> dict[str, bytes]:
    """The job's final files by suffix (.mp4, .json, .png)."""
    return {Path(p).suffix: Path(p).read_bytes() for p in job.outputs}


def _local_worker(queue, paths, settings) -> Worker:
    return Worker(queue.store, paths, lambda: settings, DefaultEngineProvider(device="cpu"), poll_interval=0.05,
                  progress_interval=0.0, worker_name="local")


def _run_locally(queue, paths, settings, run_workers, jobs: list[dict]) -> list:
    """Runs the jobs on one local worker (the reference), then stops it; their finished rows."""
    (worker,) = run_workers([_local_worker(queue, paths, settings)])
    ids = [queue.add(p) for p in jobs]
    _wait_done(queue, *ids)
    worker.stop()
    done = [queue.get(i) for i in ids]
    assert [j.status for j in done] == [JobStatus.COMPLETED] * len(done), [j.error for j in done]
    return done


def _ray_workers(queue, paths, settings, actors: list[ClusterActor]) -> list[Worker]:
    return make_workers(actors, queue.store, paths, lambda: settings, poll_interval=0.05, progress_interval=0.0)


class _Hooked:
    """An engine provider that calls on_event(ev) in the worker thread before the worker records the event."""

    def __init__(self, inner: Any, on_event: Callable[[Any], None]) -> None:
        self.inner, self.on_event = inner, on_event

    def __call__(self, settings):
        engine, on_event = self.inner(settings), self.on_event

        class _Engine:
            def generate(self, params, out, token):
                for ev in engine.generate(params, out, token):
                    on_event(ev)
                    yield ev

        return _Engine()


def test_jobs_on_two_actors_match_local_bytes(queue, paths, settings, image, cluster_actors, run_workers):
    jobs = [job_params(image, "first", seed=1), job_params(image, "second", seed=2)]
    local = _run_locally(queue, paths, settings, run_workers, jobs)
    assert len(cluster_actors) == 2
    workers = run_workers(_ray_workers(queue, paths, settings, cluster_actors))
    ids = [queue.add(p) for p in jobs]
    _wait_done(queue, *ids)
    remote = [queue.get(i) for i in ids]
    assert [j.status for j in remote] == [JobStatus.COMPLETED] * 2, [(j.error, j.traceback) for j in remote]
    for ref, job in zip(local, remote):
        assert job.worker in {w.worker_name for w in workers}
        assert Path(job.output_video).parent == Path(ref.output_video).parent  # the studio's own output folder
        a, b = _files(ref), _files(job)
        assert set(a) == set(b) == {".mp4", ".json", ".png"}
        for suffix in a:
            assert a[suffix] == b[suffix], suffix
        assert job.result_info["frames"] == ref.result_info["frames"]
        assert job.progress.frames_so_far == job.result_info["frames"]
        assert not (Path(job.job_dir) / "work").exists()  # the studio cleaned the job's work folder


def test_remote_engine_latents_and_names_match_local(paths, settings, image, cluster_actors, tmp_path):
    """Straight through the engines: with --save-latents the latents file also has the local bytes, and the
    files come back under the name the studio reserved."""
    from modules.framepack.params import GenerationParams
    from studio.run_config import output_options

    params = GenerationParams(**job_params(image, "latents", seed=5))
    resolved = paths.resolved_settings(settings)

    def run(engine, root: Path):
        out = output_options(settings, paths, root / "work", output_dir=root / "out", save_latents=True,
                             name="same name")
        events = list(engine.generate(params, out, CancelToken()))
        assert isinstance(events[-1], DoneEvent)
        return events[-1].result

    local = run(DefaultEngineProvider(device="cpu")(resolved), tmp_path / "local")
    remote = run(RayEngineProvider(cluster_actors[0].actor, cluster_actors[0].name)(resolved), tmp_path / "remote")
    assert remote.video.name == local.video.name == "same_name.mp4"
    assert remote.video.parent == tmp_path / "remote" / "out"
    for a, b in [(local.video, remote.video), (local.metadata, remote.metadata), (local.thumbnail, remote.thumbnail),
                 *zip(local.extra_files, remote.extra_files, strict=True)]:
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name
    assert [p.name for p in remote.extra_files] == ["same_name.latents.safetensors"]


def test_cancel_of_a_ray_job_lands_within_one_step(ray_cluster, paths, settings, image):
    """Through the studio's own pool: join_service adds the Ray workers to a started QueueService."""
    from studio.cluster.growth import join_service
    from studio.jobs.service import QueueService

    svc = QueueService(paths, settings_provider=lambda: settings, slots=[], poll_interval=0.05,
                       progress_interval=0.0)
    actors: list[ClusterActor] = []
    try:
        assert svc.start()  # no local worker (slots=[]): only the cluster's
        actors = join_service(svc, None, resource="fp_worker", poll_interval=0.05, progress_interval=0.0)
        assert sorted(svc.workers.names) == sorted(a.name for a in actors) and len(actors) == 2
        job_id = ""
        asked: list[StepEvent] = []

        def cancel_at_step_2_of_section_1(ev) -> None:
            if isinstance(ev, StepEvent) and (ev.section, ev.step) == (1, 2) and not asked:
                asked.append(ev)
                assert svc.cancel(job_id)  # what the Queue tab's Cancel does

        for w in svc.workers.members:
            w.engine_provider = _Hooked(w.engine_provider, cancel_at_step_2_of_section_1)
        job_id = svc.add(job_params(image, "cancel me", steps=6, total_seconds=2))
        _wait_done(svc, job_id)
        job = svc.get(job_id)
        assert job.status == JobStatus.CANCELLED, (job.error, job.traceback)
        assert asked
        # The worker recorded the step it saw the cancel at, and nothing after it.
        assert (job.progress.section, job.progress.step) == (1, 2)
        # The actor stopped within its look-ahead: section 1 (6 steps) never finished, so no checkpoint after
        # section 0 came back.
        state = json.loads((Path(job.job_dir) / "work" / "checkpoint.json").read_text())
        assert state["section_done"] == 0
        assert not job.outputs and not job.output_video
        actor = {a.name: a.actor for a in actors}[job.worker]
        wait_until(lambda: ray_cluster.get(actor.info.remote()).job_id is None,
                   lambda: "the actor still runs the job")
    finally:
        svc.close()
        for a in actors:
            ray_cluster.kill(a.actor)


def test_killed_actor_job_resumes_on_the_other_actor(queue, paths, settings, image, cluster_actors, run_workers):
    ray = import_ray()
    job = job_params(image, "resume me elsewhere", seed=7, total_seconds=2)
    (reference,) = _run_locally(queue, paths, settings, run_workers, [job])
    job_id = queue.add(job)
    by_name = {a.name: a.actor for a in cluster_actors}
    killed: list[str] = []

    def kill_after_first_section(ev) -> None:
        # After the first SectionEvent the job's checkpoint of section 0 is in the studio's work folder.
        if isinstance(ev, SectionEvent) and not killed:
            running = queue.get(job_id).worker
            killed.append(running)
            assert (Path(queue.get(job_id).job_dir) / "work" / "checkpoint.json").is_file()
            ray.kill(by_name[running], no_restart=True)

    workers = _ray_workers(queue, paths, settings, cluster_actors)
    for w in workers:
        w.engine_provider = _Hooked(w.engine_provider, kill_after_first_section)
    run_workers(workers)
    _wait_done(queue, job_id)
    done = queue.get(job_id)
    assert done.status == JobStatus.COMPLETED, (done.error, done.traceback)
    lost = [w for w in workers if w.lost.is_set()]
    assert [w.worker_name for w in lost] == killed  # INTERRUPTED by the lost worker, which took no more jobs
    assert done.worker != killed[0] and done.attempts == 2  # then PENDING again, and run by the other one
    assert done.result_info["first_section"] > 0  # resumed from the checkpoint, not from the start
    a, b = _files(reference), _files(done)
    assert a[".mp4"] == b[".mp4"] and a[".json"] == b[".json"]


def test_a_dead_actor_is_replaced_under_its_name(ray_cluster, paths, settings, image):
    """ClusterGrowth keeps one live worker per unit: an actor that died is replaced by a new one, which takes the
    lost worker's name (and the job pinned to it); a machine that joins goes through the same step."""
    from studio.cluster.growth import ClusterGrowth
    from studio.jobs.service import QueueService

    svc = QueueService(paths, settings_provider=lambda: settings, slots=[], poll_interval=0.05,
                       progress_interval=0.0)
    started: list[ClusterActor] = []
    try:
        assert svc.start()
        growth = ClusterGrowth(svc, "fp_worker", poll_interval=0.05, progress_interval=0.0)
        started += growth.step()
        assert len(started) == 2 and sorted(svc.workers.names) == sorted(a.name for a in started)
        assert growth.step() == []  # every unit has its worker
        victim = started[0]
        ray_cluster.kill(victim.actor, no_restart=True)
        # The dead actor's worker finds out at its next job: INTERRUPTED, then PENDING again (pinned to it).
        job_id = svc.add(job_params(image, "pinned to the dead actor"), gpu=victim.name)
        lost = {w.worker_name: w for w in svc.workers.members}[victim.name]
        wait_until(lost.lost.is_set, lambda: f"the killed actor's worker is not lost: {svc.get(job_id).status}")
        wait_until(lambda: svc.store.status(job_id) == JobStatus.PENDING,
                   lambda: f"the job did not go back to PENDING: {svc.get(job_id).status}")
        new = growth.step()
        started += new
        assert [a.name for a in new] == [victim.name]
        assert sorted(svc.workers.names) == sorted(a.name for a in started[:2])  # replaced, not added
        _wait_done(svc, job_id)
        job = svc.get(job_id)
        assert job.status == JobStatus.COMPLETED and job.worker == victim.name, (job.error, job.traceback)
        assert growth.step() == []
    finally:
        svc.close()
        for a in started[1:]:
            ray_cluster.kill(a.actor)


def test_actor_without_weights_is_left_out_with_the_reason(ray_cluster, paths, tmp_path, caplog):
    from modules.models.registry import ModelSet
    from studio.cluster.connect import connect
    from studio.settings import Settings

    empty = tmp_path / "no-models"
    empty.mkdir()
    settings = Settings(models=ModelSet.REAL, hf_home=str(empty), lora_dir=str(tmp_path / "loras"))
    with caplog.at_level("ERROR", logger="studio.cluster.connect"):
        assert connect(None, settings, resource="fp_worker") == []
    reasons = [r.getMessage() for r in caplog.records if r.name == "studio.cluster.connect"]
    assert len(reasons) == 2 and all("left out: missing weights" in r for r in reasons), reasons
