"""Upload boxes: the path behind a Gradio file value, and the one input checker (modules/framepack/inputs.py)
with the control's label, so nothing reaches the queue unless it really decodes as what the box wants."""

from __future__ import annotations

from pathlib import Path

from modules.framepack.inputs import check_image_file, check_video_file


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
    """The path when it is a usable image (modules/framepack/inputs.py decides); else UploadError naming it."""
    if (why := check_image_file(path)) is not None:
        raise UploadError(f"{label}: {why}")
    return path


def check_video(path: Path, label: str = "video") -> Path:
    """The path when it is a readable video, not a still image (inputs.py decides); else UploadError naming it."""
    if (why := check_video_file(path)) is not None:
        raise UploadError(f"{label}: {why}")
    return path
