"""Bad inputs raise InputError naming the field before any model is touched."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from modules.framepack.engine import Engine
from modules.framepack.outputs import OutputOptions
from modules.framepack.inputs import InputError, check_inputs
from modules.framepack.params import GenerationParams


class ExplodingManager:
    """Any model access fails the test: inputs must be checked first."""

    def __getattr__(self, name):
        raise AssertionError(f"model manager touched ({name}) before inputs were checked")


def _png_with_size(path: Path, w: int, h: int) -> Path:
    """A 1x1 PNG whose header claims w x h (decompression-bomb / absurd-size stand-in)."""
    src = path.with_suffix(".src.png")
    Image.new("RGB", (1, 1)).save(src)
    data = bytearray(src.read_bytes())
    ihdr = data[12:29]
    ihdr[4:12] = struct.pack(">II", w, h)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture()
def bad_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(good)
    text = tmp_path / "text.png"
    text.write_text("this is not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    return {"good": good, "missing": tmp_path / "nope.png", "text": text, "empty": empty,
            "truncated": truncated, "huge": _png_with_size(tmp_path / "huge.png", 100_000, 100_000),
            "thin": _png_with_size(tmp_path / "thin.png", 4000, 20)}


@pytest.mark.parametrize("kind,needle", [
    ("missing", "not found"), ("text", "not a readable image"), ("empty", "empty"),
    ("truncated", "image"), ("huge", "too large"), ("thin", "aspect ratio"),
])
def test_bad_start_image_raises_before_models(bad_files, tmp_path, kind, needle):
    params = GenerationParams(start_image=bad_files[kind], prompt="x")
    engine = Engine(ExplodingManager())
    out = OutputOptions(tmp_path / "out", tmp_path / "work", 16, True, True)
    with pytest.raises(InputError) as err:
        next(iter(engine.generate(params, out)))
    assert "start_image" in err.value.fields and needle in err.value.fields["start_image"]
    assert not (tmp_path / "out").exists()


def test_multiple_fields_listed(bad_files):
    params = GenerationParams(generation_type="Original with Endframe", start_image=bad_files["empty"],
                              keyframes=[{"image": str(bad_files["text"]), "seconds": 1.0}])
    with pytest.raises(InputError) as err:
        check_inputs(params)
    # named as the API does; the end frame is optional (tests/engine/test_input_rules.py)
    assert set(err.value.fields) == {"start_image", "keyframes.0.image"}


def test_good_image_passes_and_only_bad_fields_are_named(bad_files):
    assert check_inputs(GenerationParams(start_image=bad_files["good"], end_image=bad_files["good"])) is None
    with pytest.raises(InputError) as err:
        check_inputs(GenerationParams(generation_type="Original with Endframe", start_image=bad_files["good"],
                                      end_image=bad_files["text"]))
    assert set(err.value.fields) == {"end_image"}  # the good start image is not among the refusals
    assert "not a readable image" in err.value.fields["end_image"]


def test_an_image_as_input_video_and_a_video_as_start_image_are_refused(bad_files, small_video, tmp_path):
    """Judged by content, whatever the name: FFmpeg opens a PNG as a one-frame "video", and that is refused."""
    png_named_mp4 = tmp_path / "clip.mp4"
    png_named_mp4.write_bytes(bad_files["good"].read_bytes())
    for source in (bad_files["good"], png_named_mp4):
        with pytest.raises(InputError) as err:
            check_inputs(GenerationParams(generation_type="Video", input_video=source, prompt="x"))
        assert set(err.value.fields) == {"input_video"}
        assert err.value.fields["input_video"] == f"{source.name} is an image, not a video"
        assert str(err.value).startswith("invalid input: input_video: ")
    with pytest.raises(InputError) as err:
        check_inputs(GenerationParams(start_image=small_video, prompt="x"))
    assert err.value.fields == {"start_image": "small.mp4 is a video, not an image"}
    assert check_inputs(GenerationParams(generation_type="Video", input_video=small_video, prompt="x")) is None


def test_uploads_and_the_queue_share_the_checker(bad_files, small_video):
    """The UI's upload boxes refuse exactly what check_inputs refuses, with the same sentence."""
    from modules.framepack.inputs import check_file
    from studio.ui.uploads import UploadError, check_image, check_video

    for kind, path in (("video", bad_files["good"]), ("image", small_video), ("image", bad_files["thin"])):
        why = check_file(path, kind)
        assert why is not None
        with pytest.raises(UploadError) as err:
            (check_video if kind == "video" else check_image)(path, "Box")
        assert str(err.value) == f"Box: {why}"
    assert check_video(small_video) == small_video and check_image(bad_files["good"]) == bad_files["good"]


@pytest.mark.parametrize("field,value", [("total_seconds", 500), ("total_seconds", 0), ("width", 100000),
                                         ("steps", 0), ("latent_window_size", 40)])
def test_absurd_numbers_rejected_by_model(field, value):
    with pytest.raises(ValidationError):
        GenerationParams(**{field: value})
