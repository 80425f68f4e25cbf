"""Continue from this video (studio/jobs/continuation.py) and Edit a pending job (studio/jobs/edit.py): the
service, the store's conditional UPDATE and the HTTP routes, over the fake engine."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from queue_fake_engine import FakeEngine
from queue_helpers import wait_status

from modules.framepack.events import StageEvent
from modules.framepack.metadata import file_sha256
from modules.framepack.params import GenerationType
from studio.api import mount_api
from studio.jobs.continuation import ContinueError, continuation_params, last_frame
from studio.jobs.edit import EditRefused
from studio.jobs.model import JobStatus, JobValidationError


def _p(image: Path, prompt: str, **kw) -> dict:
    return {"prompt": prompt, "start_image": str(image), "total_seconds": 2, "steps": 2, **kw}


class GateEngine(FakeEngine):
    """Holds every job RUNNING until `release` is set: a job that has started, deterministically."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def generate(self, params, out, cancel):
        yield StageEvent("held")
        self.release.wait()
        yield from super().generate(params, out, cancel)


@pytest.fixture()
def completed(make_service, image):
    """A service with one COMPLETED job (the fake engine's video) -> (service, job)."""
    svc = make_service(FakeEngine())
    job_id = svc.add(_p(image, "a cat walks", seed=7, num_context_frames=3))
    wait_status(svc, job_id, JobStatus.COMPLETED)
    return svc, svc.get(job_id)


# ---- continue -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,gen_type", [("Video F1", GenerationType.VIDEO_F1), ("Video", GenerationType.VIDEO)])
def test_continue_job_queues_the_extension_with_the_same_settings(completed, mode, gen_type):
    svc, source = completed
    svc.pause()
    video = Path(source.output_video)
    new_id = svc.continue_job(source.id, mode)
    job = svc.get(new_id)
    p = job.params
    assert job.status is JobStatus.PENDING and p.generation_type is gen_type
    # The video itself is the input (kept by content), and continued_from names it by file name and hash.
    assert p.input_video.read_bytes() == video.read_bytes()
    assert p.continued_from.video == video.name and p.continued_from.sha256 == file_sha256(video)
    # The same settings; the image inputs a video extension does not use are left out.
    assert (p.prompt, p.seed, p.steps, p.total_seconds, p.num_context_frames) == ("a cat walks", 7, 2, 2.0, 3)
    assert p.start_image is None and p.end_image is None and p.keyframes == []
    # No run-specific path or time in what the sidecar records: continued_from holds a name, not a path.
    assert "/" not in p.continued_from.video


def test_continue_refuses_what_it_cannot_continue(make_service, completed, image):
    svc, source = completed
    svc.pause()
    pending = svc.add(_p(image, "not yet"))
    with pytest.raises(ContinueError, match="only a COMPLETED job"):
        svc.continue_job(pending, "Video F1")
    with pytest.raises(ContinueError, match="queues no job"):
        svc.continue_job(source.id, "Last frame as Start Frame")
    with pytest.raises(ValueError):
        svc.continue_job(source.id, "Original")
    with pytest.raises(ContinueError, match="no job"):
        svc.continue_job("nope", "Video")
    with pytest.raises(ContinueError, match="no generation info"):
        svc.continue_output(Path(source.output_video), None, "Video")
    assert [j.id for j in svc.list([JobStatus.PENDING])] == [pending]


def test_continue_output_reads_the_sidecar(completed):
    svc, source = completed
    svc.pause()
    video = Path(source.output_video)
    sidecar = {"format": "fp-studio/1", "params": {**source.params.model_dump(mode="json"), "prompt": "from json"}}
    job = svc.get(svc.continue_output(video, sidecar, "Video"))
    assert job.params.prompt == "from json" and job.params.generation_type is GenerationType.VIDEO
    assert job.params.continued_from.sha256 == file_sha256(video)


def test_continuation_params_is_the_same_every_time(completed, tmp_path):
    """Same source, same video: the same parameters (so the same sidecar bytes), and a continued extension
    names its own source, not its source's."""
    svc, source = completed
    video = Path(source.output_video)
    a = continuation_params(source.params, video, "Video F1")
    assert a == continuation_params(source.params, video, "Video F1")
    copy = tmp_path / "extension.mp4"
    copy.write_bytes(video.read_bytes()[:-1] + b"\0")
    b = continuation_params(a, copy, "Video")
    assert b.continued_from.video == "extension.mp4" and b.continued_from.sha256 != a.continued_from.sha256


def test_last_frame_is_the_videos_last_frame(tmp_path):
    from modules.media.video_io import read_video, write_video

    frames = np.zeros((6, 32, 32, 3), np.uint8)
    frames[-1] = 200  # only the last frame is bright
    video = write_video(tmp_path / "v.mp4", frames, fps=30, crf=0)
    png = last_frame(video, tmp_path / "frames")
    decoded, _ = read_video(video)
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), decoded[-1])
    assert last_frame(video, tmp_path / "frames") == png  # named by content: written once


