"""Input checks that run before any model loads: files exist, decode, and have sane sizes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from modules.framepack import prompts
from modules.framepack.grid_axes import GridError, expand_grid
from modules.framepack.params import GenerationParams, GenerationType

MAX_IMAGE_PIXELS = 8192 * 8192  # a larger image is refused (decompression bombs, absurd sizes)
MIN_IMAGE_SIDE = 16
MAX_ASPECT = 8.0
MAX_IMAGE_FILE_BYTES = 200 * 1024 * 1024


class InputError(ValueError):
    """One or more job inputs are unusable; `fields` maps field name -> reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("invalid input: " + "; ".join(f"{k}: {v}" for k, v in self.fields.items()))


def _check_image_file(path: Path) -> str | None:
    """None when the file is a decodable image of sane size, else the reason."""
    p = Path(path)
    if not p.exists():
        return f"file not found: {p}"
    if not p.is_file():
        return f"not a file: {p}"
    size = p.stat().st_size
    if size == 0:
        return f"file is empty: {p.name}"
    if size > MAX_IMAGE_FILE_BYTES:
        return f"file too large ({size} bytes): {p.name}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    return f"image too large ({w}x{h}): {p.name}"
                if min(w, h) < MIN_IMAGE_SIDE:
                    return f"image too small ({w}x{h}, need at least {MIN_IMAGE_SIDE} px): {p.name}"
                if max(w, h) / min(w, h) > MAX_ASPECT:
                    return f"aspect ratio {w}x{h} is beyond 1:{MAX_ASPECT:g}: {p.name}"
                im.load()  # full decode: truncated or corrupt data fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return f"image too large (over {MAX_IMAGE_PIXELS} pixels): {p.name}"
    except UnidentifiedImageError:
        return f"not a readable image: {p.name}"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"image cannot be decoded ({exc.__class__.__name__}): {p.name}"
    return None


def load_image_rgb(path: Path) -> np.ndarray:
    """uint8 H x W x 3 RGB (alpha composited over black, as a plain conversion does)."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def check_inputs(params: GenerationParams) -> None:
    """Raise InputError naming every unusable field. Cheap: no model is touched."""
    errors: dict[str, str] = {}
    gt = params.generation_type
    if params.start_image is not None:
        if (why := _check_image_file(params.start_image)) is not None:
            errors["start_image"] = why
    if params.end_image is not None and gt.uses_end_frame:  # other types ignore it
        if (why := _check_image_file(params.end_image)) is not None:
            errors["end_image"] = why
    elif gt in (GenerationType.ORIGINAL_ENDFRAME, GenerationType.VIDEO_ENDFRAME):
        errors["end_image"] = f"required for generation type {gt.value!r}"
    for i, kf in enumerate(params.keyframes):
        if (why := _check_image_file(kf.image)) is not None:
            errors[f"keyframes[{i}].image"] = why
        if kf.seconds > params.total_seconds:
            errors[f"keyframes[{i}].seconds"] = f"{kf.seconds:g} s is after the video's end ({params.total_seconds:g} s)"
    if gt.is_video and params.input_video is not None:
        from modules.media.video_io import VideoError, probe_video
        try:
            probe_video(params.input_video, count_frames=False)
        except VideoError as exc:
            errors["input_video"] = str(exc)
    if params.prompt:
        try:
            prompts.parse_timestamped_prompt(params.prompt)
        except ValueError as exc:
            errors["prompt"] = str(exc)
    if gt == GenerationType.GRID:
        try:
            expand_grid(params)  # every cell validated now, not when the grid reaches it
        except GridError as exc:
            errors["grid_y" if str(exc).startswith("grid_y") else "grid_x"] = str(exc)
    if errors:
        raise InputError(errors)
