"""The resolution bucket a width/height request will use, from the engine's own bucket function."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from modules.framepack.buckets import find_bucket


def bucket_for(width: int, height: int, image: Path | None = None) -> tuple[int, int]:
    """(width, height) of the bucket the engine will use (the start image's aspect decides when given)."""
    image_hw = None
    if image is not None:
        try:
            with Image.open(image) as im:
                image_hw = (im.height, im.width)
        except OSError:
            image_hw = None
    h, w = find_bucket(int(width), int(height), image_hw)
    return w, h


def bucket_text(width: float | None, height: float | None, image: Path | None = None) -> str:
    if not width or not height:
        return "Bucket used: -"
    w, h = bucket_for(int(width), int(height), image)
    return f"Bucket used: **{w} × {h}**"
