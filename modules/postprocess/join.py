"""Join several videos end to end into one MP4.

Every clip is fitted (scaled, letter-boxed) to the first clip's size and resampled to its frame rate,
so clips of different sizes can be joined. Audio is not carried (FramePack outputs have none).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from modules.cancel import CancelToken
from modules.media.video_io import VideoInfo

from .common import DEFAULT_CRF, PostProcessError, ProgressCallback, check_output, check_video
from .ffmpeg import run_ffmpeg, x264_args

MAX_JOIN_INPUTS = 64


class JoinOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)


def join_args(inputs: list[Path], first: VideoInfo, crf: int) -> list[str]:
    w, h, fps = first.width - first.width % 2, first.height - first.height % 2, first.fps
    args: list[str] = []
    for p in inputs:
        args += ["-i", str(p)]
    chains = [
        f"[{i}:v:0]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,"
        f"setsar=1,fps={fps:.6f},format=yuv420p[v{i}]"
        for i in range(len(inputs))
    ]
    graph = ";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(len(inputs)))
    graph += f"concat=n={len(inputs)}:v=1:a=0[v]"
    return [*args, "-filter_complex", graph, "-map", "[v]", *x264_args(crf)]


def join_videos(inputs: list[Path], options: JoinOptions, output: Path,
                progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    inputs = [Path(p) for p in inputs]
    if len(inputs) < 2:
        raise PostProcessError("join needs at least two videos")
    if len(inputs) > MAX_JOIN_INPUTS:
        raise PostProcessError(f"join takes at most {MAX_JOIN_INPUTS} videos")
    infos = [check_video(p) for p in inputs]
    check_output(output, inputs)
    total = sum(round(i.frames * infos[0].fps / i.fps) for i in infos)
    return run_ffmpeg(join_args(inputs, infos[0], options.crf), output, total_frames=total,
                      progress=progress, cancel=cancel, stage="join")