# ---- edit ---------------------------------------------------------------------------------------------------------
def test_edit_in_place_keeps_id_and_position(make_service, image, tmp_path):
    svc = make_service(FakeEngine(), start=False)  # no worker: everything stays PENDING
    ids = [svc.add(_p(image, f"job {i}")) for i in range(3)]
    other = tmp_path / "other.png"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(other)
    old_input = svc.get(ids[1]).params.start_image
    job = svc.edit(ids[1], _p(other, "edited prompt", steps=5))
    assert job.id == ids[1] and job.params.prompt == "edited prompt" and job.params.steps == 5
    assert job.title == "edited prompt"
    assert [j.id for j in svc.list([JobStatus.PENDING])] == ids  # same place in line
    assert job.params.start_image.read_bytes() == other.read_bytes()  # the new input, kept by content
    assert Path(job.thumbnail).is_file()
    assert old_input.exists()  # the other two jobs still use it
    for other_id in (ids[0], ids[2]):
        svc.edit(other_id, _p(other, "edited too"))
    assert not old_input.exists()  # the old kept input goes once nothing refers to it any more
    assert [j.id for j in svc.list([JobStatus.PENDING])] == ids


def test_edit_checks_like_add(make_service, image, small_video):
    svc = make_service(FakeEngine(), start=False)
    job_id = svc.add(_p(image, "keep me"))
    with pytest.raises(JobValidationError) as ei:
        svc.edit(job_id, {"prompt": "x", "steps": 0, "start_image": str(small_video)})
    assert {e.field for e in ei.value.errors} == {"steps"}
    with pytest.raises(JobValidationError) as ei:
        svc.edit(job_id, {"prompt": "x", "start_image": str(small_video)})  # the one input checker
    assert [e.field for e in ei.value.errors] == ["start_image"]
    assert svc.get(job_id).params.prompt == "keep me"


def test_edit_is_refused_once_the_job_runs(make_service, image):
    engine = GateEngine()
    svc = make_service(engine)
    job_id = svc.add(_p(image, "runs as added"))
    try:
        wait_status(svc, job_id, JobStatus.RUNNING)
        with pytest.raises(EditRefused, match="no longer PENDING") as ei:
            svc.edit(job_id, _p(image, "too late"))
        assert ei.value.status is JobStatus.RUNNING
        assert svc.get(job_id).params.prompt == "runs as added"
    finally:
        engine.release.set()
    wait_status(svc, job_id, JobStatus.COMPLETED)
    assert engine.calls == ["runs as added"]
    with pytest.raises(EditRefused, match="COMPLETED"):
        svc.edit(job_id, _p(image, "still too late"))


def test_store_edit_and_claim_never_both_win(make_service, image):
    """The refusal is the UPDATE's own condition: after the claim, replace_pending changes nothing."""
    svc = make_service(FakeEngine(), start=False)
    job_id = svc.add(_p(image, "claimed"))
    job = svc.get(job_id)
    assert svc.store.claim_next().id == job_id
    assert not svc.store.replace_pending(job_id, "F1", "t", job.params.model_dump_json(), None)
    assert svc.get(job_id).status is JobStatus.RUNNING and svc.get(job_id).generation_type == "Original"


def test_edit_refused_when_the_worker_claims_the_job_meanwhile(make_service, image, tmp_path):
    """Claimed between the edit's checks and its UPDATE: nothing changes, and the inputs it kept are pruned."""
    svc = make_service(FakeEngine(), start=False)
    job_id = svc.add(_p(image, "as added"))
    other = tmp_path / "other.png"
    Image.fromarray(np.full((64, 64, 3), 30, np.uint8)).save(other)
    checked = svc.validate

    def validate_then_claim(*args, **kwargs):
        params = checked(*args, **kwargs)
        assert svc.store.claim_next().id == job_id  # what the worker does meanwhile
        return params

    svc.validate = validate_then_claim
    with pytest.raises(EditRefused, match="RUNNING now"):
        svc.edit(job_id, _p(other, "too late"))
    job = svc.get(job_id)
    assert job.status is JobStatus.RUNNING and job.params.prompt == "as added"
    assert not (svc.paths.kept_inputs_dir / f"{file_sha256(other)}.png").exists()
    assert job.params.start_image.is_file()


# ---- HTTP ---------------------------------------------------------------------------------------------------------
@pytest.fixture()
def client(completed):
    svc, source = completed
    app = FastAPI()
    mount_api(app, svc)
    with TestClient(app) as c:
        yield svc, source, c


