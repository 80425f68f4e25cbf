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


class StepClock:
    """The ETA of one section loop, from the measured time of everything a section does.

    The loop reports each sampler step's seconds (`tick`) and, once a section is finished, that section's whole
    wall time (`section_done`: sampling, VAE decode, segment encode, checkpoint, preview; from the start of the
    section to its SectionEvent). The estimate of the seconds left:

    - before any section has finished: steps left x the mean of the last 8 step times (no per-section overhead
      is known yet, so steps only);
    - afterwards: the current section's steps left x that mean step time, plus the mean overhead of a section
      (its wall time less its steps' times, i.e. decode + encode + checkpoint), plus the sections after it x the
      mean section wall time, plus the final join (written after the last section: the tail segment and the
      joined MP4; estimated as one section's overhead). So the last section's ETA never reads 0 while its
      decode and encode remain.

    Times are passed in (no clock is read here), so tests inject them.
    """

    RECENT = 8  # step times averaged

    def __init__(self, sections: int, steps_per_section: int, first_section: int = 0) -> None:
        self.sections, self.steps_per_section = sections, steps_per_section
        self.section = first_section  # the one being sampled (generation order)
        self.step = 0  # steps done of it
        self.step_times: list[float] = []
        self.section_times: list[float] = []  # wall seconds of each finished section
        self.overheads: list[float] = []  # wall seconds less step seconds of each finished section
        self._sampled = 0.0  # step seconds of the current section

    def tick(self, seconds: float) -> float:
        """Record one finished step of the current section; returns the estimated seconds left."""
        self.step_times.append(seconds)
        self.step += 1
        self._sampled += seconds
        return self.eta()

    def section_done(self, seconds: float) -> float:
        """Record the current section's whole wall time; the next section becomes current. Returns the ETA."""
        self.section_times.append(seconds)
        self.overheads.append(max(0.0, seconds - self._sampled))
        self.section += 1
        self.step, self._sampled = 0, 0.0
        return self.eta()

    def eta(self) -> float:
        """Estimated seconds until the job's files are written."""
        recent = self.step_times[-self.RECENT:]
        step_mean = sum(recent) / len(recent) if recent else 0.0
        steps_left = max(0, self.steps_per_section - self.step) if self.section < self.sections else 0
        if not self.section_times:
            later = max(0, self.sections - self.section - 1) * self.steps_per_section
            return step_mean * (steps_left + later)
        overhead = sum(self.overheads) / len(self.overheads)
        section_mean = sum(self.section_times) / len(self.section_times)
        current = step_mean * steps_left + overhead if self.section < self.sections else 0.0
        later = max(0, self.sections - self.section - 1)
        return current + later * section_mean + overhead


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
