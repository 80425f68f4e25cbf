"""Kept inputs (studio/jobs/kept_inputs.py): an output's parameters load back complete after Clear Complete,
the same job queued twice writes the same sidecar bytes, and deleting outputs or jobs removes kept inputs
that nothing refers to any more, never one that something still does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from queue_helpers import wait_status

from modules.framepack.metadata import parse_metadata, params_from_metadata
from modules.models.registry import ModelSet
from studio.jobs.model import JobStatus
from studio.jobs.service import QueueService
from studio.paths import DataPaths
from studio.settings import Settings
from tests.conftest import make_test_frames

TINY = {"width": 64, "height": 64, "total_seconds": 1, "latent_window_size": 3, "steps": 1, "cache_type": "None"}


def _image(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(path)
    return path


def _loaded(sidecar: Path):
    """What "Load parameters into Generate" / Upload Metadata JSON get (lenient), and the CLI's --params (strict)."""
    params, notes = parse_metadata(sidecar.read_text(encoding="utf-8"), lenient=True)
    assert params == params_from_metadata(sidecar)
    return params, notes


@pytest.mark.slow
def test_parameters_load_back_complete_after_clear_complete(data_dir, tmp_path):
    from modules.media.video_io import write_video
    from studio.jobs.worker import DefaultEngineProvider

    uploads = tmp_path / "uploads"  # e.g. Gradio's upload folder, emptied after the jobs were added
    start, end = _image(uploads / "start.png", 200), _image(uploads / "end.png", 30)
    video = write_video(uploads / "source.mp4", make_test_frames(20, 64, 64), fps=30, crf=10)
    settings = Settings(models=ModelSet.TINY, save_metadata=True, lora_dir=str(data_dir / "loras"))
    svc = QueueService(DataPaths(data_dir), settings_provider=lambda: settings,
                       engine_provider=DefaultEngineProvider(device="cpu"), poll_interval=0.05, progress_interval=0.0)
    try:
        image_job = {"prompt": "kept", "generation_type": "Original with Endframe", "start_image": str(start),
                     "end_image": str(end), "keyframes": [{"image": str(end), "seconds": 0.5}], "seed": 4, **TINY}
        ids = [svc.add(image_job), svc.add(image_job),
               svc.add({"prompt": "kept video", "generation_type": "Video", "input_video": str(video),
                        "num_context_frames": 2, **TINY})]
        for p in (start, end, video):
            p.unlink()
        svc.start()
        for i in ids:
            wait_status(svc, i, JobStatus.COMPLETED, JobStatus.FAILED)
        jobs = [svc.get(i) for i in ids]
        assert [j.status for j in jobs] == [JobStatus.COMPLETED] * 3, [j.error for j in jobs]
        sidecars = [Path(j.output_video).with_suffix(".json") for j in jobs]
        # Same job, same bytes: the sidecar names the kept inputs by content, not by job.
        assert sidecars[0] != sidecars[1] and sidecars[0].read_bytes() == sidecars[1].read_bytes()

        assert svc.clear_finished() == 3
        assert not any(Path(j.job_dir).exists() for j in jobs)

        params, notes = _loaded(sidecars[0])
        assert notes == []
        assert params.generation_type.value == "Original with Endframe"
        assert params.start_image.read_bytes() == jobs[0].params.start_image.read_bytes()
        assert params.end_image.is_file() and params.keyframes[0].image == params.end_image  # stored once
        assert {params.start_image.parent} == {svc.paths.kept_inputs_dir}

        params, notes = _loaded(sidecars[2])
        assert notes == [] and params.generation_type.value == "Video"
        assert params.input_video.is_file() and params.input_video.parent == svc.paths.kept_inputs_dir
    finally:
        svc.close()


def _finished_job(svc: QueueService, params: dict) -> str:
    job_id = svc.add(params)
    wait_status(svc, job_id, JobStatus.COMPLETED)
    return job_id


def test_kept_inputs_go_when_nothing_refers_to_them(make_service, fake_engine, image, tmp_path):
    """Removing a job or deleting an output prunes its kept inputs; one a sidecar or a job still names stays."""
    from studio.jobs import kept_inputs
    from studio.ui import outputs_index as idx

    svc = make_service(fake_engine)
    out = Path(svc.paths.resolved_settings(Settings()).output_dir)
    other = _image(tmp_path / "other.png", 90)
    a = _finished_job(svc, {"prompt": "a", "start_image": str(image), "total_seconds": 1, "steps": 1})
    b = _finished_job(svc, {"prompt": "b", "start_image": str(other), "total_seconds": 1, "steps": 1})
    kept_a, kept_b = Path(svc.get(a).params.start_image), Path(svc.get(b).params.start_image)
    video_a = Path(svc.get(a).output_video)
    # The fake engine writes no sidecar: give job a's video one, as the real engine does.
    video_a.with_suffix(".json").write_text(json.dumps({"params": svc.get(a).params.model_dump(mode="json")}))
    user_file = svc.paths.kept_inputs_dir / "notes.png"  # not a kept name: never a candidate
    user_file.write_bytes(b"mine")

    # Job b's MP4 has no sidecar and no comment naming its input: cleared, b's kept input goes; a's stays.
    assert svc.clear_finished() == 2
    assert kept_a.is_file() and not kept_b.exists()

    # A pending job names the same input: deleting the output (as the Outputs tab does) keeps it until that
    # job is removed too.
    svc.pause()
    pending = svc.add({"prompt": "waits", "start_image": str(image), "total_seconds": 1, "steps": 1})
    _, data = idx.info(video_a, None)
    idx.delete(video_a, out, None, svc.paths.temp_dir / "thumbs")
    assert svc.prune_kept_inputs(kept_inputs.names_in_metadata(data)) == [] and kept_a.is_file()
    assert svc.remove(pending)
    assert not kept_a.exists() and user_file.is_file()
    assert svc.prune_kept_inputs(["../../queue.db", user_file.name]) == []  # only kept names, only in that folder


def test_prune_waits_for_adds_in_progress(make_service, image):
    """While an add holds the staging lock, nothing is pruned (its new reference is not committed yet)."""
    from studio.jobs.staging import Staging

    svc = make_service(start=False)
    job = svc.add({"prompt": "x", "start_image": str(image)})
    kept = Path(svc.get(job).params.start_image)
    svc.store.delete(job)  # the row goes, the file stays: a candidate nothing refers to
    with Staging(svc.paths):
        assert svc.prune_kept_inputs([kept.name]) == [] and kept.is_file()
    assert svc.prune_kept_inputs([kept.name]) == [kept] and not kept.exists()
