"""Events the engine yields while it generates: the one progress source for CLI, queue and UI sinks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class StageEvent:
    """A non-sampling phase (loading models, encoding prompts, decoding, writing)."""

    message: str


@dataclass
class StepEvent:
    section: int  # 0-based, in generation order
    total_sections: int
    step: int  # 1-based step just finished
    total_steps: int
    eta_seconds: float | None
    preview: np.ndarray | None = None  # uint8 H x W x 3, cheap latent->RGB preview (no VAE)


@dataclass
class SectionEvent:
    section: int
    total_sections: int
    frames_so_far: int
    preview_video: Path | None = None  # the growing preview MP4, when one is written


@dataclass
class GenerationResult:
    video: Path
    metadata: Path | None
    thumbnail: Path | None
    frames: int
    fps: int
    width: int
    height: int
    seed: int
    skipped_steps: int = 0
    extra_files: list[Path] = field(default_factory=list)  # latents, grid cells, ...
    info: dict = field(default_factory=dict)


@dataclass
class DoneEvent:
    result: GenerationResult


Event = StageEvent | StepEvent | SectionEvent | DoneEvent
