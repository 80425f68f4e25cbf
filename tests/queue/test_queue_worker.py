"""Worker and service behaviour over a fast fake engine (same contract as the real one)."""

from __future__ import annotations

import json

import threading
from pathlib import Path

import pytest
from PIL import Image
from queue_helpers import wait_for, wait_status
from queue_fake_engine import FakeEngine

from modules.media.video_io import probe_video
from studio.jobs.model import JobStatus, JobValidationError
from studio.jobs.store import JobStore


def _p(image: Path, prompt: str, **kw) -> dict:
    return {"prompt": prompt, "start_image": str(image), "total_seconds": 2, "steps": 3, **kw}


def test_three_jobs_complete_in_order(make_service, fake_engine, image):
    svc = make_service(fake_engine, start=False)
    ids = [svc.add(_p(image, f"job {i}")) for i in range(3)]
    svc.start()
    for i in ids:
        wait_status(svc, i, JobStatus.COMPLETED)
    assert fake_engine.calls == ["job 0", "job 1", "job 2"]
    jobs = [svc.get(i) for i in ids]
    assert [j.started_at for j in jobs] == sorted(j.started_at for j in jobs)
    for j in jobs:
        assert Path(j.output_video).is_file() and probe_video(Path(j.output_video)).frames == 8
        assert j.progress.section == 1 and j.progress.step == 3 and Path(j.progress.preview_image).is_file()
        assert j.result_info["frames"] == 8
        # inputs were copied into the kept inputs (named by content, outside the job folder) and the params
        # point there: the same image is kept once for all three jobs
        assert Path(j.params.start_image).parent == svc.paths.kept_inputs_dir
        assert Path(j.params.start_image) == Path(jobs[0].params.start_image)
        assert Path(j.params.start_image).read_bytes() == image.read_bytes()
        assert j.thumbnail and Path(j.thumbnail).is_file()


def test_validation_lists_every_bad_field(make_service, image, tmp_path):
    svc = make_service(start=False)
    with pytest.raises(JobValidationError) as ei:
        svc.add({"prompt": 3, "steps": 0, "bogus": 1})
    fields = {e.field for e in ei.value.errors}
    assert fields == {"prompt", "steps", "bogus"}
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(JobValidationError) as ei:
        svc.add({"start_image": str(bad), "end_image": str(tmp_path / "missing.png")})
    assert {e.field for e in ei.value.errors} == {"start_image", "end_image"}
    with pytest.raises(JobValidationError) as ei:
        svc.add({"generation_type": "Video"})
    assert ei.value.errors[0].field == "input_video"
    assert svc.list() == [] and list(svc.paths.jobs_dir.iterdir()) == []


def test_add_refuses_an_image_as_video_and_a_video_as_image(make_service, image, small_video):
    """QueueService.add runs the one input checker: a PNG is no input_video, an MP4 no start_image."""
    svc = make_service(start=False)
    with pytest.raises(JobValidationError) as ei:
        svc.add({"prompt": "x", "generation_type": "Video", "input_video": str(image)})
    assert [(e.field, e.message) for e in ei.value.errors] == [("input_video", "start.png is an image, not a video")]
    with pytest.raises(JobValidationError) as ei:
        svc.add({"prompt": "x", "start_image": str(small_video)})
    assert [(e.field, e.message) for e in ei.value.errors] == [("start_image", "small.mp4 is a video, not an image")]
    assert svc.list() == [] and list(svc.paths.jobs_dir.iterdir()) == []
    assert svc.add({"prompt": "x", "generation_type": "Video", "input_video": str(small_video)})


