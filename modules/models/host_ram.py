"""How much CPU memory one worker's weights take, from the registry's sizes (no torch, no model loaded).

It follows the manager's CUDA memory policy (modules/models/memory.py): the transformer stays on the GPU when it
fits with the preserved memory, else the blocks that do not fit stay in host memory and stream; the encoders and
VAE stay on the GPU only when they fit beside the whole transformer, else they wait in host memory between uses.
A CPU worker holds everything in host memory. Each worker holds its own copy: the sum is what N workers need.
"""

from __future__ import annotations

from dataclasses import dataclass

from modules.models.registry import COMPONENTS, SHARED_COMPONENTS, TRANSFORMER_COMPONENT, TransformerKind

TRANSFORMER_GB = COMPONENTS[TRANSFORMER_COMPONENT[TransformerKind.ORIGINAL]].approx_size_gb
SHARED_GB = sum(COMPONENTS[n].approx_size_gb for n in SHARED_COMPONENTS)
STAGING_GB = 1.5  # two staging slots and the non-block modules the streamer keeps on the GPU


@dataclass(frozen=True)
class HostRam:
    per_worker_gb: list[float]

    @property
    def total_gb(self) -> float:
        return sum(self.per_worker_gb)

    def describe(self) -> str:
        n = len(self.per_worker_gb)
        each = ", ".join(f"{g:.0f}" for g in self.per_worker_gb)
        return (f"about {self.total_gb:.0f} GB of RAM for the real models' weights on {n} worker(s) "
                f"({each} GB each; every worker keeps its own copy)")


def worker_host_gb(vram_gb: float | None, preserved_gb: float) -> float:
    """Host memory for one worker's weights (real model set); vram_gb None: a CPU worker."""
    if vram_gb is None:
        return TRANSFORMER_GB + SHARED_GB
    room = max(0.0, vram_gb - preserved_gb)
    transformer_fits = TRANSFORMER_GB * 1.05 <= room
    transformer_host = 0.0 if transformer_fits else max(0.0, TRANSFORMER_GB - max(0.0, room - STAGING_GB))
    shared_host = 0.0 if SHARED_GB + TRANSFORMER_GB <= room else SHARED_GB
    return transformer_host + shared_host


def host_ram(vram_gb: list[float | None], preserved_gb: float) -> HostRam:
    """vram_gb: each worker's GPU memory (None for a CPU worker)."""
    return HostRam([round(worker_host_gb(v, preserved_gb), 1) for v in vram_gb])
