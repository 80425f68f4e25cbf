"""Shared types for post-processing operations: progress callbacks, errors and input validation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modules.media.video_io import DEFAULT_CRF, VideoError, VideoInfo, probe_video

log = logging.getLogger(__name__)


class PostProcessError(ValueError):
    """An operation cannot run with these inputs or options (message is shown to the user)."""


@dataclass(frozen=True)
class Progress:
    """One progress report: `done` of `total` units (frames, bytes, ...) in the named stage."""

    stage: str
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


def report(callback: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    if callback is not None:
        callback(Progress(stage, done, total))


def check_video(path: Path | str) -> VideoInfo:
    """Probe an input video; raises VideoError (a ValueError) naming the file for anything unusable.

    Uses the container's frame count where it has one, so probing does not decode the whole file.
    """
    path = Path(path)
    info = probe_video(path, count_frames=False)
    if info.fps <= 0:
        raise VideoError(f"{path.name}: unknown frame rate")
    return info


def check_output(output: Path | str, inputs: list[Path]) -> Path:
    """Refuse to overwrite an input with the output of an operation on it."""
    output = Path(output)
    for p in inputs:
        if output.resolve() == Path(p).resolve():
            raise PostProcessError(f"output {output.name} would overwrite the input")
    return output


def has_audio(path: Path | str) -> bool:
    """Whether the file has an audio stream (FramePack outputs have none; uploads may)."""
    import av

    with av.open(str(path)) as container:
        return bool(container.streams.audio)
