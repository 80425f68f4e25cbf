"""Standalone pieces of the video types: reading, encoding, clean-latent packing, decoding, combining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modules.framepack import video_source as vs
from modules.media.video_io import VideoError, read_video
from tests.video.conftest import smooth_frames, write_source

# ------------------------------------------------------------------------------------------- reading


def test_load_source_keeps_frames_size_and_fps(source_video: Path):
    src = vs.load_source_video(source_video, (64, 64))
    assert src.frames.shape == (30, 64, 64, 3) and src.frames.dtype == np.uint8
    assert src.num_frames == 30 and src.fps == 30 and src.source_fps == pytest.approx(30)
    assert src.source_size == (64, 64)
    # decoded frames are the written ones up to codec error
    assert np.abs(src.frames.astype(int) - smooth_frames(30).astype(int)).mean() < 3
    np.testing.assert_array_equal(src.last_frame, src.frames[-1])


def test_tail_only_and_streaming_all(source_video: Path):
    full = vs.load_source_video(source_video, (64, 64))
    tail = vs.load_source_video(source_video, (64, 64), max_frames=vs.tail_frames_for(2))
    assert tail.frames.shape[0] == 9 and tail.num_frames == 30
    np.testing.assert_array_equal(tail.frames, full.frames[-9:])
    streamed = np.stack(list(tail.iter_frames()))
    np.testing.assert_array_equal(streamed, full.frames)


def test_bucket_crop_from_other_aspect(tmp_path: Path):
    path = write_source(tmp_path / "wide.mp4", n=6, h=64, w=128)
    src = vs.load_source_video(path, (64, 96))
    assert src.frames.shape == (6, 64, 96, 3) and src.source_size == (128, 64)
    # the centre crop keeps the middle columns (same scale: 64 rows fit, 128 -> crop 16 each side)
    raw, _ = read_video(path)
    assert np.abs(src.frames.astype(int) - raw[:, :, 16:112].astype(int)).max() <= 1


@pytest.mark.parametrize("fps,expected", [(15, 12), (60, 3)])
def test_resampled_to_30_fps(tmp_path: Path, fps: float, expected: int):
    path = write_source(tmp_path / f"s{fps}.mp4", n=6, fps=fps)
    src = vs.load_source_video(path, (64, 64))
    assert src.fps == 30 and src.source_fps == pytest.approx(fps) and src.num_frames == expected
    raw, _ = read_video(path)
    if fps == 15:  # each source frame shown twice
        np.testing.assert_array_equal(src.frames[::2], raw)
        np.testing.assert_array_equal(src.frames[1::2], raw)
    else:  # every other frame kept
        np.testing.assert_array_equal(src.frames, raw[::2])


@pytest.mark.parametrize("kind", ["missing", "empty", "text"])
def test_bad_source_is_a_clear_error(tmp_path: Path, kind: str):
    path = tmp_path / "bad.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a video at all\n" * 20)
    with pytest.raises(VideoError, match="bad.mp4"):
        vs.load_source_video(path, (64, 64))
    with pytest.raises(ValueError):
        vs.check_source_video(path)


# ------------------------------------------------------------------------------------------ encoding


def test_encode_shapes_alignment_and_chunks(tiny_vae):
    frames = smooth_frames(7)  # 7 = 4*1+1 + 2 extra: the 2 oldest are dropped
    lat = vs.encode_video_latents(tiny_vae, frames, chunk_frames=65)
    assert lat.shape == (1, 16, 2, 8, 8) and lat.dtype == torch.float32
    np.testing.assert_array_equal(lat, vs.encode_video_latents(tiny_vae, frames[2:], chunk_frames=65))
    # the image latent is the start-latent convention: mode() * scaling_factor of one frame
    x = torch.from_numpy(frames[-1]).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None]
    with torch.no_grad():
        ref = tiny_vae.encode(x).latent_dist.mode() * tiny_vae.config.scaling_factor
    torch.testing.assert_close(vs.encode_image_latent(tiny_vae, frames[-1]), ref, rtol=0, atol=1e-5)
    # chunked: 5-frame chunks sharing one frame (9 frames -> 2 chunks) keep the count; chunk 1 is exact
    nine = smooth_frames(9)
    chunked = vs.encode_video_latents(tiny_vae, nine, chunk_frames=5)
    assert chunked.shape == (1, 16, 3, 8, 8) and torch.isfinite(chunked).all()
    torch.testing.assert_close(chunked[:, :, :2], vs.encode_video_latents(tiny_vae, nine[:5]), rtol=0, atol=1e-5)


def test_aligned_tail():
    assert [vs.aligned_tail(n) for n in (1, 4, 5, 8, 9, 41, 43)] == [1, 1, 5, 5, 9, 41, 41]
    assert [vs.tail_frames_for(n) for n in (2, 5, 10)] == [9, 21, 41]


# ---------------------------------------------------------------------------------- clean latents


def _hist(n: int) -> torch.Tensor:
    """History whose latent i is filled with the value i + 1 (so zeros mean 'no context')."""
    return torch.arange(1, n + 1, dtype=torch.float32).view(1, 1, n, 1, 1).expand(1, 16, n, 2, 2).clone()


@pytest.mark.parametrize("n_ctx", [2, 5, 10])
def test_context_slots_hold_last_n_latents(n_ctx: int):
    c4, c2, c1 = vs.context_slots(_hist(12), n_ctx)
    ctx = torch.cat([c4, c2, c1], dim=2)[0, 0, :, 0, 0]
    assert c4.shape[2] == 16 and c2.shape[2] == 2 and c1.shape[2] == 1
    assert ctx[-n_ctx:].tolist() == list(range(13 - n_ctx, 13))
    assert (ctx[:-n_ctx] == 0).all()


def test_f1_layout():
    start = torch.full((1, 16, 1, 2, 2), -7.0)
    inp = vs.f1_section_inputs(_hist(6), start, 4, lws=3)
    assert inp.latent_indices.tolist() == [[20, 21, 22]]
    assert inp.clean_latent_indices.tolist() == [[0, 19]]
    assert inp.clean_latent_2x_indices.tolist() == [[17, 18]]
    assert inp.clean_latent_4x_indices.tolist() == [list(range(1, 17))]
    assert inp.clean_latents[0, 0, :, 0, 0].tolist() == [-7.0, 6.0]
    assert inp.clean_latents_2x[0, 0, :, 0, 0].tolist() == [4.0, 5.0]
    assert inp.clean_latents_4x[0, 0, -1, 0, 0] == 3 and (inp.clean_latents_4x[0, 0, :-1] == 0).all()
    kw = inp.transformer_kwargs()
    assert kw["indices_latents"].ndim == 1 and kw["latents_clean"].shape[2] == 2


def test_original_layout_and_end_frame_post():
    inp = vs.original_section_inputs(_hist(6), 3, lws=2)
    assert inp.clean_latent_4x_indices.tolist() == [list(range(0, 16))]
    assert inp.clean_latent_2x_indices.tolist() == [[16, 17]]
    assert inp.clean_latent_indices.tolist() == [[18, 21]]
    assert inp.latent_indices.tolist() == [[19, 20]]
    assert inp.clean_latents[0, 0, :, 0, 0].tolist() == [6.0, 0.0]  # pre = newest, post = unknown future
    assert inp.clean_latents_2x[0, 0, :, 0, 0].tolist() == [4.0, 5.0]
    end = torch.full((1, 16, 1, 2, 2), 9.0)
    ext = vs.prepare_extension("original", _hist(6), end * 0, 3, 2, 3, end_latent=end, end_strength=0.5)
    posts = [ext.section_inputs(k).clean_latents[0, 0, 1, 0, 0].item() for k in range(3)]
    assert posts == [0.0, 0.0, 4.5]


# ------------------------------------------------------------------------------------------ frames


def _piecewise_decode(latents: torch.Tensor) -> torch.Tensor:
    """A stand-in causal decoder: latent 0 -> 1 frame, each later latent -> 4 frames of its value / 100."""
    vals = latents[0, 0, :, 0, 0] / 100
    per = torch.cat([vals[:1], vals[1:].repeat_interleave(4)])
    return per.view(1, 1, -1, 1, 1).expand(1, 3, -1, 4, 4).clone()


@pytest.mark.parametrize("n_src,lws,sections", [(3, 2, 3), (1, 3, 2), (2, 1, 4)])
def test_decode_soft_append_frame_layout(n_src: int, lws: int, sections: int):
    ext = vs.prepare_extension("f1", _hist(n_src), _hist(1), 2, lws, sections)
    out = []
    for k in range(sections):
        ext.section_inputs(k)
        ext.append(torch.full((1, 16, lws, 2, 2), 10.0 * (k + 1)).add(
            torch.arange(lws, dtype=torch.float32).view(1, 1, lws, 1, 1)))
        out.append(ext.decode_step(_piecewise_decode))
    frames = np.concatenate(out)
    assert len(frames) == ext.overlap + ext.extension_frames == ext.frames_done
    assert ext.extension_frames == sections * 4 * lws
    # the overlap re-renders the last source latent; then each generated latent gives 4 frames
    expected = [n_src] * ext.overlap + [10 * (k + 1) + i for k in range(sections) for i in range(lws) for _ in range(4)]
    want = (np.clip(np.array(expected) / 100, -1, 1) * 127.5 + 127.5).astype(np.uint8)
    np.testing.assert_array_equal(frames[:, 0, 0, 0], want)


def test_combine_with_source_crossfades_overlap():
    src = [np.full((2, 2, 3), 200, np.uint8) for _ in range(6)]
    gen = [np.full((2, 2, 3), 0, np.uint8) for _ in range(5)]
    out = np.stack(list(vs.combine_with_source(iter(src), iter(gen), 3)))
    assert len(out) == 6 + 5 - 3
    assert out[:, 0, 0, 0].tolist() == [200, 200, 200, 200, 100, 0, 0, 0]
    assert len(list(vs.combine_with_source(src, gen, 0))) == 11


def test_extension_output_combine_and_extension_only(source_video: Path):
    src = vs.load_source_video(source_video, (64, 64), max_frames=9)
    gen = np.zeros((4 + 8, 64, 64, 3), np.uint8)
    for combine, length in ((True, 30 + 8), (False, 8)):
        writer = vs.ExtensionOutput(src, overlap=4, combine=combine)
        frames = list(writer.push(gen[:3])) + list(writer.push(gen[3:7])) + list(writer.push(gen[7:]))
        assert len(frames) == length == writer.total_frames(8)
    full = vs.load_source_video(source_video, (64, 64)).frames
    writer = vs.ExtensionOutput(src, overlap=4, combine=True)
    frames = np.stack(list(writer.push(gen)))
    np.testing.assert_array_equal(frames[:26], full[:26])
    np.testing.assert_array_equal(frames[26], full[26])  # weight 1 on the source at the first overlap frame
    assert (frames[29] == 0).all()


def test_resampled_count():
    assert vs.resampled_count(6, 15, 30) == 12 and vs.resampled_count(6, 60, 30) == 3
    assert vs.resampled_count(30, 30, 30) == 30 and vs.resampled_count(25, 25, 30) == 30
    assert vs.resampled_count(1, 60, 30) == 1


def test_f1_end_frame_post_slot():
    post = torch.full((1, 16, 1, 2, 2), 5.0)
    inp = vs.f1_section_inputs(_hist(4), _hist(1), 2, lws=3, post_latent=post)
    assert inp.clean_latent_indices.tolist() == [[0, 19, 23]]
    assert inp.clean_latents[0, 0, :, 0, 0].tolist() == [1.0, 4.0, 5.0]
