"""A fast stand-in for modules.framepack.engine.Engine with the same contract (events, cancel, resume)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from modules.framepack.events import (DoneEvent, GenerationResult, SectionEvent, StageEvent,
                                      StepEvent)


class FakeEngine:
    """Sections = total_seconds, steps = params.steps. Prompt keywords trigger failures:
    'FAIL' raises RuntimeError, 'OOM' raises torch.cuda.OutOfMemoryError. Checkpoints finished sections
    in work_dir/ckpt.json so a rerun on the same work_dir resumes."""

    def __init__(self, step_seconds: float = 0.0) -> None:
        self.step_seconds = step_seconds
        self.calls: list[str] = []  # prompts, in run order
        self.started_sections: list[list[int]] = []
        self.steps_started = 0  # sampler steps begun (past the cancel check), over all calls

    def generate(self, params, out, cancel):
        from modules.media.video_io import write_video

        self.calls.append(params.prompt)
        yield StageEvent("Loading models")
        if "OOM" in params.prompt:
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if "FAIL" in params.prompt:
            raise RuntimeError("forced failure for the test")
        if params.start_image is not None:
            from PIL import Image

            Image.open(params.start_image).convert("RGB").load()  # corrupt input fails here
        ckpt = Path(out.work_dir) / "ckpt.json"
        done = json.loads(ckpt.read_text())["done"] if ckpt.exists() else 0
        total = int(params.total_seconds)
        started = []
        for s in range(done, total):
            started.append(s)
            for k in range(1, params.steps + 1):
                cancel.raise_if_cancelled()
                self.steps_started += 1
                if self.step_seconds:
                    time.sleep(self.step_seconds)
                yield StepEvent(s, total, k, params.steps, 0.1, np.full((8, 8, 3), 10 * s, np.uint8))
            ckpt.write_text(json.dumps({"done": s + 1}))
            yield SectionEvent(s, total, (s + 1) * 4, None)
        self.started_sections.append(started)
        out.output_dir.mkdir(parents=True, exist_ok=True)
        video = out.output_dir / f"{params.seed}_{time.time_ns()}.mp4"
        frames = np.zeros((total * 4, 16, 16, 3), np.uint8)
        write_video(video, frames, fps=30, crf=out.crf)
        yield DoneEvent(GenerationResult(video=video, metadata=None, thumbnail=None, frames=total * 4, fps=30,
                                         width=16, height=16, seed=params.seed))
