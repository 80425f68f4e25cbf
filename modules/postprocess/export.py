"""Export to MP4 (H.264), WebM (VP9) or GIF with a quality slider and an optional maximum width.

Quality 1..100 maps to: MP4 crf = 40 - 0.3 q (q 80 -> crf 16); WebM VP9 crf = 55 - 0.4 q (q 80 -> 23);
GIF palette colours = 32 + 2.24 q (q 100 -> 256), with error-diffusion dithering from q 50 up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modules.cancel import CancelToken
from modules.media.video_io import VideoInfo

from .common import PostProcessError, ProgressCallback, check_output, check_video
from .ffmpeg import run_ffmpeg, x264_args

ExportFormat = Literal["mp4", "webm", "gif"]


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: ExportFormat = "mp4"
    quality: int = Field(80, ge=1, le=100, description="1 smallest file .. 100 best quality")
    max_width: int | None = Field(None, ge=16, le=8192, description="Downscale wider videos to this width")
    fps: float | None = Field(None, gt=0, le=120, description="Output frame rate (empty = source fps)")


def _scale(max_width: int | None) -> list[str]:
    # -2 keeps the aspect ratio with an even height (required by yuv420p encoders).
    return [f"scale=w='min(iw,{max_width})':h=-2:flags=lanczos"] if max_width else []


def export_args(input_path: Path, info: VideoInfo, o: ExportOptions) -> list[str]:
    pre = ([f"fps={o.fps:.6f}"] if o.fps else []) + _scale(o.max_width)
    if o.format == "gif":
        colors = max(2, min(256, round(32 + 2.24 * o.quality)))
        dither = "sierra2_4a" if o.quality >= 50 else "bayer:bayer_scale=3"
        head = ",".join(pre) + "," if pre else ""
        graph = (f"[0:v]{head}split[a][b];[a]palettegen=max_colors={colors}:stats_mode=diff[p];"
                 f"[b][p]paletteuse=dither={dither}[v]")
        return ["-i", str(input_path), "-filter_complex", graph, "-map", "[v]", "-loop", "0"]
    vf = ["-vf", ",".join(pre)] if pre else []
    if o.format == "webm":
        crf = round(55 - 0.4 * o.quality)
        return ["-i", str(input_path), "-map", "0:v:0", *vf, "-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0",
                "-deadline", "good", "-cpu-used", "4", "-row-mt", "1", "-pix_fmt", "yuv420p",
                "-map", "0:a?", "-c:a", "libopus"]
    crf = round(40 - 0.3 * o.quality)
    return ["-i", str(input_path), "-map", "0:v:0", *vf, *x264_args(crf), "-map", "0:a?", "-c:a", "aac"]


def export_video(input_path: Path, options: ExportOptions, output: Path,
                 progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    output = Path(output)
    if output.suffix.lower() != f".{options.format}":
        raise PostProcessError(f"output {output.name} must end in .{options.format} for {options.format} export")
    info = check_video(input_path)
    check_output(output, [input_path])
    total = round(info.frames * (options.fps / info.fps)) if options.fps else info.frames
    return run_ffmpeg(export_args(Path(input_path), info, options), output, total_frames=total,
                      progress=progress, cancel=cancel, stage=f"export {options.format}")