def test_cancel_pending_and_running(make_service, image):
    eng = FakeEngine(step_seconds=0.05)
    svc = make_service(eng, start=False)
    running = svc.add(_p(image, "long", total_seconds=20, steps=10))
    pending = svc.add(_p(image, "never"))
    after = svc.add(_p(image, "after"))
    assert svc.cancel(pending)
    assert svc.store.status(pending) == JobStatus.CANCELLED  # at once, no worker involved
    svc.start()
    wait_for(lambda: (svc.get(running).progress or None) is not None and svc.get(running).progress.step is not None)
    assert svc.cancel(running)
    steps_at_cancel = eng.steps_started
    wait_status(svc, running, JobStatus.CANCELLED)
    # Within one step, counted in steps, not seconds: of the 200 steps, at most one begins after the cancel.
    assert eng.steps_started - steps_at_cancel <= 1, eng.steps_started - steps_at_cancel
    wait_status(svc, after, JobStatus.COMPLETED)
    assert eng.calls == ["long", "after"]
    assert not svc.cancel(after)  # finished jobs cannot be cancelled


def test_cancel_from_another_process_handle(make_service, image, paths):
    """The CLI cancels through its own connection: the worker sees the row's flag within one step."""
    eng = FakeEngine(step_seconds=0.05)
    svc = make_service(eng)
    job = svc.add(_p(image, "long", total_seconds=20, steps=10))
    wait_status(svc, job, JobStatus.RUNNING)
    other = JobStore(paths.queue_db)
    assert other.cancel(job) == JobStatus.RUNNING
    steps_at_cancel = eng.steps_started
    other.close()
    wait_status(svc, job, JobStatus.CANCELLED)
    # Within one step: the next progress write reads the flag, so at most one more step begins (of 200).
    assert eng.steps_started - steps_at_cancel <= 1, eng.steps_started - steps_at_cancel


def test_failing_job_is_failed_and_next_runs(make_service, fake_engine, image, tmp_path):
    svc = make_service(fake_engine, start=False)
    bad = svc.add(_p(image, "FAIL please"))
    # Its own image: kept inputs are stored once per content, so breaking a shared one would break every job.
    own = tmp_path / "own.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(own)
    corrupt = svc.add(_p(own, "corrupt input"))
    good = svc.add(_p(image, "fine"))
    Path(svc.get(corrupt).params.start_image).write_bytes(b"\x89PNG garbage")  # after validation
    svc.start()
    wait_status(svc, good, JobStatus.COMPLETED)
    jb, jc = svc.get(bad), svc.get(corrupt)
    assert jb.status == JobStatus.FAILED and "forced failure" in jb.error and "Traceback" in jb.traceback
    assert jc.status == JobStatus.FAILED and jc.error and jc.traceback
    assert svc.workers.is_alive()


def test_oom_is_reported_as_oom(make_service, fake_engine, image):
    svc = make_service(fake_engine)
    job = svc.add(_p(image, "OOM now", width=640, height=480))
    nxt = svc.add(_p(image, "then fine"))
    wait_status(svc, nxt, JobStatus.COMPLETED)
    j = svc.get(job)
    assert j.status == JobStatus.FAILED
    assert j.error.startswith("Out of GPU memory")
    assert "GPU Inference Preserved Memory" in j.error and "resolution" in j.error
    assert "OutOfMemoryError" in j.traceback


def test_retry_resumes_from_last_section(make_service, image):
    eng = FakeEngine(step_seconds=0.02)
    svc = make_service(eng)
    job = svc.add(_p(image, "resumable", total_seconds=6, steps=5))
    wait_for(lambda: (p := svc.get(job).progress) is not None and (p.section or 0) >= 2)
    svc.cancel(job)
    wait_status(svc, job, JobStatus.CANCELLED)
    assert svc.retry(job)
    wait_status(svc, job, JobStatus.COMPLETED)
    j = svc.get(job)
    assert j.attempts == 2 and j.result_info["first_section"] >= 2
    assert eng.started_sections[-1][0] >= 2
    assert probe_video(Path(j.output_video)).frames == 24
    assert not svc.retry(job)  # COMPLETED is not retryable (duplicate it instead)


