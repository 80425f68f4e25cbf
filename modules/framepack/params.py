"""GenerationParams: the validated description of one generation job.

This pydantic model is the boundary between the application (queue, UI, CLI, metadata files) and the
engine. Every generation default lives here, once; the UI, the CLI flags and the queue read them from
the model's fields.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from modules.framepack.system_prompt import system_prompt_error
from modules.models.registry import TransformerKind

FPS = 30  # FramePack's native frame rate: every section is lws*4-3 frames at 30 fps.
# Validation context key: a form draft may name a Video type without its (missing) source video.
FORM_DRAFT = "form_draft"


class GenerationType(str, Enum):
    ORIGINAL = "Original"
    ORIGINAL_ENDFRAME = "Original with Endframe"
    F1 = "F1"
    VIDEO = "Video"
    VIDEO_ENDFRAME = "Video with Endframe"
    VIDEO_F1 = "Video F1"
    GRID = "Grid"

    @property
    def is_video(self) -> bool:
        return self in (GenerationType.VIDEO, GenerationType.VIDEO_ENDFRAME, GenerationType.VIDEO_F1)

    @property
    def uses_end_frame(self) -> bool:
        """Types whose form shows the end-frame inputs. The end frame is optional for all of them: without one,
        Original with Endframe runs as Original and Video with Endframe as Video (F1 takes one as an option)."""
        return self in (GenerationType.ORIGINAL_ENDFRAME, GenerationType.VIDEO_ENDFRAME, GenerationType.F1)


class LatentImage(str, Enum):
    BLACK = "Black"
    WHITE = "White"
    NOISE = "Noise"
    GREEN_SCREEN = "Green Screen"


class CacheType(str, Enum):
    NONE = "None"
    TEACACHE = "TeaCache"
    MAGCACHE = "MagCache"


class LoraSpec(BaseModel):
    """One LoRA from the LoRA folder, by file name, with its weight."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255, description="File name in the LoRA folder")
    weight: float = Field(1.0, ge=0.0, le=2.0)


class Keyframe(BaseModel):
    """An image pinned to a time: the section covering that time uses its latent as clean-latent anchor."""

    model_config = ConfigDict(extra="forbid")
    image: Path
    seconds: float = Field(ge=0.0, le=120.0)


GridParameter = Literal[
    "steps", "distilled_cfg", "cfg", "seed", "teacache_threshold", "total_seconds", "prompt",
    "latent_window_size", "lora_weight", "blend_sections", "end_frame_strength",
]


class GridAxis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameter: GridParameter
    values: list[Any] = Field(min_length=1, max_length=16)


class ContinuedFrom(BaseModel):
    """The video a Video / Video F1 job extends when it was queued by "Continue from this video": the source's
    file name and content hash (never a path or a time: the sidecar of the same job has the same bytes)."""

    model_config = ConfigDict(extra="forbid")
    video: str = Field(min_length=1, max_length=255, description="File name of the continued video")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the continued video's bytes")


class GenerationParams(BaseModel):
    """Everything needed to reproduce one job. Files are paths; the queue copies them into the job folder."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    generation_type: GenerationType = GenerationType.ORIGINAL

    # Prompting
    prompt: str = Field("", max_length=20_000, description="Text prompt; `[2s: ...]` timestamps allowed")
    negative_prompt: str = Field("", max_length=20_000)
    blend_sections: int = Field(4, ge=0, le=10, description="Number of sections to blend between prompts")
    system_prompt: str | None = Field(
        None, description="Override of the HunyuanVideo prompt template: text with `{}` where the prompt goes, or "
                          "a JSON object {\"template\": \"...{}...\", \"crop_start\": 95}; None = default")

    # Inputs
    start_image: Path | None = Field(None, description="Start frame (Original, Original with Endframe, F1, Grid)")
    end_image: Path | None = Field(None, description="End frame, optional (Endframe types and F1)")
    end_frame_strength: float = Field(1.0, ge=0.05, le=1.0, description="End Frame Influence")
    end_frame_embedding_blend: float = Field(
        0.0, ge=0.0, le=1.0, description="Blend the end image's SigLIP embedding into the conditioning (0 = off)")
    input_video: Path | None = Field(None, description="Source video (Video types)")
    num_context_frames: int = Field(5, ge=2, le=10, description="Number of Context Frames (adherence to video)")
    combine_with_source: bool = Field(True, description="Write the source followed by the extension")
    latent_image: LatentImage = Field(LatentImage.BLACK, description="Start latent when no start frame is given")
    keyframes: list[Keyframe] = Field(default_factory=list, max_length=32)

    # Sampling
    seed: int = Field(31337, ge=0, le=2**63 - 1)
    total_seconds: float = Field(5.0, ge=1.0, le=120.0, description="Video Length (Seconds)")
    width: int = Field(640, ge=64, le=1536, description="Requested width; snapped to a resolution bucket")
    height: int = Field(640, ge=64, le=1536, description="Requested height; snapped to a resolution bucket")
    steps: int = Field(25, ge=1, le=100)
    cfg: float = Field(1.0, ge=1.0, le=3.0, description="CFG Scale (real CFG; 1 = off)")
    distilled_cfg: float = Field(10.0, ge=1.0, le=32.0, description="Distilled CFG Scale")
    cfg_rescale: float = Field(0.0, ge=0.0, le=1.0, description="CFG Re-Scale")
    latent_window_size: int = Field(9, ge=1, le=33)

    # Step caching
    cache_type: CacheType = Field(CacheType.TEACACHE)
    teacache_threshold: float = Field(0.15, ge=0.0, le=1.0, description="TeaCache rel_l1_thresh")
    magcache_threshold: float = Field(0.1, ge=0.0, le=1.0)
    magcache_max_consecutive_skips: int = Field(2, ge=1, le=10)
    magcache_retention_ratio: float = Field(0.25, ge=0.0, le=1.0)

    # LoRAs
    loras: list[LoraSpec] = Field(default_factory=list, max_length=16)

    # Grid
    grid_x: GridAxis | None = None
    grid_y: GridAxis | None = None
    grid_model: Literal["Original", "F1"] = "Original"

    # Continue from this video (studio/jobs/continuation.py): which video this extension continues.
    continued_from: ContinuedFrom | None = None

    @model_validator(mode="after")
    def _check_type_inputs(self, info: ValidationInfo) -> "GenerationParams":
        gt = self.generation_type
        # FORM_DRAFT: a parameter set for the Generate form only (metadata.parse_metadata, lenient), whose
        # source video is gone: it keeps its type and the form asks for a video before it is added.
        if gt.is_video and self.input_video is None and not (info.context or {}).get(FORM_DRAFT):
            raise ValueError(f"input_video: required for generation type {gt.value!r}")
        if gt == GenerationType.GRID and self.grid_x is None:
            raise ValueError("grid_x: a Grid job needs at least the X axis")
        if self.continued_from is not None and not gt.is_video:
            raise ValueError(f"continued_from: only a Video type extends a video (this job is {gt.value!r})")
        if self.system_prompt is not None:
            problem = system_prompt_error(self.system_prompt) if self.system_prompt.strip() else \
                "the template is empty; leave it out for the default"
            if problem:
                raise ValueError(f"system_prompt: {problem}")
        return self

    @property
    def transformer_kind(self) -> TransformerKind:
        gt = self.generation_type
        if gt in (GenerationType.F1, GenerationType.VIDEO_F1):
            return TransformerKind.F1
        if gt == GenerationType.GRID and self.grid_model == "F1":
            return TransformerKind.F1
        return TransformerKind.ORIGINAL
