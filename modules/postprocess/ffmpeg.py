"""Runs imageio-ffmpeg's ffmpeg binary with live progress, cancellation and atomic output.

ffmpeg reports progress as `key=value` lines on stdout (`-progress pipe:1`); we read `frame=` from
them and forward it to the caller's callback. Output goes to a hidden temporary name that is renamed
only when ffmpeg exits cleanly, so a failed or cancelled run leaves nothing under the final name.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from modules.cancel import CancelledError, CancelToken
from modules.media.video_io import atomic_output

from .common import DEFAULT_CRF, PostProcessError, ProgressCallback, report

log = logging.getLogger(__name__)


class FFmpegError(PostProcessError):
    """ffmpeg exited with an error; the message carries the tail of its log."""


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (no system ffmpeg needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def x264_args(crf: int = DEFAULT_CRF, preset: str = "medium") -> list[str]:
    """The H.264 settings every MP4-producing operation uses (playable everywhere: yuv420p, faststart)."""
    return ["-c:v", "libx264", "-crf", str(int(crf)), "-preset", preset, "-pix_fmt", "yuv420p",
            "-movflags", "+faststart"]


def base_command() -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def run_ffmpeg(args: Sequence[str], output: Path, *, total_frames: int = 0,
               progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
               stage: str = "ffmpeg") -> Path:
    """Run `ffmpeg <args> <tmp>` and rename tmp to `output` on success. Returns `output`.

    `total_frames` is the expected number of output frames, used for progress only.
    """
    output = Path(output)
    with atomic_output(output) as tmp:
        cmd = [*base_command(), "-progress", "pipe:1", "-nostats", *map(str, args), str(tmp)]
        _run(cmd, total_frames, progress, cancel, stage)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise FFmpegError(f"ffmpeg produced no output for {output.name}")
    return output


def run_ffmpeg_raw(args: Sequence[str], *, total_frames: int = 0, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None, stage: str = "ffmpeg") -> None:
    """Run ffmpeg with fully caller-built output arguments (e.g. an image sequence pattern)."""
    _run([*base_command(), "-progress", "pipe:1", "-nostats", *map(str, args)], total_frames, progress, cancel, stage)


def _run(cmd: list[str], total: int, progress: ProgressCallback | None, cancel: CancelToken | None,
         stage: str) -> None:
    log.debug("ffmpeg: %s", subprocess.list2cmdline(cmd))
    report(progress, stage, 0, total)
    # stderr goes to a file, not a pipe, so a chatty ffmpeg can never block on a full pipe buffer.
    with tempfile.TemporaryFile(mode="w+b") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if cancel is not None and cancel.cancelled:
                    _kill(proc)
                    raise CancelledError("cancelled by user")
                key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
                if key == "frame" and value.isdigit():
                    report(progress, stage, int(value), total)
            rc = proc.wait()
        except BaseException:
            _kill(proc)
            raise
        if rc != 0:
            raise FFmpegError(f"ffmpeg failed (exit {rc}): {_stderr_tail(err)}")
    report(progress, stage, total, total)


def _kill(proc: subprocess.Popen | None) -> None:
    """Stop a still-running ffmpeg (on error or cancel) and reap it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _stderr_tail(err, lines: int = 8) -> str:
    """The last lines ffmpeg wrote to its captured stderr, joined for one error message."""
    err.seek(0)
    return " | ".join(err.read().decode("utf-8", "replace").strip().splitlines()[-lines:])


def write_frames(output: Path, frames, fps: float, crf: int = DEFAULT_CRF) -> Path:
    """Encode an iterable of H x W x 3 uint8 RGB frames to an H.264 MP4 by piping raw video into ffmpeg.

    Unlike the single-threaded, bit-exact PyAV writer the engine uses, this lets x264 use every core, which
    matters for 4x-upscaled frames. Written atomically; returns `output`.
    """
    output = Path(output)
    with atomic_output(output) as tmp, tempfile.TemporaryFile(mode="w+b") as err:
        proc = None
        count = 0
        try:
            for frame in frames:
                if proc is None:
                    h, w = frame.shape[0] - frame.shape[0] % 2, frame.shape[1] - frame.shape[1] % 2
                    cmd = [*base_command(), "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                           "-framerate", f"{fps:.6f}", "-i", "pipe:0", *x264_args(crf), "-r", f"{fps:.6f}", str(tmp)]
                    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
                assert proc.stdin is not None
                if frame.shape[0] < h or frame.shape[1] < w:
                    raise PostProcessError("all frames must have the same size")
                proc.stdin.write(frame[:h, :w].tobytes())  # C-order bytes even for a cropped view
                count += 1
            if proc is None:
                raise PostProcessError("no frames to write")
            assert proc.stdin is not None
            proc.stdin.close()
            rc = proc.wait()
        except BrokenPipeError:
            rc = proc.wait() if proc is not None else -1
        except BaseException:
            _kill(proc)
            raise
        if rc != 0:
            raise FFmpegError(f"ffmpeg encode failed (exit {rc}): {_stderr_tail(err)}")
    log.debug("encoded %d frames to %s", count, output.name)
    return output
