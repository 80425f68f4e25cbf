"""Colour, clarity and artistic filters as one ffmpeg filter chain.

Every slider maps to one standard ffmpeg filter; at its neutral value the filter is left out, so the
all-neutral settings re-encode the video unchanged (`null`).
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from modules.cancel import CancelToken

from .common import DEFAULT_CRF, ProgressCallback, check_output, check_video
from .ffmpeg import run_ffmpeg, x264_args


class FilterSettings(BaseModel):
    """The Video Filters sliders. Neutral values leave the video unchanged."""

    model_config = ConfigDict(extra="forbid")

    brightness: float = Field(0.0, ge=-1.0, le=1.0, description="Added to luma (-1 black .. 1 white)")
    contrast: float = Field(1.0, ge=0.0, le=3.0, description="Contrast multiplier (1 = unchanged)")
    saturation: float = Field(1.0, ge=0.0, le=3.0, description="Saturation multiplier (0 = grey, 1 = unchanged)")
    temperature: float = Field(0.0, ge=-100.0, le=100.0, description="Colour temperature (+ warmer, - cooler)")
    sharpen: float = Field(0.0, ge=0.0, le=3.0, description="Unsharp-mask amount")
    blur: float = Field(0.0, ge=0.0, le=10.0, description="Gaussian blur sigma (pixels)")
    denoise: float = Field(0.0, ge=0.0, le=10.0, description="hqdn3d denoise strength")
    vignette: float = Field(0.0, ge=0.0, le=1.0, description="Corner darkening (0 off .. 1 strong)")
    s_curve: float = Field(0.0, ge=0.0, le=1.0, description="S-curve contrast (0 off .. 1 strong)")
    film_grain: float = Field(0.0, ge=0.0, le=100.0, description="Film grain strength")

    def is_neutral(self) -> bool:
        return self == FilterSettings()


class FilterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: FilterSettings = Field(default_factory=FilterSettings)
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)


def _num(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") or "0"


def build_filter_chain(s: FilterSettings) -> str:
    """The `-vf` chain for these settings; order: clean up, then tone, then artistic effects."""
    parts: list[str] = []
    if s.denoise > 0:
        d = s.denoise
        parts.append(f"hqdn3d={_num(d)}:{_num(d * 0.75)}:{_num(d * 1.5)}:{_num(d * 1.125)}")
    if s.blur > 0:
        parts.append(f"gblur=sigma={_num(s.blur)}")
    if s.sharpen > 0:
        parts.append(f"unsharp=5:5:{_num(s.sharpen)}:5:5:0")
    if (s.brightness, s.contrast, s.saturation) != (0.0, 1.0, 1.0):
        parts.append(f"eq=brightness={_num(s.brightness)}:contrast={_num(s.contrast)}:saturation={_num(s.saturation)}")
    if s.temperature != 0:
        # 6500 K is neutral daylight; +100 -> 3500 K (warm), -100 -> 9500 K (cool).
        parts.append(f"colortemperature=temperature={_num(6500 - 30 * s.temperature)}")
    if s.s_curve > 0:
        k = 0.1 * s.s_curve
        parts.append(f"curves=all='0/0 0.25/{_num(0.25 - k)} 0.75/{_num(0.75 + k)} 1/1'")
    if s.vignette > 0:
        parts.append(f"vignette=angle={_num(s.vignette * math.pi / 2.5)}")
    if s.film_grain > 0:
        # Fixed seed: the same settings give the same grain (reproducible output).
        parts.append(f"noise=alls={_num(s.film_grain)}:allf=t+u:all_seed=4242")
    return ",".join(parts) or "null"


def filter_args(input_path: Path, settings: FilterSettings, crf: int) -> list[str]:
    """ffmpeg arguments (without the output path) that apply `settings` to `input_path`."""
    return ["-i", str(input_path), "-map", "0:v:0", "-map", "0:a?", "-vf", build_filter_chain(settings),
            *x264_args(crf), "-c:a", "copy"]


def apply_filters(input_path: Path, options: FilterOptions, output: Path,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    """Apply the filter chain to a video; same size, fps and frame count."""
    info = check_video(input_path)
    check_output(output, [input_path])
    return run_ffmpeg(filter_args(Path(input_path), options.settings, options.crf), output,
                      total_frames=info.frames, progress=progress, cancel=cancel, stage="filters")
