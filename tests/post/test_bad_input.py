"""Bad input gives a clear error naming the problem, and no output file or folder appears."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.media.video_io import VideoError
from modules.postprocess.export import ExportOptions, export_video
from modules.postprocess.filters import FilterOptions, apply_filters
from modules.postprocess.frames import ExtractOptions, extract_frames
from modules.postprocess.interpolate import InterpolateOptions, interpolate_video
from modules.postprocess.join import JoinOptions, join_videos
from modules.postprocess.presets import PresetError, PresetStore
from modules.postprocess.timing import (LoopOptions, ReverseOptions, SpeedOptions, TrimOptions, change_speed,
                                        loop_video, reverse_video, trim_video)
from modules.postprocess.upscale import UpscaleOptions, upscale_video

OPS = {
    "filters": lambda i, o: apply_filters(i, FilterOptions(), o),
    "speed": lambda i, o: change_speed(i, SpeedOptions(factor=2), o),
    "loop": lambda i, o: loop_video(i, LoopOptions(), o),
    "trim": lambda i, o: trim_video(i, TrimOptions(start=0, end=1), o),
    "reverse": lambda i, o: reverse_video(i, ReverseOptions(), o),
    "export": lambda i, o: export_video(i, ExportOptions(), o),
    "join": lambda i, o: join_videos([i, i], JoinOptions(), o),
    "extract": lambda i, o: extract_frames(i, ExtractOptions(), o.parent),
    # Network operations fail on the input before any network is used (None would fail later).
    "upscale": lambda i, o: upscale_video(i, UpscaleOptions(model="realesr-animevideov3"), o,
                                          upscaler=_NeverUsed()),  # type: ignore[arg-type]
    "interpolate": lambda i, o: interpolate_video(i, InterpolateOptions(), o,
                                                  interpolator=_NeverUsed()),  # type: ignore[arg-type]
}


class _NeverUsed:
    scale = 4

    def __getattr__(self, name):
        raise AssertionError("the network must not run on bad input")


def _not_a_video(d: Path) -> Path:
    p = d / "notes.mp4"
    p.write_text("this is not a video\n" * 20)
    return p


def _empty_file(d: Path) -> Path:
    p = d / "empty.mp4"
    p.touch()
    return p


def _zero_frames(d: Path) -> Path:
    # A valid YUV4MPEG2 stream header (64 x 64 video) followed by no frame at all.
    p = d / "zero.y4m"
    p.write_bytes(b"YUV4MPEG2 W64 H64 F30:1 Ip A1:1 C420jpeg\n")
    return p


def _huge(d: Path) -> Path:
    # A header declaring 8192 x 8192 frames (over the 4096 x 4096 limit); the data is never needed.
    p = d / "huge.y4m"
    p.write_bytes(b"YUV4MPEG2 W8192 H8192 F30:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(4096))
    return p


BAD = {"not_a_video": (_not_a_video, "not a readable video"), "empty": (_empty_file, "empty"),
       "zero_frames": (_zero_frames, "no frames"), "huge": (_huge, "unsupported frame size")}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return {k: (make(d), msg) for k, (make, msg) in BAD.items()}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("op", list(OPS))
def test_bad_input_clear_error_and_nothing_written(bad_inputs, tmp_path, kind, op):
    path, message = bad_inputs[kind]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(VideoError, match=message) as info:
        OPS[op](path, out_dir / "result.mp4")
    assert path.name in str(info.value)
    assert list(out_dir.iterdir()) == []


def test_unknown_preset_is_a_clear_error(data_dir):
    with pytest.raises(PresetError, match="unknown preset 'nope'.*cinematic"):
        PresetStore(data_dir / "presets").load("nope")
