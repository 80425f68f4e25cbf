"""Finished videos in the output folder: listing (newest first), cached thumbnails, info and delete."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modules.media.video_io import VideoError, atomic_output, iter_frames, read_comment

log = logging.getLogger(__name__)

THUMB_SIZE = 256
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class OutputItem:
    video: Path
    mtime: float

    @property
    def name(self) -> str:
        return self.video.name


def list_outputs(folder: Path) -> list[OutputItem]:
    """Every finished MP4 under `folder` (not hidden/partial files), newest first. One scandir per folder."""
    items: list[OutputItem] = []
    if not folder.is_dir():
        return items
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue  # temp/partial names start with a dot
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.name.lower().endswith(".mp4") and e.is_file(follow_symlinks=False):
                        items.append(OutputItem(Path(e.path), e.stat().st_mtime))
        except OSError:
            continue
    items.sort(key=lambda i: (i.mtime, i.name), reverse=True)
    return items


def page(folder: Path, thumbs_dir: Path, index: int, size: int) -> tuple[list[tuple[str, str]], int, int]:
    """One gallery page, newest first: ([(thumbnail, caption)], page index, total videos); a caption names its
    video (`video_for_caption`).

    Only this page's thumbnails are looked up (and made once, then cached), so opening the tab costs the
    same with ten outputs or a thousand."""
    items = list_outputs(folder)
    pages = max(1, -(-len(items) // size))
    index = min(max(0, int(index or 0)), pages - 1)
    gallery = []
    for it in items[index * size:(index + 1) * size]:
        thumb = thumbnail(it.video, thumbs_dir)
        if thumb is not None:
            gallery.append((str(thumb), caption(it.video, folder)))
    return gallery, index, len(items)


def caption(video: Path, folder: Path) -> str:
    """A gallery item's caption: the video's path under the output folder. A click finds its video by this
    caption (`video_for_caption`), so it never depends on a listing that a later refresh may have replaced."""
    return video.relative_to(folder).as_posix()


def video_for_caption(folder: Path, text: object) -> Path | None:
    """The video a gallery caption names, or None when it names no MP4 inside `folder` (the caption comes back
    from the browser, so a path outside the output folder is refused)."""
    if not isinstance(text, str) or not text.lower().endswith(".mp4"):
        return None
    video = folder / text
    if any(part.startswith(".") for part in Path(text).parts) or not video.resolve().is_relative_to(folder.resolve()):
        return None
    return video


def sidecars(video: Path, metadata_dir: Path | None) -> list[Path]:
    """Files that belong to a video: its metadata JSON(s) and thumbnail(s)."""
    out = []
    for folder in {video.parent, metadata_dir} - {None}:
        for suffix in (".json", *IMAGE_SUFFIXES):
            p = folder / (video.stem + suffix)  # type: ignore[operator]
            if p.is_file():
                out.append(p)
    return out


def thumbnail(video: Path, cache_dir: Path) -> Path | None:
    """The engine's thumbnail when it wrote one, else a cached first-frame JPEG keyed by path and mtime."""
    for suffix in IMAGE_SUFFIXES:
        p = video.with_suffix(suffix)
        if p.is_file():
            return p
    thumb = _cache_path(video, cache_dir)
    if thumb is None:
        return None
    if thumb.is_file():
        return thumb
    try:
        frame: np.ndarray = next(iter_frames(video))
    except (VideoError, StopIteration):
        return None
    im = Image.fromarray(frame)
    im.thumbnail((THUMB_SIZE, THUMB_SIZE))
    with atomic_output(thumb) as tmp:
        im.save(tmp, format="JPEG", quality=85)
    return thumb


def info(video: Path, metadata_dir: Path | None) -> tuple[str, dict | None]:
    """(display text, parameters dict or None) from the sidecar JSON, else from the MP4 comment tag."""
    data = None
    for folder in (video.parent, metadata_dir):
        if folder is None:
            continue
        p = folder / f"{video.stem}.json"
        if p.is_file():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
                break
            except (OSError, json.JSONDecodeError):
                continue
    if data is None:
        try:
            comment = read_comment(video)
            data = json.loads(comment) if comment else None
        except (VideoError, json.JSONDecodeError):
            data = None
    if data is None:
        return f"{video.name}\n(no generation info found)", None
    return json.dumps(data, indent=2, default=str), data if isinstance(data, dict) else None


def delete(video: Path, output_root: Path, metadata_dir: Path | None, thumbs_dir: Path) -> list[Path]:
    """Remove a video with its sidecar(s) and cached thumbnail. Refuses paths outside the output folder."""
    video = video.resolve()
    if not video.is_relative_to(output_root.resolve()):
        raise ValueError(f"{video.name}: not in the output folder")
    removed = []
    cached = thumbnail_cache_key(video, thumbs_dir)
    latents = video.with_name(f"{video.stem}.latents.safetensors")  # --save-latents output of the same job
    for p in [video, *sidecars(video, metadata_dir), *( [cached] if cached else []), latents]:
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def _cache_path(video: Path, cache_dir: Path) -> Path | None:
    """Where the video's cached thumbnail lives (keyed by path, mtime and size), or None if it is gone."""
    try:
        st = video.stat()
    except OSError:
        return None
    key = hashlib.sha1(f"{video.resolve()}|{st.st_mtime_ns}|{st.st_size}".encode()).hexdigest()[:20]
    return cache_dir / f"{key}.jpg"


def thumbnail_cache_key(video: Path, cache_dir: Path) -> Path | None:
    p = _cache_path(video, cache_dir)
    return p if p is not None and p.is_file() else None