def test_api_continue_and_edit(client, data_image):
    svc, source, c = client
    svc.pause()
    r = c.post(f"/api/jobs/{source.id}/continue", params={"mode": "Video"})
    assert r.status_code == 201, r.text
    new = svc.get(r.json()["id"])
    assert new.params.generation_type is GenerationType.VIDEO
    assert new.params.continued_from.video == Path(source.output_video).name
    assert c.post(f"/api/jobs/{source.id}/continue", params={"mode": "Original"}).status_code == 422
    assert c.post(f"/api/jobs/{new.id}/continue").status_code == 409  # not COMPLETED
    assert c.post("/api/jobs/nope/continue").status_code == 404

    pending = svc.add(_p(data_image, "before"))
    r = c.put(f"/api/jobs/{pending}", json={"params": _p(data_image, "after")})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == pending and r.json()["params"]["prompt"] == "after"
    r = c.put(f"/api/jobs/{pending}", json={"prompt": "x", "steps": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "steps"
    r = c.put(f"/api/jobs/{source.id}", json=_p(data_image, "x"))
    assert r.status_code == 409 and "no longer PENDING" in r.json()["detail"]
    assert c.put("/api/jobs/nope", json=_p(data_image, "x")).status_code == 404
    assert c.put(f"/api/jobs/{pending}", content=b"prompt=x").status_code == 415
    assert svc.get(pending).params.prompt == "after"


# ---- the real engine: the extension's sidecar names its source, and the same extension gives the same bytes -----
@pytest.mark.slow
def test_extension_sidecar_names_the_continued_video(data_dir, image):
    from modules.models.registry import ModelSet
    from studio.jobs.service import QueueService
    from studio.jobs.worker import DefaultEngineProvider
    from studio.paths import DataPaths
    from studio.settings import Settings

    tiny = {"width": 64, "height": 64, "total_seconds": 1, "latent_window_size": 3, "steps": 1, "cache_type": "None"}
    settings = Settings(models=ModelSet.TINY, save_metadata=True, lora_dir=str(data_dir / "loras"))
    svc = QueueService(DataPaths(data_dir), settings_provider=lambda: settings,
                       engine_provider=DefaultEngineProvider(device="cpu"), poll_interval=0.05, progress_interval=0.0)
    try:
        assert svc.start()
        source_id = svc.add({"prompt": "a boat", "start_image": str(image), **tiny})
        wait_status(svc, source_id, JobStatus.COMPLETED, JobStatus.FAILED)
        source = Path(svc.get(source_id).output_video)
        ext_ids = [svc.continue_job(source_id, "Video F1")]
        ext_ids.append(svc.duplicate(ext_ids[0]))  # the same extension once more
        for i in ext_ids:
            wait_status(svc, i, JobStatus.COMPLETED, JobStatus.FAILED)
        jobs = [svc.get(i) for i in ext_ids]
        assert all(j.status is JobStatus.COMPLETED for j in jobs), [j.error for j in jobs]
        sidecars = [Path(j.output_video).with_suffix(".json") for j in jobs]
        import json
        data = json.loads(sidecars[0].read_text())
        assert data["params"]["generation_type"] == "Video F1"
        assert data["params"]["continued_from"] == {"video": source.name, "sha256": file_sha256(source)}
        assert data["input_sha256"]["input_video"] == file_sha256(source)
        # Same inputs, same bytes: the sidecar and the video of the same extension, run twice.
        assert sidecars[0].read_bytes() == sidecars[1].read_bytes()
        assert Path(jobs[0].output_video).read_bytes() == Path(jobs[1].output_video).read_bytes()
    finally:
        svc.close()


# ---- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_edit_and_continue(capsys, completed, image):
    from studio.cli import main

    svc, source = completed
    svc.pause()
    d = ["--data-dir", str(svc.paths.root)]
    pending = svc.add(_p(image, "cli before", steps=3))
    assert main(["queue", *d, "edit", pending, "--prompt", "cli after", "--set", "seed=5"]) == 0
    assert capsys.readouterr().out.strip() == pending
    job = svc.get(pending)
    assert (job.params.prompt, job.params.seed, job.params.steps) == ("cli after", 5, 3)  # the rest kept
    assert main(["queue", *d, "edit", pending, "--set", "steps=0"]) == 2
    assert "steps" in capsys.readouterr().err
    assert main(["queue", *d, "edit", source.id, "--prompt", "x"]) == 1
    assert "no longer PENDING" in capsys.readouterr().err
    assert main(["queue", *d, "continue", source.id, "--mode", "Video"]) == 0
    new = svc.get(capsys.readouterr().out.strip())
    assert new.params.generation_type is GenerationType.VIDEO and new.params.continued_from is not None
    assert main(["queue", *d, "continue", pending]) == 1
    assert "only a COMPLETED job" in capsys.readouterr().err
