"""The operation API: every post-processing operation by name, with its options model.

Each operation is `fn(input, options, output, progress=None, cancel=None, **extras) -> Path` where
`input` is a video path (a list of paths for `join`; a folder or list of images for `reassemble`) and
`output` is a file (a parent folder for `extract`, which creates a unique sub-folder). Outputs are
written atomically: nothing appears under the final name unless the operation succeeded. Operations
that need network weights (`upscale`, `interpolate`) take `weights=WeightStore(...)` as an extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from .export import ExportOptions, export_video
from .filters import FilterOptions, apply_filters
from .frames import ExtractOptions, ReassembleOptions, extract_frames, reassemble_frames
from .interpolate import InterpolateOptions, interpolate_video
from .join import JoinOptions, join_videos
from .timing import (LoopOptions, ReverseOptions, SpeedOptions, TrimOptions, change_speed, loop_video,
                     reverse_video, trim_video)
from .upscale import UpscaleOptions, upscale_video

InputKind = Literal["video", "videos", "images"]
OutputKind = Literal["file", "folder"]


@dataclass(frozen=True)
class Operation:
    name: str
    options: type[BaseModel]
    run: Callable[..., object]
    input_kind: InputKind = "video"
    output_kind: OutputKind = "file"
    uses_ffmpeg: bool = True  # False: frames go through PyTorch / PyAV in Python
    needs_weights: bool = False
    summary: str = ""


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("upscale", UpscaleOptions, upscale_video, uses_ffmpeg=False, needs_weights=True,
              summary="Real-ESRGAN upscaling, optional GFPGAN face restoration"),
    Operation("interpolate", InterpolateOptions, interpolate_video, uses_ffmpeg=False, needs_weights=True,
              summary="RIFE 2x / 4x frame interpolation"),
    Operation("filters", FilterOptions, apply_filters, summary="Colour, clarity and artistic filters"),
    Operation("speed", SpeedOptions, change_speed, summary="Change playback speed (0.25x - 4x)"),
    Operation("loop", LoopOptions, loop_video, summary="Loop or ping-pong the clip"),
    Operation("trim", TrimOptions, trim_video, summary="Keep [start, end) seconds"),
    Operation("reverse", ReverseOptions, reverse_video, summary="Play backwards"),
    Operation("join", JoinOptions, join_videos, input_kind="videos", summary="Join several videos"),
    Operation("export", ExportOptions, export_video, summary="Export MP4 / WebM / GIF"),
    Operation("extract", ExtractOptions, extract_frames, output_kind="folder",
              summary="Extract every Nth frame to images"),
    Operation("reassemble", ReassembleOptions, reassemble_frames, input_kind="images", uses_ffmpeg=False,
              summary="Images (folder or list) to video"),
)}


def get_operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise KeyError(f"unknown operation {name!r}; available: {', '.join(OPERATIONS)}") from None
