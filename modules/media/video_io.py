"""Video reading and writing through PyAV (H.264 MP4), with size limits and atomic final names.

Shared by the engine (outputs, source videos) and post-processing. Partial files never appear under
their final name: everything is written to a hidden temporary name in the same folder, then renamed.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation

from modules.media.file_lock import FileLock

# Limits that keep a malicious or broken file from exhausting memory.
MAX_PIXELS = 4096 * 4096
MAX_FRAMES = 100_000
# H.264 quality when nobody says otherwise (Settings.mp4_crf defaults to this; 0 lossless, 16-23 high quality).
DEFAULT_CRF = 16


class VideoError(ValueError):
    """A file is not a readable video, or is outside the supported limits."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int  # counted by decoding when the container does not say
    duration: float


def _open(path: Path):
    if not Path(path).is_file():
        raise VideoError(f"{Path(path).name}: file not found")
    if Path(path).stat().st_size == 0:
        raise VideoError(f"{Path(path).name}: file is empty")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{Path(path).name}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{Path(path).name}: contains no video stream")
    return container


def probe_video(path: Path, count_frames: bool = True) -> VideoInfo:
    """Size, fps and frame count; raises VideoError for non-videos, zero frames or absurd sizes."""
    with _open(path) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
            raise VideoError(f"{Path(path).name}: unsupported frame size {width}x{height}")
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        frames = stream.frames
        if count_frames or not frames:
            frames = 0
            try:
                for _ in container.decode(stream):
                    frames += 1
                    if frames > MAX_FRAMES:
                        raise VideoError(f"{Path(path).name}: more than {MAX_FRAMES} frames")
            except av.error.FFmpegError as exc:
                raise VideoError(f"{Path(path).name}: decoding failed ({exc})") from exc
        if frames == 0:
            raise VideoError(f"{Path(path).name}: contains no frames")
        return VideoInfo(width, height, fps, frames, frames / fps if fps else 0.0)


def is_still_image(path: Path) -> bool:
    """Whether FFmpeg reads the file as a still image (image2 / *_pipe demuxers: PNG, JPEG, ...), which it
    would otherwise happily present as a one-frame video. An animated GIF (gif demuxer) counts as a video."""
    with _open(path) as container:
        fmt = container.format.name
    return fmt.startswith("image2") or fmt.endswith("_pipe")


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Decoded RGB frames (H x W x 3 uint8), one at a time."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if frame.width * frame.height > MAX_PIXELS:
                    raise VideoError(f"{Path(path).name}: unsupported frame size {frame.width}x{frame.height}")
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise VideoError(f"{Path(path).name}: decoding failed ({exc})") from exc


def read_video(path: Path) -> tuple[np.ndarray, float]:
    """All frames as T x H x W x 3 uint8, and the frame rate."""
    info = probe_video(path, count_frames=False)
    frames = list(iter_frames(path))
    if not frames:
        raise VideoError(f"{Path(path).name}: contains no frames")
    return np.stack(frames), info.fps


def read_comment(path: Path) -> str | None:
    """The MP4 comment tag (FP-Studio stores reproduction metadata there)."""
    with _open(path) as container:
        return container.metadata.get("comment")


def temp_path_for(final: Path) -> Path:
    """A hidden sibling name for writing `final` before the atomic rename."""
    final = Path(final)
    return final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.part{final.suffix}")


# What temp_path_for makes (and the `.<name>.<hex>.part` form of older copies): a file no one may rely on.
_PARTIAL_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.part(\.[A-Za-z0-9]{1,12})?$")


def is_partial_name(name: str) -> bool:
    return bool(_PARTIAL_NAME.match(name))


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to `final`, on error remove it.

    While it is written, the temporary file is locked (POSIX), so a start-up sweep in another process can tell
    it from one a killed process left behind (see remove_abandoned_partial)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    lock = _writer_lock(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        if lock is not None:
            lock.release()


def _writer_lock(tmp: Path) -> FileLock | None:
    # Windows: an open file cannot be deleted, which protects it already; and a locked byte range there would
    # block the writer itself.
    if os.name == "nt":  # pragma: no cover
        return None
    lock = FileLock(tmp)
    while True:
        lock.acquire(blocking=True)  # a fresh random name: only a sweep can hold it, briefly
        if lock.same_file_as_path():
            return lock
        lock.release()  # a sweep removed the empty file between its creation and our lock: lock a new one


def remove_abandoned_partial(path: Path) -> bool:
    """Deletes a temporary file of atomic_output that nobody is writing; False when a live writer holds it."""
    path = Path(path)
    if os.name == "nt":  # pragma: no cover - deleting a file another process writes fails there
        try:
            path.unlink(missing_ok=True)
        except PermissionError:
            return False
        return True
    lock = FileLock(path)
    if not lock.acquire():
        return False
    try:
        if lock.same_file_as_path():
            path.unlink()
    finally:
        lock.release()
    return True


def _even(frames_hw: tuple[int, int]) -> tuple[int, int]:
    h, w = frames_hw
    return h - h % 2, w - w % 2


# x264 settings that make the same frames give the same bytes on every run and every x86/ARM CPU:
# single-threaded, no version string, and `cpu-independent`, which keeps the macroblock-tree propagation
# (float maths) on x264's C code. Its SIMD versions are the one part of x264 whose results are not a
# function of the input alone: on AVX-512 machines the same 16 frames gave two different files about one
# run in ten inside a generation job (frames 5-7 re-quantised; see docs/determinism.md).
X264_OPTIONS = {"preset": "medium", "flags": "+bitexact", "x264-params": "cpu-independent=1"}


# libswscale with its bit-exact flags: the same pixels give the same YUV planes whichever SIMD code the CPU
# runs (the default flags allow CPU-specific rounding), and about 15 times faster than doing it in NumPy.
_BITEXACT = Interpolation.BILINEAR | Interpolation.BITEXACT | Interpolation.ACCURATE_RND


def rgb_to_yuv420p(frame: np.ndarray) -> av.VideoFrame:
    """BT.601 limited-range YUV 4:2:0 from RGB (H x W x 3 uint8, even H and W), converted bit-exactly.

    Done here rather than implicitly inside the encoder, whose conversion uses libswscale's default
    (CPU-dependent) rounding.
    """
    return av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p", interpolation=_BITEXACT)


def encode_frames(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int = DEFAULT_CRF,
                  comment: str | None = None) -> int:
    """Encode RGB frames into `path` as H.264 yuv420p (not atomic; use write_video). Returns the frame count.

    Same frames, fps, crf and comment give the same bytes (bit-exact muxer and encoder settings above).
    """
    count = 0
    with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as container:
        if comment is not None:
            container.metadata["comment"] = comment
        stream = None
        for frame in frames:
            if stream is None:
                h, w = _even(frame.shape[:2])
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.options = {"crf": str(crf), **X264_OPTIONS}
                stream.codec_context.thread_count = 1
            vf = rgb_to_yuv420p(np.asarray(frame, dtype=np.uint8)[:stream.height, :stream.width])
            vf.pts = count
            for packet in stream.encode(vf):
                container.mux(packet)
            count += 1
        if stream is None:
            raise VideoError("no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return count


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int = DEFAULT_CRF,
                comment: str | None = None) -> Path:
    """Encode RGB frames to an H.264 MP4 under `path`, atomically. Returns the path."""
    with atomic_output(path) as tmp:
        encode_frames(tmp, frames, fps, crf=crf, comment=comment)
    return Path(path)
