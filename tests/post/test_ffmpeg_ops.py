"""ffmpeg-based operations: each checked on decoded frames of a small generated video."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from modules.cancel import CancelledError, CancelToken
from modules.media.video_io import read_video, write_video
from modules.postprocess.common import PostProcessError
from modules.postprocess.export import ExportOptions, export_video
from modules.postprocess.filters import FilterOptions, FilterSettings, apply_filters, build_filter_chain
from modules.postprocess.join import JoinOptions, join_videos
from modules.postprocess.timing import (LoopOptions, ReverseOptions, SpeedOptions, TrimOptions, change_speed,
                                        loop_video, reverse_video, trim_video)
from tests.conftest import make_test_frames
from tests.post.helpers import files_in, nearest_indices

N = 12  # frames in small_video


def luma(frames: np.ndarray) -> float:
    f = frames.astype(np.float64)
    return float((0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]).mean())


def test_brightness_raises_mean_luma(small_video, source_frames, tmp_path):
    progress = []
    out = apply_filters(small_video, FilterOptions(settings=FilterSettings(brightness=0.25)), tmp_path / "b.mp4",
                        progress=progress.append)
    frames, fps = read_video(out)
    assert frames.shape == source_frames.shape and fps == 30
    assert luma(frames) > luma(source_frames) + 20
    assert progress[-1].done == progress[-1].total == N


def test_every_filter_runs_and_keeps_geometry(small_video, source_frames, tmp_path):
    s = FilterSettings(brightness=0.05, contrast=1.2, saturation=0.5, temperature=40, sharpen=1.0, blur=0.8,
                       denoise=2, vignette=0.6, s_curve=0.5, film_grain=10)
    chain = build_filter_chain(s)
    for name in ("hqdn3d", "gblur", "unsharp", "eq=", "colortemperature", "curves", "vignette", "noise"):
        assert name in chain
    frames, _ = read_video(apply_filters(small_video, FilterOptions(settings=s), tmp_path / "all.mp4"))
    assert frames.shape == source_frames.shape
    assert np.abs(frames.astype(int) - source_frames).mean() > 3


def test_neutral_filters_are_identity_chain():
    assert build_filter_chain(FilterSettings()) == "null"
    assert FilterSettings().is_neutral()


def test_reverse_reverses_order(small_video, source_frames, tmp_path):
    frames, _ = read_video(reverse_video(small_video, ReverseOptions(), tmp_path / "r.mp4"))
    assert nearest_indices(frames, source_frames) == list(range(N - 1, -1, -1))


def test_pingpong_is_forward_then_backward(small_video, source_frames, tmp_path):
    out = loop_video(small_video, LoopOptions(mode="pingpong", repeats=2), tmp_path / "pp.mp4")
    cycle = list(range(N)) + list(range(N - 2, 0, -1))
    assert nearest_indices(read_video(out)[0], source_frames) == cycle * 2


def test_loop_x3_triples(small_video, source_frames, tmp_path):
    frames, fps = read_video(loop_video(small_video, LoopOptions(mode="loop", repeats=3), tmp_path / "l.mp4"))
    assert len(frames) == 3 * N and fps == 30
    assert nearest_indices(frames, source_frames) == list(range(N)) * 3


def test_speed_2x_halves_frame_count_at_same_fps(small_video, source_frames, tmp_path):
    frames, fps = read_video(change_speed(small_video, SpeedOptions(factor=2.0), tmp_path / "s.mp4"))
    assert len(frames) == N // 2 and fps == 30
    idx = nearest_indices(frames, source_frames)
    assert idx == sorted(idx) and idx[0] == 0 and idx[-1] >= N - 2


def test_speed_half_doubles_frame_count(small_video, tmp_path):
    frames, fps = read_video(change_speed(small_video, SpeedOptions(factor=0.5), tmp_path / "s.mp4"))
    assert len(frames) == 2 * N and fps == 30


def test_trim_keeps_the_right_range(small_video, source_frames, tmp_path):
    # frames at t = i/30: 0.09 <= t < 0.29 keeps i = 3..8
    frames, _ = read_video(trim_video(small_video, TrimOptions(start=0.09, end=0.29), tmp_path / "t.mp4"))
    assert nearest_indices(frames, source_frames) == list(range(3, 9))


def test_trim_rejects_bad_ranges(small_video, tmp_path):
    with pytest.raises(ValueError):
        TrimOptions(start=0.3, end=0.1)
    with pytest.raises(PostProcessError, match="past the end"):
        trim_video(small_video, TrimOptions(start=5.0), tmp_path / "t.mp4")
    assert files_in(tmp_path) == {"small.mp4"}


def test_join_sums_lengths_and_fits_other_sizes(small_video, tmp_path):
    other = write_video(tmp_path / "other.mp4", make_test_frames(n=5, h=48, w=48, seed=1), fps=30, crf=10)
    frames, fps = read_video(join_videos([small_video, other, small_video], JoinOptions(), tmp_path / "j.mp4"))
    assert len(frames) == N + 5 + N and frames.shape[1:3] == (64, 96) and fps == 30
    with pytest.raises(PostProcessError, match="at least two"):
        join_videos([small_video], JoinOptions(), tmp_path / "j2.mp4")


@pytest.mark.parametrize("fmt", ["gif", "webm"])
def test_export_gif_and_webm_decode(small_video, tmp_path, fmt):
    out = export_video(small_video, ExportOptions(format=fmt, quality=60, max_width=48), tmp_path / f"e.{fmt}")
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        codec = c.streams.video[0].codec_context.name
    assert codec == ("gif" if fmt == "gif" else "vp9")
    assert len(frames) == N and frames[0].shape == (32, 48, 3)


def test_export_mp4_keeps_size_without_max_width(small_video, tmp_path):
    frames, _ = read_video(export_video(small_video, ExportOptions(format="mp4"), tmp_path / "e.mp4"))
    assert frames.shape == (N, 64, 96, 3)
    with pytest.raises(PostProcessError, match=".webm"):
        export_video(small_video, ExportOptions(format="webm"), tmp_path / "e2.mp4")


def test_cancel_stops_and_leaves_nothing(small_video, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        loop_video(small_video, LoopOptions(repeats=20), tmp_path / "c.mp4", cancel=token)
    assert files_in(tmp_path) == {"small.mp4"}


def test_output_may_not_overwrite_input(small_video):
    with pytest.raises(PostProcessError, match="overwrite"):
        reverse_video(small_video, ReverseOptions(), Path(small_video))


def test_colour_temperature_direction_and_grey_saturation(small_video, source_frames, tmp_path):
    def red_minus_blue(frames: np.ndarray) -> float:
        return float(frames[..., 0].astype(np.float64).mean() - frames[..., 2].astype(np.float64).mean())

    warm, _ = read_video(apply_filters(small_video, FilterOptions(settings=FilterSettings(temperature=80)),
                                       tmp_path / "warm.mp4"))
    cool, _ = read_video(apply_filters(small_video, FilterOptions(settings=FilterSettings(temperature=-80)),
                                       tmp_path / "cool.mp4"))
    base = red_minus_blue(source_frames)
    assert red_minus_blue(warm) > base + 5 and red_minus_blue(cool) < base - 5
    grey, _ = read_video(apply_filters(small_video, FilterOptions(settings=FilterSettings(saturation=0.0)),
                                       tmp_path / "grey.mp4"))
    assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).mean() < 3


def test_export_quality_trades_size(small_video, tmp_path):
    low = export_video(small_video, ExportOptions(format="mp4", quality=10), tmp_path / "low.mp4")
    high = export_video(small_video, ExportOptions(format="mp4", quality=95), tmp_path / "high.mp4")
    assert low.stat().st_size < high.stat().st_size
