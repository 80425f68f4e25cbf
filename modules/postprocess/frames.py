"""Frames I/O: extract every Nth frame to images, and reassemble images into a video.

Extraction writes into a hidden temporary folder that is renamed to a unique final name
(`<video>_frames_<time>_<id>`) only when ffmpeg succeeds. Reassembly accepts a folder (images in
natural name order: frame_2 before frame_10) or an explicit list (kept in the given order); images of
another size than the first are resized to it.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from modules.cancel import CancelToken
from modules.media.video_io import MAX_FRAMES, MAX_PIXELS, write_video

from .common import DEFAULT_CRF, PostProcessError, ProgressCallback, check_output, check_video, report
from .ffmpeg import run_ffmpeg_raw

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


class ExtractOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every_nth: int = Field(1, ge=1, le=10_000, description="Keep frame 0, N, 2N, ...")
    image_format: Literal["png", "jpg"] = "png"


class ReassembleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fps: float = Field(30.0, gt=0, le=120)
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:48].strip("_") or "video"


def unique_folder(parent: Path, stem: str) -> Path:
    return Path(parent) / f"{_stem(stem)}_frames_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:6]}"


def extract_args(input_path: Path, every_nth: int, pattern: Path, image_format: str) -> list[str]:
    vf = ["-vf", f"select=not(mod(n\\,{every_nth}))"] if every_nth > 1 else []
    quality = ["-q:v", "2"] if image_format == "jpg" else []
    return ["-i", str(input_path), "-map", "0:v:0", *vf, "-fps_mode", "passthrough", *quality, str(pattern)]


def extract_frames(input_path: Path, options: ExtractOptions, output_dir: Path,
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    """Write frames 0, N, 2N, ... as frame_000001.<fmt>, ... into a new unique folder; returns it."""
    info = check_video(input_path)
    final = unique_folder(Path(output_dir), Path(input_path).stem)
    tmp = final.with_name(f".{final.name}.part")
    tmp.mkdir(parents=True)
    try:
        run_ffmpeg_raw(extract_args(Path(input_path), options.every_nth, tmp / f"frame_%06d.{options.image_format}",
                                    options.image_format),
                       total_frames=math.ceil(info.frames / options.every_nth), progress=progress, cancel=cancel,
                       stage="extract")
        if not any(tmp.iterdir()):
            raise PostProcessError(f"{Path(input_path).name}: no frames extracted")
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_images(source: Path | Sequence[Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise PostProcessError(f"{folder.name}: not a folder of images")
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                       key=_natural_key)
    else:
        files = [Path(p) for p in source]
    if not files:
        raise PostProcessError("no images to reassemble")
    if len(files) > MAX_FRAMES:
        raise PostProcessError(f"too many images ({len(files)} > {MAX_FRAMES})")
    return files


def _open_checked(path: Path) -> Image.Image:
    try:
        img = Image.open(path)  # reads the header only; size is checked before pixels are decoded
    except (UnidentifiedImageError, OSError) as exc:
        raise PostProcessError(f"{path.name}: not a readable image") from exc
    w, h = img.size
    if w < 2 or h < 2 or w * h > MAX_PIXELS:
        raise PostProcessError(f"{path.name}: unsupported image size {w}x{h}")
    return img


def reassemble_frames(source: Path | Sequence[Path], options: ReassembleOptions, output: Path,
                      progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    """Encode the images into an H.264 MP4 at `options.fps`. Returns `output`."""
    files = list_images(source)
    check_output(output, files)
    first = _open_checked(files[0])
    size = first.size
    first.close()
    for p in files:  # validate every file before writing anything
        _open_checked(p).close()

    def frames() -> Iterator[np.ndarray]:
        for i, p in enumerate(files):
            if cancel is not None:
                cancel.raise_if_cancelled()
            with _open_checked(p) as img:
                img = img.convert("RGB")
                if img.size != size:
                    log.info("%s: resized %dx%d -> %dx%d", p.name, *img.size, *size)
                    img = img.resize(size, Image.Resampling.LANCZOS)
                arr = np.asarray(img)
            report(progress, "reassemble", i + 1, len(files))
            yield arr

    return write_video(Path(output), frames(), fps=options.fps, crf=options.crf)

