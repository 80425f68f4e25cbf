"""The queue over the REAL engine on the tiny models: order, outputs, cancel, failure, OOM, one manager."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from queue_helpers import wait_for, wait_status

from modules.media.video_io import probe_video
from modules.models.registry import SHARED_COMPONENTS, ModelSet, TransformerKind
from studio.jobs.model import JobStatus
from studio.jobs.service import QueueService
from studio.jobs.worker import DefaultEngineProvider
from studio.paths import DataPaths
from studio.settings import Settings

pytestmark = pytest.mark.slow

TINY = {"width": 64, "height": 64, "total_seconds": 1, "latent_window_size": 3, "steps": 1, "cache_type": "None"}


def _p(image: Path, prompt: str, **kw) -> dict:
    return {"prompt": prompt, "start_image": str(image), **TINY, **kw}


def test_real_engine_queue(data_dir, image):
    # absolute lora_dir: the worker's engine settings then equal these, so the pre-built engine is reused
    settings = Settings(models=ModelSet.TINY, save_metadata=True, lora_dir=str(data_dir / "loras"))
    provider = DefaultEngineProvider(device="cpu")
    svc = QueueService(DataPaths(data_dir), settings_provider=lambda: settings, engine_provider=provider,
                       poll_interval=0.05, progress_interval=0.0)
    try:
        # Inject a CUDA OOM from inside the transformer's forward, once, as a real one would surface.
        engine = provider(settings)
        transformer = provider.manager.transformer(TransformerKind.ORIGINAL)
        armed = {"oom": True}

        def hook(module, args, kwargs):
            if armed["oom"]:
                armed["oom"] = False
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        handle = transformer.register_forward_pre_hook(hook, with_kwargs=True)
        oom = svc.add(_p(image, "out of memory", width=96))
        # Its own image: kept inputs are stored once per content, so breaking a shared one would break every job.
        own = image.with_name("own.png")
        Image.new("RGB", (64, 64), (1, 2, 3)).save(own)
        corrupt = svc.add(_p(own, "corrupt input"))
        a = svc.add(_p(image, "first", seed=1))
        cancel_me = svc.add(_p(image, "cancel me while running", steps=4, total_seconds=2))
        b = svc.add(_p(image, "second", seed=2))
        c = svc.add(_p(image, "third", seed=3))
        Path(svc.get(corrupt).params.start_image).write_bytes(b"\x89PNG\r\n\x1a\n broken")  # after validation
        svc.start()

        wait_status(svc, cancel_me, JobStatus.RUNNING)
        wait_for(lambda: (p := svc.get(cancel_me).progress) is not None and p.step is not None)
        assert svc.cancel(cancel_me)
        wait_status(svc, cancel_me, JobStatus.CANCELLED)
        wait_status(svc, c, JobStatus.COMPLETED, JobStatus.FAILED)
        handle.remove()

        jo, jc = svc.get(oom), svc.get(corrupt)
        assert jo.status == JobStatus.FAILED and jo.error.startswith("Out of GPU memory")
        assert "Preserved Memory" in jo.error and "OutOfMemoryError" in jo.traceback
        assert jc.status == JobStatus.FAILED and "start_image" in jc.error, jc.error

        done = [svc.get(i) for i in (a, b, c)]
        assert [j.status for j in done] == [JobStatus.COMPLETED] * 3, [j.error for j in done]
        assert done[0].started_at < done[1].started_at < done[2].started_at  # queue order
        for j in done:
            info = probe_video(Path(j.output_video))
            assert (info.width, info.height, info.frames) == (64, 64, j.result_info["frames"])
            assert round(info.fps) == 30 and info.frames >= 25
            assert all(Path(p).is_file() for p in j.outputs)
            assert j.progress.frames_so_far == info.frames and Path(j.progress.preview_image).is_file()
        # one ModelManager across jobs: nothing was loaded again after the first job
        assert provider(settings) is engine
        assert provider.manager.transformer_kind == TransformerKind.ORIGINAL
        # every component was loaded exactly once: the transformer above, the shared models by the first job
        assert provider.manager.load_count == len(SHARED_COMPONENTS) + 1
    finally:
        svc.close()