def test_pause_resume_and_shutdown_interrupts(make_service, image, paths):
    eng = FakeEngine(step_seconds=0.02)
    svc = make_service(eng)
    svc.pause()
    (worker,) = svc.workers.members
    looked = worker.looks
    a = svc.add(_p(image, "a"))
    # Nothing starts while paused: the worker has looked at the queue twice since the job was added (the add
    # wakes it), and the job still waits.
    wait_for(lambda: worker.looks >= looked + 2, lambda: "the paused worker never looked at the queue")
    assert svc.store.status(a) == JobStatus.PENDING and svc.counts().paused
    svc.resume()
    wait_status(svc, a, JobStatus.COMPLETED)
    b = svc.add(_p(image, "b", total_seconds=30, steps=10))
    wait_status(svc, b, JobStatus.RUNNING)
    svc.shutdown()
    assert svc.store.status(b) == JobStatus.INTERRUPTED


def test_actions(make_service, fake_engine, image):
    svc = make_service(fake_engine, start=False)
    a, b, c = (svc.add(_p(image, n)) for n in "abc")
    assert svc.move_down(a) and [j.id for j in svc.list()] == [b, a, c]
    assert svc.move_up(c) and [j.id for j in svc.list()] == [b, c, a]
    assert not svc.move_up(b)
    d = svc.duplicate(b)
    assert d and svc.get(d).params.prompt == "b" and svc.get(d).params.start_image == svc.get(b).params.start_image  # kept once
    assert svc.remove(c) and svc.get(c) is None and not (paths_dir := Path(svc.paths.jobs_dir / c)).exists()
    assert svc.cancel_pending() == 3
    assert svc.counts().cancelled == 3
    assert svc.clear_finished() == 3 and svc.list() == []
    del paths_dir


def test_restart_marks_running_interrupted_and_not_rerun(make_service, fake_engine, image, paths):
    svc = make_service(fake_engine, start=False)
    a = svc.add(_p(image, "was running"))
    b = svc.add(_p(image, "pending"))
    svc.store.claim_next()  # simulate a process that died mid-job
    svc.close()
    svc2 = make_service(fake_engine)
    wait_status(svc2, b, JobStatus.COMPLETED)
    assert svc2.store.status(a) == JobStatus.INTERRUPTED
    assert fake_engine.calls == ["pending"]


def test_one_worker_per_data_dir(make_service, fake_engine):
    svc = make_service(fake_engine)
    other = make_service(fake_engine, start=False)
    assert svc.workers.members and not other.start()



def test_worker_lock_released_from_another_thread(make_service, fake_engine):
    """The UI may shut the service down on another thread than the one that started it: the lock still goes."""
    svc = make_service(fake_engine)
    stopper = threading.Thread(target=svc.shutdown)
    stopper.start()
    stopper.join()
    other = make_service(fake_engine, start=False)
    assert other.start() and not svc.start()  # now the other one holds it


def test_twenty_threads_adding_lose_none(make_service, image):
    svc = make_service(start=False)
    ids: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            job_id = svc.add(_p(image, "concurrent"))
            with lock:
                ids.append(job_id)

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listed = svc.list()
    assert len(ids) == len(set(ids)) == 100
    assert {j.id for j in listed} == set(ids)
    assert len({j.position for j in listed}) == 100


def test_system_prompt_override_is_recorded_in_new_jobs(make_service, image):
    from studio.settings import Settings

    template = "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video.<|eot_id|>{}"
    svc = make_service(start=False, settings=Settings(override_system_prompt=True, system_prompt_template=template))
    overridden = svc.get(svc.add(_p(image, "a")))
    explicit = svc.get(svc.add(_p(image, "b", system_prompt="own {}")))
    assert overridden.params.system_prompt == template
    assert explicit.params.system_prompt == "own {}"
    plain = make_service(start=False, settings=Settings(override_system_prompt=False, system_prompt_template=template))
    assert plain.get(plain.add(_p(image, "c"))).params.system_prompt is None


