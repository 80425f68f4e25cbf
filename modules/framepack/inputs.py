"""The one input checker: files exist, decode as what their field wants (an image, a video), have sane sizes,
and the job's own rules hold. Runs before any model loads; the UI upload boxes, the HTTP API, the CLI, the
queue and the engine all use it, so an input is accepted or refused the same way everywhere."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from modules.framepack import prompts
from modules.framepack.grid_axes import GridError, expand_grid
from modules.framepack.params import GenerationParams, GenerationType
from modules.models.lora_files import LoraContext, LoraFormatError, check_lora

MAX_IMAGE_PIXELS = 8192 * 8192  # a larger image is refused (decompression bombs, absurd sizes)
MIN_IMAGE_SIDE = 16
MAX_ASPECT = 8.0
MAX_IMAGE_FILE_BYTES = 200 * 1024 * 1024


class InputError(ValueError):
    """One or more job inputs are unusable; `fields` maps field name ("keyframes.0.image") -> a sentence."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("invalid input: " + "; ".join(f"{k}: {v}" for k, v in self.fields.items()))


FileKind = Literal["image", "video"]


def iter_input_files(params: GenerationParams) -> Iterator[tuple[str, FileKind, Path]]:
    """(field name as errors report it, kind, path) for every input file the job names."""
    if params.start_image is not None:
        yield "start_image", "image", Path(params.start_image)
    if params.end_image is not None:
        yield "end_image", "image", Path(params.end_image)
    if params.input_video is not None:
        yield "input_video", "video", Path(params.input_video)
    for i, kf in enumerate(params.keyframes):
        yield f"keyframes.{i}.image", "image", Path(kf.image)


def _file_problem(p: Path, max_bytes: int | None) -> str | None:
    if not p.exists():
        return f"file not found: {p.name}"
    if not p.is_file():
        return f"not a file: {p.name}"
    size = p.stat().st_size
    if size == 0:
        return f"file is empty: {p.name}"
    if max_bytes is not None and size > max_bytes:
        return f"file too large ({size} bytes): {p.name}"
    return None


def check_image_file(path: Path) -> str | None:
    """None when the file is a decodable image of sane size, else why not (judged by content, not name)."""
    p = Path(path)
    if (why := _file_problem(p, MAX_IMAGE_FILE_BYTES)) is not None:
        return why
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
        if _is_video(p):
            return f"{p.name} is a video, not an image"
        return f"not a readable image: {p.name}"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"image cannot be decoded ({exc.__class__.__name__}): {p.name}"
    return None


def check_video_file(path: Path) -> str | None:
    """None when the file is a readable video (not a still image FFmpeg would open as one frame), else why not."""
    from modules.media.video_io import VideoError, is_still_image, probe_video

    p = Path(path)
    if (why := _file_problem(p, None)) is not None:
        return why
    try:
        probe_video(p, count_frames=False)
        if is_still_image(p):
            return f"{p.name} is an image, not a video"
    except VideoError as exc:
        return str(exc)
    return None


def _is_video(path: Path) -> bool:
    return check_video_file(path) is None


def check_file(path: Path, kind: FileKind) -> str | None:
    """None when the file is usable as `kind`, else why not."""
    return check_image_file(path) if kind == "image" else check_video_file(path)


def load_image_rgb(path: Path) -> np.ndarray:
    """uint8 H x W x 3 RGB (alpha composited over black, as a plain conversion does)."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def check_inputs(params: GenerationParams, loras: LoraContext | None = None) -> None:
    """Raise InputError naming every unusable field. Cheap: no model is touched.

    The one input checker: the queue (add, import; so UI, API and CLI) and the engine (every run) call it.
    `loras` (the LoRA folder and model set) checks each named LoRA from its header against the job's transformer
    (lora_files.check_lora), so a junk or wrong-shape file is refused when the job is added, not when it runs."""
    errors: dict[str, str] = {}
    gt = params.generation_type
    for field, kind, path in iter_input_files(params):
        if (why := check_file(path, kind)) is not None:
            errors[field] = why
    # The end frame is optional (user guide: "End Frame (Optional)"); without one an Endframe type runs
    # as its plain type (Original, Video).
    for i, kf in enumerate(params.keyframes):
        if kf.seconds > params.total_seconds:
            errors[f"keyframes.{i}.seconds"] = f"{kf.seconds:g} s is after the video's end ({params.total_seconds:g} s)"
    if params.prompt:
        try:
            prompts.parse_timestamped_prompt(params.prompt)
        except ValueError as exc:  # PromptError: its sentence names the field already ("prompt: ...")
            errors["prompt"] = str(exc).removeprefix("prompt: ")
    if loras is not None:
        for i, spec in enumerate(params.loras):
            try:
                check_lora(spec.name, loras, params.transformer_kind)
            except (LoraFormatError, OSError) as exc:  # the sentence names the file
                errors[f"loras.{i}.name"] = str(exc)
    if gt == GenerationType.GRID:
        try:
            expand_grid(params)  # every cell validated now, not when the grid reaches it
        except GridError as exc:
            errors["grid_y" if str(exc).startswith("grid_y") else "grid_x"] = str(exc)
    if errors:
        raise InputError(errors)
