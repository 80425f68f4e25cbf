"""Cancel stops within one step with no final file; a rerun on the same work_dir resumes to the same video."""

from __future__ import annotations

import numpy as np
import pytest

from modules.framepack.engine import Engine
from modules.cancel import CancelledError, CancelToken
from modules.framepack.events import SectionEvent, StepEvent
from modules.media.video_io import read_video

from engine_helpers import golden_params, output_options


def test_cancel_then_resume_equals_uninterrupted(tiny_manager, golden_dir, golden_run, tmp_path):
    params = golden_params(golden_dir, "original")
    out = output_options(tmp_path)
    cancel = CancelToken()
    engine = Engine(tiny_manager)
    seen: list = []
    with pytest.raises(CancelledError):
        for ev in engine.generate(params, out, cancel):
            seen.append(ev)
            if isinstance(ev, StepEvent) and ev.section == 2 and ev.step == 2:
                cancel.cancel()
    # The cancel was set while handling step 2 of section 2: no further step ran.
    assert isinstance(seen[-1], StepEvent) and (seen[-1].section, seen[-1].step) == (2, 2)
    assert sum(isinstance(e, SectionEvent) for e in seen) == 2
    assert not any(out.output_dir.glob("*.mp4")) if out.output_dir.exists() else True
    assert (out.work_dir / "checkpoint.json").is_file()
    assert (out.work_dir / "preview.mp4").is_file()  # the growing preview after two sections

    events = list(Engine(tiny_manager).generate(params, out, CancelToken()))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[0].section == 2 and len(steps) == 3 * 4  # resumed at section 2
    resumed = events[-1].result
    _, _, golden_events, _ = golden_run("original")
    reference = golden_events[-1].result
    a, _ = read_video(resumed.video)
    b, _ = read_video(reference.video)
    assert np.array_equal(a, b)
    assert resumed.video.read_bytes() == reference.video.read_bytes()
    assert not out.work_dir.exists() or not any(out.work_dir.iterdir())  # scratch cleaned up


def test_cancel_before_start_writes_nothing(tiny_manager, golden_dir, tmp_path):
    cancel = CancelToken()
    cancel.cancel()
    out = output_options(tmp_path)
    with pytest.raises(CancelledError):
        list(Engine(tiny_manager).generate(golden_params(golden_dir, "original"), out, cancel))
    assert not out.output_dir.exists() or not any(out.output_dir.iterdir())
