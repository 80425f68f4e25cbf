"""Time operations through ffmpeg: speed, loop, ping-pong, trim and reverse.

Frame counts (n input frames, fps unchanged unless stated):
- speed f: about n / f frames at the same fps (frames dropped or repeated by the `fps` filter);
  audio, when present, is time-stretched with `atempo`.
- loop r: r * n frames (the file played r times).
- ping-pong r: r * (2n - 2) frames: forward 0..n-1, then backward n-2..1, so that the cycle repeats
  (and loops in a player) without showing the turning frames twice. Audio is dropped.
- trim [start, end): the frames whose timestamps t = i / fps satisfy start <= t < end.
- reverse: n frames in reverse order (audio reversed too). ffmpeg's `reverse` buffers the decoded
  clip in memory, so very long or large clips are refused with a clear message (see REVERSE_MAX_BYTES).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modules.cancel import CancelToken
from modules.media.video_io import VideoInfo

from .common import DEFAULT_CRF, PostProcessError, ProgressCallback, check_output, check_video, has_audio
from .ffmpeg import run_ffmpeg, x264_args

# ffmpeg's reverse / loop filters hold decoded yuv420p frames (1.5 bytes per pixel) in RAM.
REVERSE_MAX_BYTES = 6 * 1024**3
LOOP_FILTER_MAX_FRAMES = 32767  # ffmpeg's `loop` filter limit


class SpeedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: float = Field(1.0, ge=0.25, le=4.0, description="Playback speed (<1 slower, >1 faster)")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)


class LoopOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["loop", "pingpong"] = "loop"
    repeats: int = Field(2, ge=1, le=100, description="How many times the clip (or ping-pong cycle) plays")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)


class TrimOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float = Field(0.0, ge=0.0, description="Start time in seconds (inclusive)")
    end: float | None = Field(None, gt=0.0, description="End time in seconds (exclusive); empty = to the end")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)

    @model_validator(mode="after")
    def _order(self) -> "TrimOptions":
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"trim end ({self.end}) must be after start ({self.start})")
        return self


class ReverseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)


def _atempo_chain(factor: float) -> str:
    # atempo accepts 0.5..2.0 per instance; chain instances for factors outside it.
    parts, f = [], factor
    while f > 2.0:
        parts.append("atempo=2.0")
        f /= 2.0
    while f < 0.5:
        parts.append("atempo=0.5")
        f /= 0.5
    parts.append(f"atempo={f:.6f}")
    return ",".join(parts)


def _decoded_bytes(info: VideoInfo, frames: int) -> int:
    return int(frames * info.width * info.height * 1.5)


def speed_args(input_path: Path, info: VideoInfo, factor: float, crf: int, audio: bool) -> list[str]:
    vf = f"setpts=PTS/{factor:.6f},fps={info.fps:.6f}"
    args = ["-i", str(input_path), "-map", "0:v:0", "-vf", vf, *x264_args(crf)]
    if audio:
        args += ["-map", "0:a:0", "-af", _atempo_chain(factor), "-c:a", "aac"]
    return args


def change_speed(input_path: Path, options: SpeedOptions, output: Path,
                 progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    info = check_video(input_path)
    check_output(output, [input_path])
    args = speed_args(Path(input_path), info, options.factor, options.crf, has_audio(input_path))
    return run_ffmpeg(args, output, total_frames=max(1, round(info.frames / options.factor)),
                      progress=progress, cancel=cancel, stage="speed")


def loop_args(input_path: Path, info: VideoInfo, mode: str, repeats: int, crf: int, audio: bool) -> list[str]:
    if mode == "loop" or info.frames < 3:
        # -stream_loop re-reads the file, so memory stays flat however long the result is.
        args = ["-stream_loop", str(repeats - 1), "-i", str(input_path), "-map", "0:v:0", *x264_args(crf)]
        if audio:
            args += ["-map", "0:a:0", "-c:a", "aac"]
        return args
    n = info.frames
    cycle = 2 * n - 2
    graph = (f"[0:v]split[f][b];[b]reverse,trim=start_frame=1:end_frame={n - 1},setpts=PTS-STARTPTS[r];"
             f"[f][r]concat=n=2:v=1:a=0")
    if repeats > 1:
        graph += f",loop=loop={repeats - 1}:size={cycle}:start=0"
    graph += "[v]"
    return ["-i", str(input_path), "-filter_complex", graph, "-map", "[v]", *x264_args(crf)]


def loop_video(input_path: Path, options: LoopOptions, output: Path,
               progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    info = check_video(input_path)
    check_output(output, [input_path])
    if options.mode == "pingpong" and info.frames >= 3:
        cycle = 2 * info.frames - 2
        if cycle > LOOP_FILTER_MAX_FRAMES:
            raise PostProcessError(f"ping-pong needs a clip of at most {LOOP_FILTER_MAX_FRAMES // 2} frames")
        if _decoded_bytes(info, cycle) > REVERSE_MAX_BYTES:
            raise PostProcessError("clip too large to ping-pong in memory; trim or downscale it first")
        total = options.repeats * cycle
    else:
        total = options.repeats * info.frames
    args = loop_args(Path(input_path), info, options.mode, options.repeats, options.crf,
                     options.mode == "loop" and has_audio(input_path))
    return run_ffmpeg(args, output, total_frames=total, progress=progress, cancel=cancel, stage=options.mode)


def trim_args(input_path: Path, start: float, end: float | None, crf: int, audio: bool) -> list[str]:
    bounds = f"start={start:.6f}" + (f":end={end:.6f}" if end is not None else "")
    args = ["-i", str(input_path), "-map", "0:v:0", "-vf", f"trim={bounds},setpts=PTS-STARTPTS", *x264_args(crf)]
    if audio:
        args += ["-map", "0:a:0", "-af", f"atrim={bounds},asetpts=PTS-STARTPTS", "-c:a", "aac"]
    return args


def trim_video(input_path: Path, options: TrimOptions, output: Path,
               progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    info = check_video(input_path)
    check_output(output, [input_path])
    if options.start >= info.duration:
        raise PostProcessError(f"trim start {options.start:.3f}s is past the end of the video ({info.duration:.3f}s)")
    end = min(options.end, info.duration) if options.end is not None else info.duration
    total = max(1, math.ceil(end * info.fps - 1e-9) - math.ceil(options.start * info.fps - 1e-9))
    args = trim_args(Path(input_path), options.start, options.end, options.crf, has_audio(input_path))
    return run_ffmpeg(args, output, total_frames=total, progress=progress, cancel=cancel, stage="trim")


def reverse_args(input_path: Path, crf: int, audio: bool) -> list[str]:
    args = ["-i", str(input_path), "-map", "0:v:0", "-vf", "reverse", *x264_args(crf)]
    if audio:
        args += ["-map", "0:a:0", "-af", "areverse", "-c:a", "aac"]
    return args


def reverse_video(input_path: Path, options: ReverseOptions, output: Path,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    info = check_video(input_path)
    check_output(output, [input_path])
    if _decoded_bytes(info, info.frames) > REVERSE_MAX_BYTES:
        raise PostProcessError("clip too large to reverse in memory; trim or downscale it first")
    return run_ffmpeg(reverse_args(Path(input_path), options.crf, has_audio(input_path)), output,
                      total_frames=info.frames, progress=progress, cancel=cancel, stage="reverse")
