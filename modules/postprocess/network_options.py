"""Option models and the model table of the network operations (upscale, RIFE), free of torch and spandrel.

Kept apart from upscale.py / interpolate.py so that building forms and CLI flags (`python -m studio --help`)
does not import PyTorch; those modules re-export every name defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import DEFAULT_CRF


@dataclass(frozen=True)
class UpscaleModel:
    name: str
    arch: Literal["esrgan", "compact"]
    scale: int  # output size / input size
    arch_kwargs: dict = field(default_factory=dict)
    description: str = ""
    weights: tuple[str, ...] = ()  # keys of weights.WEIGHTS; two for the denoise-strength blend


UPSCALE_MODELS: dict[str, UpscaleModel] = {m.name: m for m in (
    UpscaleModel("RealESRGAN_x4plus", "esrgan", 4, {"num_blocks": 23, "scale": 4},
                 "General photos and renders, 4x", ("RealESRGAN_x4plus",)),
    UpscaleModel("RealESRGAN_x2plus", "esrgan", 2,
                 # x2plus pixel-unshuffles the input by 2 (12 channels) and upsamples 4x internally.
                 {"num_blocks": 23, "scale": 4, "in_nc": 12, "shuffle_factor": 2},
                 "General photos and renders, 2x", ("RealESRGAN_x2plus",)),
    UpscaleModel("RealESRNet_x4plus", "esrgan", 4, {"num_blocks": 23, "scale": 4},
                 "Smoother, fewer GAN artefacts, 4x", ("RealESRNet_x4plus",)),
    UpscaleModel("realesr-general-x4v3", "compact", 4, {"num_conv": 32, "upscale": 4},
                 "Small general model with adjustable denoise strength, 4x",
                 ("realesr-general-x4v3", "realesr-general-wdn-x4v3")),
    UpscaleModel("RealESRGAN_x4plus_anime_6B", "esrgan", 4, {"num_blocks": 6, "scale": 4},
                 "Anime and illustration, 4x", ("RealESRGAN_x4plus_anime_6B",)),
    UpscaleModel("realesr-animevideov3", "compact", 4, {"num_conv": 16, "upscale": 4},
                 "Anime video, fastest, 4x", ("realesr-animevideov3",)),
)}

ModelName = Literal["RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRNet_x4plus", "realesr-general-x4v3",
                    "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3"]
TileChoice = Literal["auto", "512", "256", "none"]


class UpscaleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelName = Field("RealESRGAN_x4plus", description="Real-ESRGAN model; output scale: " + ", ".join(
        f"{m.name} {m.scale}x" for m in UPSCALE_MODELS.values()))
    tile: TileChoice = Field("auto", description="Tile size; smaller uses less memory, 'none' = whole frame")
    denoise_strength: float = Field(0.5, ge=0.0, le=1.0,
                                    description="realesr-general-x4v3 only: 0 keeps noise, 1 removes it")
    face_enhance: bool = Field(False, description="Restore faces with GFPGAN v1.4 after upscaling")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, ...")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)


def output_scale(model: str) -> int:
    """The model's fixed scale, shown next to the model choice."""
    return UPSCALE_MODELS[model].scale


class InterpolateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: Literal[2, 4] = Field(2, description="2x or 4x the frame rate")
    scale: Literal[0.5, 1.0, 2.0] = Field(1.0, description="Flow resolution: 0.5 for 4K-class input, 2 for tiny")
    device: str = "auto"
    crf: int = Field(DEFAULT_CRF, ge=0, le=51)
