"""The operation API: every post-processing operation by name, with its options model.

Each operation is `fn(input, options, output, progress=None, cancel=None, **extras) -> Path` where
`input` is a video path (a list of paths for `join`; a folder or list of images for `reassemble`) and
`output` is a file (a parent folder for `extract`, which creates a unique sub-folder). Outputs are
written atomically: nothing appears under the final name unless the operation succeeded. Operations
that need network weights (`upscale`, `interpolate`) take `weights=tiny.weight_source(folder, models)` as an extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from .export import ExportOptions
from .filters import FilterOptions
from .frames import ExtractOptions, ReassembleOptions
from .join import JoinOptions
from .network_options import InterpolateOptions, UpscaleOptions
from .timing import LoopOptions, ReverseOptions, SpeedOptions, TrimOptions

InputKind = Literal["video", "videos", "images"]
OutputKind = Literal["file", "folder"]


@dataclass(frozen=True)
class Operation:
    name: str
    options: type[BaseModel]
    target: str  # "module:function" in this package, imported on first use (keeps torch out of listings)
    input_kind: InputKind = "video"
    output_kind: OutputKind = "file"
    uses_ffmpeg: bool = True  # False: frames go through PyTorch / PyAV in Python
    needs_weights: bool = False
    summary: str = ""

    @property
    def run(self) -> Callable[..., object]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), func)


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("upscale", UpscaleOptions, "upscale:upscale_video", uses_ffmpeg=False, needs_weights=True,
              summary="Real-ESRGAN upscaling, optional GFPGAN face restoration"),
    Operation("interpolate", InterpolateOptions, "interpolate:interpolate_video", uses_ffmpeg=False,
              needs_weights=True, summary="RIFE 2x / 4x frame interpolation"),
    Operation("filters", FilterOptions, "filters:apply_filters", summary="Colour, clarity and artistic filters"),
    Operation("speed", SpeedOptions, "timing:change_speed", summary="Change playback speed (0.25x - 4x)"),
    Operation("loop", LoopOptions, "timing:loop_video", summary="Loop or ping-pong the clip"),
    Operation("trim", TrimOptions, "timing:trim_video", summary="Keep [start, end) seconds"),
    Operation("reverse", ReverseOptions, "timing:reverse_video", summary="Play backwards"),
    Operation("join", JoinOptions, "join:join_videos", input_kind="videos", summary="Join several videos"),
    Operation("export", ExportOptions, "export:export_video", summary="Export MP4 / WebM / GIF"),
    Operation("extract", ExtractOptions, "frames:extract_frames", output_kind="folder",
              summary="Extract every Nth frame to images"),
    Operation("reassemble", ReassembleOptions, "frames:reassemble_frames", input_kind="images", uses_ffmpeg=False,
              summary="Images (folder or list) to video"),
)}


def get_operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise KeyError(f"unknown operation {name!r}; available: {', '.join(OPERATIONS)}") from None
