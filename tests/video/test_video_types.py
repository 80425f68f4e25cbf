"""Video, Video with Endframe and Video F1 end to end on the tiny models, through Engine.generate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.framepack import video_source as vs
from modules.framepack.engine import Engine
from modules.framepack.outputs import OutputOptions
from modules.cancel import CancelledError, CancelToken
from modules.framepack.events import DoneEvent, SectionEvent
from modules.framepack.inputs import InputError
from modules.framepack.metadata import params_from_metadata
from modules.framepack.params import GenerationParams, GenerationType
from modules.media.video_io import probe_video, read_video
from modules.models.manager import ModelManager, RuntimeConfig
from modules.models.registry import ModelSet


@pytest.fixture(scope="module")
def engine(tiny_manager) -> Engine:
    return Engine(tiny_manager)


@pytest.fixture(scope="module")
def end_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video_end") / "end.png"
    Image.fromarray(np.full((64, 64, 3), (20, 200, 90), np.uint8)).save(path)
    return path


def _params(source: Path, gt: GenerationType, **kw) -> GenerationParams:
    base = dict(generation_type=gt, input_video=source, prompt="a slow pan", total_seconds=1.0,
                latent_window_size=6, steps=2, width=64, height=64, num_context_frames=4, cache_type="None",
                seed=7)
    base.update(kw)
    return GenerationParams(**base)


def _run(engine: Engine, params: GenerationParams, tmp: Path, name: str = "work", cancel: CancelToken | None = None,
         cancel_after_section: int | None = None):
    trace: dict = {}
    out = OutputOptions(output_dir=tmp / "out", work_dir=tmp / name, crf=10, save_metadata=True,
                        cleanup_videos=True)
    result = None
    for ev in engine.generate(params, out, cancel, trace=trace):
        if isinstance(ev, SectionEvent) and cancel is not None and ev.section == cancel_after_section:
            cancel.cancel()
        if isinstance(ev, DoneEvent):
            result = ev.result
    return result, trace


def _source_latents_in_context(ci, src_latents: torch.Tensor, n: int, f1: bool) -> None:
    """The last N source latents fill the newest context slots (4x ... 2x, 1x); older slots are zero."""
    ctx1 = ci.clean[:, :, 1:2] if f1 else ci.clean[:, :, 0:1]
    ctx = torch.cat([ci.clean_4x, ci.clean_2x, ctx1], dim=2)
    torch.testing.assert_close(ctx[:, :, -n:], src_latents[:, :, -n:].to(ctx), rtol=0, atol=0)
    assert (ctx[:, :, :-n] == 0).all()


def _f1_params(source_video: Path) -> GenerationParams:
    return _params(source_video, GenerationType.VIDEO_F1, latent_window_size=3, num_context_frames=5)


@pytest.fixture(scope="module")
def f1_run(engine: Engine, source_video: Path, tmp_path_factory):
    """One uninterrupted Video F1 run (2 sections), shared by the property and the resume tests."""
    tmp = tmp_path_factory.mktemp("video_f1")
    result, tr = _run(engine, _f1_params(source_video), tmp)
    return result, dict(tr), tmp


def test_video_f1_combined_with_source(f1_run, source_video: Path):
    params = _f1_params(source_video)
    result, tr, _ = f1_run
    frames, fps = read_video(result.video)
    # 1 s at lws 3 = 2 sections of 4*3 frames after the 30 source frames
    assert frames.shape == (30 + 24, 64, 64, 3) and fps == 30 and result.frames == 54
    src = vs.load_source_video(source_video, (64, 64)).frames
    # the output starts with the source (re-encoded: codec error only), cross-fading in its last 4 frames
    assert np.abs(frames[:26].astype(int) - src[:26].astype(int)).mean() < 2.5
    assert np.abs(frames[30:].astype(int) - src[-1:].astype(int)).mean() > 5  # the extension is new content
    # structure: F1 layout, start slot = the last source frame's image latent, context = last 5 latents
    ci0, ci1 = tr["section00.clean_inputs"], tr["section01.clean_inputs"]
    assert ci0.indices.latent.tolist() == [20, 21, 22] and ci0.indices.clean.tolist() == [0, 19]
    torch.testing.assert_close(ci0.clean[:, :, :1], tr["prepared"].start_latent)
    _source_latents_in_context(ci0, tr["source_latents"], 5, f1=True)
    # section 1 continues from section 0: newest 3 context latents are section 0's output, then source
    ctx1 = torch.cat([ci1.clean_4x, ci1.clean_2x, ci1.clean[:, :, 1:2]], dim=2)
    torch.testing.assert_close(ctx1[:, :, -3:], tr["section00.generated_latents"])
    torch.testing.assert_close(ctx1[:, :, -5:-3], tr["source_latents"][:, :, -2:])
    # metadata round-trips and records the source
    assert params_from_metadata(result.metadata) == params
    assert probe_video(result.video).frames == 54


def test_video_image_embedding_is_the_last_source_frame(f1_run, source_video: Path, tiny_manager):
    from modules.framepack import conditioning as cond

    _, tr, _ = f1_run
    last = vs.load_source_video(source_video, (64, 64)).last_frame
    assert np.array_equal(tr["prepared"].start_image, last)
    m = tiny_manager.shared()
    torch.testing.assert_close(tr["prepared"].image_embeds,
                               cond.encode_image_siglip(last, m.feature_extractor, m.image_encoder))


def test_video_original_extension_only(engine: Engine, source_video: Path, tmp_path: Path):
    params = _params(source_video, GenerationType.VIDEO, combine_with_source=False, num_context_frames=2)
    result, tr = _run(engine, params, tmp_path)
    frames, fps = read_video(result.video)
    assert frames.shape == (24, 64, 64, 3) and fps == 30  # 1 section of 4*6 frames, no source
    assert result.width == 64 and result.height == 64
    ci = tr["section00.clean_inputs"]
    # Original layout [4x 16, 2x 2, pre, window 6, post]: pre = newest source latent, post = zeros
    assert ci.indices.clean.tolist() == [18, 25] and ci.indices.latent.tolist() == list(range(19, 25))
    _source_latents_in_context(ci, tr["source_latents"], 2, f1=False)
    assert (ci.clean[:, :, 1] == 0).all()


def test_video_with_endframe(engine: Engine, source_video: Path, end_image: Path, tmp_path: Path):
    params = _params(source_video, GenerationType.VIDEO_ENDFRAME, end_image=end_image, end_frame_strength=0.5,
                     num_context_frames=10)
    result, tr = _run(engine, params, tmp_path)
    frames, _ = read_video(result.video)
    assert frames.shape == (30 + 24, 64, 64, 3)
    ci = tr["section00.clean_inputs"]  # the only, hence final, section: post = end latent * influence
    torch.testing.assert_close(ci.clean[:, :, 1:2], tr["prepared"].end_latent * 0.5)
    # a 30-frame source gives 8 latents (tail of 29 frames), fewer than the 10 asked for: all of them
    assert tr["source_latents"].shape[2] == 8
    _source_latents_in_context(ci, tr["source_latents"], 8, f1=False)


def test_bad_video_fails_before_models_load(engine: Engine, tmp_path: Path):
    bad = tmp_path / "clip.mp4"
    bad.write_text("this is not a video")
    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))  # fresh: nothing loaded
    params = _params(bad, GenerationType.VIDEO_F1)
    with pytest.raises(InputError, match="input_video") as err:
        list(Engine(manager).generate(params, OutputOptions(tmp_path / "o", tmp_path / "w", 10, False, True)))
    assert "clip.mp4" in str(err.value)
    assert manager.load_count == 0 and not (tmp_path / "o").exists()


def test_cancel_then_resume_gives_the_same_video(engine: Engine, f1_run, source_video: Path, tmp_path: Path):
    full, _, _ = f1_run
    token = CancelToken()
    with pytest.raises(CancelledError):
        _run(engine, _f1_params(source_video), tmp_path, "resumed", cancel=token, cancel_after_section=0)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.mp4"))  # no final file
    assert (tmp_path / "resumed" / "checkpoint.json").is_file()
    resumed, tr = _run(engine, _f1_params(source_video), tmp_path, "resumed")
    assert "section00.generated_latents" not in tr and "section01.generated_latents" in tr  # from checkpoint
    a, _ = read_video(full.video)
    b, _ = read_video(resumed.video)
    assert a.shape == (54, 64, 64, 3)
    np.testing.assert_array_equal(a, b)
