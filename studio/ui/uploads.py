"""Content checks for uploads: nothing reaches the queue unless it really decodes."""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from modules.framepack.inputs import MAX_IMAGE_PIXELS
from modules.media.video_io import VideoError, probe_video


class UploadError(ValueError):
    """An uploaded file is not what the control expects; the message names the file."""


def file_path(value) -> Path | None:
    """The path behind a gr.File / gr.Image value (str, Path, FileData-like or None)."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
        if value is None:
            return None
    if isinstance(value, dict):
        value = value.get("path") or value.get("name")
    elif not isinstance(value, (str, Path)):
        value = getattr(value, "path", None) or getattr(value, "name", None)
    return Path(value) if value else None


def check_image(path: Path, label: str = "image") -> Path:
    """Decode the image fully; raise UploadError naming the file if it does not."""
    name = path.name
    if not path.is_file() or path.stat().st_size == 0:
        raise UploadError(f"{label}: {name} is empty or missing")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise UploadError(f"{label}: {name} is too large ({im.width}x{im.height})")
            im.load()  # decodes the pixels, not only the header
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UploadError(f"{label}: {name} is not a readable image ({exc.__class__.__name__})") from exc
    return path


def check_video(path: Path, label: str = "video") -> Path:
    try:
        probe_video(path, count_frames=False)
        # FFmpeg opens still images as one-frame "videos" (image2 / *_pipe demuxers); a video input wants a video.
        with av.open(str(path)) as container:
            fmt = container.format.name
    except (VideoError, av.error.FFmpegError, OSError) as exc:
        raise UploadError(f"{label}: {exc}") from exc
    if fmt.endswith("_pipe") or fmt.startswith("image2"):
        raise UploadError(f"{label}: {path.name} is an image, not a video")
    return path
