"""The prompt helpers on the tiny Qwen3-VL stand-in (modules/models/tiny_hub, loaded through from_pretrained like
the real weights): service, HTTP routes and CLI, and a caption while a job runs on the same worker."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from fastapi.testclient import TestClient

from modules.framepack.prompts import parse_timestamped_prompt
from modules.media.video_io import write_video
from modules.models.registry import ModelSet, TransformerKind
from studio.captioning.service import CaptionService
from studio.jobs.model import JobStatus
from studio.jobs.service import QueueService
from studio.jobs.worker import DefaultEngineProvider
from studio.settings import Settings
from tests.conftest import make_test_frames
from tests.hang import HANG_S, wait_until

TINY = Settings(models=ModelSet.TINY)


@pytest.fixture(scope="module")
def captioner() -> CaptionService:
    service = CaptionService(lambda: TINY)
    yield service
    service.unload()


@pytest.fixture()
def video(tmp_path):
    return write_video(tmp_path / "source.mp4", make_test_frames(24, 64, 96), fps=24)


def test_caption_describe_and_enhance_write_reproducible_prompts(captioner, image, video):
    caption = captioner.caption(image)
    assert caption and "<|" not in caption and "[" not in caption
    assert captioner.status_text().startswith("Captioner: Qwen3-VL-2B-Instruct on cpu · ")
    # A fresh load of the same weights writes the same words (greedy decoding, float32 on the CPU).
    fresh = CaptionService(lambda: TINY)
    assert fresh.caption(image) == caption
    fresh.unload()

    told = captioner.describe(video, seconds=9, timestamped=True)
    assert told.description
    assert [s.start_seconds for s in parse_timestamped_prompt(told.prompt)] == [0, 3, 6]  # a step every 3 s
    plain = captioner.describe(video, seconds=4)
    assert plain.prompt and len(parse_timestamped_prompt(plain.prompt)) == 1

    enhanced = captioner.enhance("a cat [3s: the cat jumps] [5.5s: it lands]")
    assert [s.start_seconds for s in parse_timestamped_prompt(enhanced)] == [0, 3, 5.5]
    assert captioner.enhance("a cat dances") == captioner.enhance("a cat dances")


def test_progress_counts_the_written_tokens(captioner, image):
    seen: list[tuple[int, int]] = []
    captioner.caption(image, on_token=lambda done, limit: seen.append((done, limit)))
    counts = [d for d, _ in seen]
    assert counts == sorted(counts) and counts[0] == 1 and seen[-1][0] == seen[-1][1] == 120


def test_http_routes(captioner, image, video, data_dir):
    from studio.paths import DataPaths
    from studio.web.app import WebOptions, create_web_app

    svc = QueueService(DataPaths(data_dir), settings_provider=lambda: TINY)
    inside = data_dir / "uploads"
    inside.mkdir()
    img, vid = shutil.copy(image, inside), shutil.copy(video, inside)
    app = create_web_app(svc, WebOptions(), captioner=captioner)
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        r = c.post("/api/caption", json={"image": str(img)})
        assert r.status_code == 200 and r.json() == {"prompt": captioner.caption(image)}
        r = c.post("/api/describe-video", json={"video": str(vid), "seconds": 6, "timestamped": True})
        assert r.status_code == 200 and set(r.json()) == {"description", "prompt"}
        r = c.post("/api/enhance", json={"prompt": "[0s: a cat] [2s: it naps]"})
        assert [s.start_seconds for s in parse_timestamped_prompt(r.json()["prompt"])] == [0, 2]

        def errors(r) -> dict:
            assert r.status_code == 422, r.text
            return {e["field"]: e["message"] for e in r.json()["errors"]}

        # Outside the data directory: refused by path alone, whether the file exists or not.
        assert errors(c.post("/api/caption", json={"image": str(image)})) == {
            "image": "must be a file inside the data directory (upload it first: POST /api/uploads)"}
        assert errors(c.post("/api/describe-video", json={"video": str(img)})) == {
            "video": "start.png is an image, not a video"}
        assert errors(c.post("/api/enhance", json={"prompt": "[2s: open"}))["prompt"].startswith("the bracket")
        assert set(errors(c.post("/api/caption", json={"picture": "x"}))) == {"image", "picture"}
        assert errors(c.post("/api/describe-video", json={"video": str(vid), "seconds": 0})) == {
            "seconds": "Input should be greater than 0"}
        assert c.post("/api/enhance", content="prompt=x", headers={"content-type": "text/plain"}).status_code == 415
        assert c.post("/api/enhance", json={"prompt": "x"}, headers={"origin": "http://evil.example"}).status_code \
            == 403
    svc.close()


def test_cli(image, video, capsys, data_dir):
    from studio.cli import main

    assert main(["caption", str(image), "--models", "tiny", "--data-dir", str(data_dir)]) == 0
    caption = capsys.readouterr().out.strip()
    assert caption and "\n" not in caption
    assert main(["caption", str(video), "--models", "tiny", "--data-dir", str(data_dir), "--timestamped",
                 "--seconds", "9", "--enhance", "a cat [2s: a dog]", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"description", "prompt", "enhanced"}
    assert [s.start_seconds for s in parse_timestamped_prompt(out["enhanced"])] == [0, 2]
    assert main(["caption", str(data_dir), "--models", "tiny", "--data-dir", str(data_dir)]) == 2
    assert "invalid file: not a readable image or video" in capsys.readouterr().err
    assert main(["caption", "--models", "tiny"]) == 2


def test_a_caption_while_a_job_runs_fails_neither(data_dir, image):
    settings = TINY.model_copy(update={"lora_dir": str(data_dir / "loras")})
    provider = DefaultEngineProvider(device="cpu")
    svc = QueueService(_paths(data_dir), settings_provider=lambda: settings, engine_provider=provider,
                       poll_interval=0.05)
    svc.start()
    worker = svc.workers.members[0]
    # The CPU worker stands in for a GPU worker: the captioner borrows its device only through its lease.
    captioner = CaptionService(lambda: settings, lambda: {"cpu": worker})
    svc.workers.on_job_start(captioner.leave)
    try:
        idle = captioner.caption(image)
        assert "on cpu" in captioner.status_text() and not worker.device_lease.locked()

        provider(settings)  # the job's engine and models, to hold its first transformer call
        transformer = provider.manager.transformer(TransformerKind.ORIGINAL)
        running, release = threading.Event(), threading.Event()

        def hold(module, args):
            running.set()
            release.wait(HANG_S)

        handle = transformer.register_forward_pre_hook(hold)
        job = svc.add({"prompt": "a ball", "start_image": str(image), "width": 64, "height": 64,
                       "total_seconds": 1, "latent_window_size": 3, "steps": 1, "cache_type": "None"})
        assert running.wait(HANG_S), "the job never reached the transformer"
        # The job made the captioner leave its device before it started.
        assert captioner.status_text() == "Captioner: not loaded" and worker.device_lease.locked()
        assert captioner.caption(image) == idle  # answered beside the job, on the CPU, the same words
        release.set()
        handle.remove()
        done = wait_until(lambda: (j := svc.get(job)).status in (JobStatus.COMPLETED, JobStatus.FAILED) and j)
        assert done.status == JobStatus.COMPLETED, done.error
    finally:
        release.set()
        captioner.unload()
        svc.close()


def _paths(data_dir):
    from studio.paths import DataPaths

    return DataPaths(data_dir)
