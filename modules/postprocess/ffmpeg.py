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

from modules.framepack.events import CancelledError, CancelToken
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
                    proc.kill()
                    proc.wait()
                    raise CancelledError("cancelled by user")
                key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
                if key == "frame" and value.isdigit():
                    report(progress, stage, int(value), total)
            rc = proc.wait()
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        if rc != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-8:]
            raise FFmpegError(f"ffmpeg failed (exit {rc}): " + " | ".join(tail))
    report(progress, stage, total, total)
