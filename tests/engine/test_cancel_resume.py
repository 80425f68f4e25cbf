"""Cancel stops within one step with no final file; a rerun on the same work_dir resumes to the same video."""

from __future__ import annotations

import numpy as np
import pytest

from modules.framepack.engine import Engine
from modules.cancel import CancelledError, CancelToken
from modules.framepack.events import SectionEvent, StepEvent
from modules.media.video_io import probe_video, read_video
from safetensors import safe_open

from engine_helpers import golden_params, output_options


def test_cancel_then_resume_equals_uninterrupted(tiny_manager, golden_dir, golden_run, tmp_path):
    params = golden_params(golden_dir, "original")
    out = output_options(tmp_path, preview_wanted=lambda: True)  # someone watches: a growing preview
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


def test_unwatched_job_encodes_every_frame_once(tiny_manager, golden_dir, tmp_path):
    """CLI and API without a viewer: no preview video, so the encoder sees each frame of the video once."""
    out = output_options(tmp_path)
    events = []
    for ev in Engine(tiny_manager).generate(golden_params(golden_dir, "original"), out, CancelToken()):
        events.append(ev)
        if isinstance(ev, SectionEvent):
            assert ev.preview_video is None
            assert not (out.work_dir / "preview.mp4").exists() and not (out.work_dir / "pending.mp4").exists()
    result = events[-1].result
    assert result.frames == 61 and result.info["stats"]["frames_encoded"] == result.frames


def test_watched_job_previews_until_the_last_section_only(tiny_manager, golden_dir, tmp_path):
    out = output_options(tmp_path, preview_wanted=lambda: True)
    sections = []
    for ev in Engine(tiny_manager).generate(golden_params(golden_dir, "original"), out, CancelToken()):
        if isinstance(ev, SectionEvent):
            sections.append(ev)
            if ev.preview_video is not None:  # the final frames so far plus the pending ones
                assert probe_video(ev.preview_video).frames == ev.frames_so_far
    assert sections[0].preview_video is not None  # the first one is always built
    assert sections[-1].preview_video is None  # after the last section the video itself follows


def test_checkpoint_holds_latents_not_pixels(tiny_manager, golden_dir, tmp_path):
    out = output_options(tmp_path)
    cancel = CancelToken()
    with pytest.raises(CancelledError):
        for ev in Engine(tiny_manager).generate(golden_params(golden_dir, "f1"), out, cancel):
            if isinstance(ev, SectionEvent) and ev.section == 1:
                cancel.cancel()
    (ckpt,) = out.work_dir.glob("ckpt_*.safetensors")
    with safe_open(str(ckpt), "pt") as f:
        assert set(f.keys()) == {"history", "rng"}
        assert f.get_tensor("history").shape[1] == 16  # latent channels: no decoded frames