def test_weight_download_progress_shows_on_the_running_job(make_service, image):
    """First run with real models: download lines (from hf_hub's threads) become the job's stage text."""

    class Manager:
        download_listener = None

    class DownloadingEngine(FakeEngine):
        def __init__(self) -> None:
            super().__init__()
            self.manager = Manager()
            self.seen: list[str] = []

        def generate(self, params, out, cancel):
            listener = self.manager.download_listener
            assert listener is not None
            t = threading.Thread(target=listener, args=("Checking lllyasviel/FramePackI2V_HY (about 25.7 GB)",))
            t.start()
            t.join()
            self.seen.append(svc.get(job_id).progress.stage)
            yield from super().generate(params, out, cancel)

    engine = DownloadingEngine()
    svc = make_service(engine, start=False)
    job_id = svc.add(_p(image, "first run"))
    svc.start()
    wait_status(svc, job_id, JobStatus.COMPLETED)
    assert engine.seen == ["Checking lllyasviel/FramePackI2V_HY (about 25.7 GB)"]
    assert engine.manager.download_listener is None  # detached after the job


class _WatchedLock:
    """A lock that says when a second thread has to wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.contended = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        self.contended.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()


def test_run_if_idle_holds_off_the_next_job(make_service, fake_engine, image):
    """Unloading models from a UI thread must not race the worker starting (and loading for) a job."""
    svc = make_service(fake_engine)
    svc.workers.members[0]._lock = lock = _WatchedLock()
    seen: list[list[str]] = []

    def unload() -> None:
        job_id = svc.add(_p(image, "after unload"))
        # The worker claims the job, then must wait for unload() to return before it runs anything.
        wait_for(lock.contended.is_set)
        seen.append(list(fake_engine.calls))
        seen.append([job_id])

    assert svc.workers.members[0].run_if_idle(unload)
    assert seen[0] == []  # nothing ran while unload() held the worker off
    wait_status(svc, seen[1][0], JobStatus.COMPLETED)
    assert fake_engine.calls == ["after unload"]


def test_add_refuses_what_the_engine_would_refuse(make_service, tmp_path):
    """Add-time checks include the engine's input rules, so such a job is never queued to fail later."""
    import numpy as np
    from PIL import Image

    thin = tmp_path / "thin.png"
    Image.fromarray(np.zeros((16, 400, 3), np.uint8)).save(thin)  # decodes fine, aspect 25:1
    svc = make_service(start=False)
    with pytest.raises(JobValidationError) as info:
        svc.add({"prompt": "x", "start_image": str(thin), "total_seconds": 2,
                 "keyframes": [{"image": str(thin), "seconds": 50}]})
    fields = {e.field for e in info.value.errors}
    assert {"start_image", "keyframes.0.image", "keyframes.0.seconds"} <= fields
    assert svc.list() == []


def test_a_grid_with_a_cell_out_of_range_is_never_queued(make_service):
    svc = make_service(start=False)
    with pytest.raises(JobValidationError) as info:
        svc.add({"prompt": "x", "generation_type": "Grid", "grid_x": {"parameter": "steps", "values": [2, 500]}})
    (error,) = info.value.errors
    assert error.field == "grid_x" and "grid cell grid_x=500" in error.message and "steps" in error.message
    assert svc.list() == []


def test_an_imported_grid_with_a_cell_out_of_range_is_refused(make_service, tmp_path):
    """An exported queue edited (or written by another tool) to hold a bad grid cell: the import is refused
    naming the cell and the field, and nothing is queued."""
    from studio.jobs.archive import ArchiveError

    svc = make_service(start=False)
    svc.add({"prompt": "x", "generation_type": "Grid", "grid_x": {"parameter": "steps", "values": [2, 4]}})
    exported = svc.export_json(tmp_path / "queue.json")
    doc = json.loads(exported.read_text(encoding="utf-8"))
    (job,) = doc["jobs"]
    job["params"]["grid_x"]["values"] = [2, 500]
    exported.write_text(json.dumps(doc), encoding="utf-8")
    svc.cancel_pending()
    svc.clear_finished()
    assert svc.list() == []
    with pytest.raises(ArchiveError) as info:
        svc.import_file(exported)
    assert "grid cell grid_x=500" in str(info.value) and "steps" in str(info.value)
    assert svc.list() == []
