"""The facts of one job that every section loop shares: its section plan, its prepared inputs, step clock
and phase timings. The engine, the section loop and the type's SectionBuilder share them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from modules.framepack import conditioning as cond
from modules.framepack import sections as sec
from modules.framepack.params import GenerationParams
from modules.media.preview import LatentPreviewer
from modules.memory.rss import RSSMonitor
from modules.models.registry import TransformerKind


@dataclass
class Timings:
    """Seconds spent per phase (for the benchmark and the job's run stats; not in the sidecar)."""

    transformer: float = 0.0
    vae_decode: float = 0.0
    vae_encode: float = 0.0
    text_encoders: float = 0.0
    image_encoder: float = 0.0
    video_encode: float = 0.0
    preview: float = 0.0  # the growing preview video (only while someone watches it)
    loading: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


class PhaseTimer:
    """Context manager adding the block's wall time (after a CUDA sync) to one field of Timings."""

    def __init__(self, timings: Timings, name: str, device: torch.device) -> None:
        self.t, self.name, self.device = timings, name, device

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        setattr(self.t, self.name, getattr(self.t, self.name) + time.perf_counter() - self.start)


@dataclass
class StepClock:
    """Steps done of a job and the ETA from the mean of the last 8 step times."""

    total_steps: int
    done: int = 0
    times: list[float] = field(default_factory=list)

    def tick(self, seconds: float) -> float:
        """Record one finished step; returns the estimated seconds left."""
        self.times.append(seconds)
        self.done += 1
        recent = self.times[-8:]
        return sum(recent) / len(recent) * (self.total_steps - self.done)


@dataclass
class Prepared:
    """Everything the section loop needs, computed once per job (recomputed identically on resume)."""

    height: int
    width: int
    start_image: np.ndarray
    start_latent: torch.Tensor
    end_latent: torch.Tensor | None
    image_embeds: torch.Tensor
    prompt_embs: list[cond.PromptEmbedding]
    section_weights: list[dict[int, float]]  # per section, video-time order
    negative: cond.PromptEmbedding | None  # None when cfg == 1
    keyframe_latents: dict[int, torch.Tensor] = field(default_factory=dict)  # video-time section -> latent
    previewer: LatentPreviewer | None = None


@dataclass
class SectionPlan:
    """Derived section facts of a job."""

    kind: TransformerKind
    sections: int
    latent_window_size: int
    paddings: list[int]  # Original only (generation order)

    @property
    def forward(self) -> bool:
        return self.kind == TransformerKind.F1

    def video_index(self, k: int) -> int:
        """Video-time index of the k-th generated section."""
        return k if self.forward else self.sections - 1 - k


def plan_for(params: GenerationParams) -> SectionPlan:
    n = sec.section_count(params.total_seconds, params.latent_window_size)
    kind = params.transformer_kind
    pads = sec.original_paddings(n) if kind == TransformerKind.ORIGINAL else []
    return SectionPlan(kind, n, params.latent_window_size, pads)


@dataclass
class JobContext:
    """Per-job state of one Engine.generate call (the Engine and its model manager are shared across jobs)."""

    device: torch.device
    timings: Timings = field(default_factory=Timings)
    started: float = field(default_factory=time.perf_counter)  # for the job's wall time
    frames_encoded: int = 0  # frames through the H.264 encoder (final segments and preview)
    previews: int = 0  # growing preview videos built
    rss_monitor: RSSMonitor | None = None  # samples this job's peak RSS while it runs
    # Tests pass a dict to receive intermediate tensors (encodings, per-section latents, frames).
    trace: dict[str, Any] | None = None

    def timer(self, name: str) -> PhaseTimer:
        return PhaseTimer(self.timings, name, self.device)
