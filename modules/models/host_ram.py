"""How much CPU memory one worker's weights take, from the registry's sizes (no torch, no model loaded).

It follows the manager's CUDA memory policy (modules/models/memory.py): the transformer stays on the GPU when it
fits with the preserved memory, else the blocks that do not fit stay in host memory and stream; the encoders and
VAE stay on the GPU only when they fit beside the whole transformer, else they wait in host memory between uses.
A CPU worker holds everything in host memory. The GPU workers of one process share one host copy of what waits
in RAM: the streamed transformer blocks (modules/memory/streaming.py, HOST_BLOCKS) and the encoders and VAE
between uses (modules/memory/offload.py, HOST_COPIES). A CPU worker's weights are its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from modules.models.registry import COMPONENTS, SHARED_COMPONENTS, TRANSFORMER_COMPONENT, TransformerKind

TRANSFORMER_GB = COMPONENTS[TRANSFORMER_COMPONENT[TransformerKind.ORIGINAL]].approx_size_gb
SHARED_GB = sum(COMPONENTS[n].approx_size_gb for n in SHARED_COMPONENTS)
STAGING_GB = 1.5  # two staging slots and the non-block modules the streamer keeps on the GPU


@dataclass(frozen=True)
class HostRam:
    per_worker_gb: list[float]  # each worker's own: a CPU worker's every weight
    shared_gb: float = 0.0  # streamed blocks and waiting encoders: one copy, shared by the GPU workers

    @property
    def total_gb(self) -> float:
        return sum(self.per_worker_gb) + self.shared_gb

    def describe(self) -> str:
        n = len(self.per_worker_gb)
        each = ", ".join(f"{g:.0f}" for g in self.per_worker_gb)
        return (f"about {self.total_gb:.0f} GB of RAM for the real models' weights on {n} worker(s): "
                f"{self.shared_gb:.0f} GB that the GPU workers share (streamed blocks, encoders between uses), "
                f"plus {each} GB of each worker's own")


def worker_host_gb(vram_gb: float | None, preserved_gb: float) -> tuple[float, float, float]:
    """(own, streamed, encoders) host memory of one worker's weights (real model set); the last two are shared
    with the process's other GPU workers. vram_gb None: a CPU worker, which holds every weight itself."""
    if vram_gb is None:
        return TRANSFORMER_GB + SHARED_GB, 0.0, 0.0
    room = max(0.0, vram_gb - preserved_gb)
    transformer_fits = TRANSFORMER_GB * 1.05 <= room
    streamed = 0.0 if transformer_fits else max(0.0, TRANSFORMER_GB - max(0.0, room - STAGING_GB))
    encoders = 0.0 if SHARED_GB + TRANSFORMER_GB <= room else SHARED_GB
    return 0.0, streamed, encoders


def host_ram(vram_gb: list[float | None], preserved_gb: float) -> HostRam:
    """vram_gb: each worker's GPU memory (None for a CPU worker). Shared copies are counted once: the worker
    with the least room streams the most blocks, and the others' streamed blocks are among those."""
    parts = [worker_host_gb(v, preserved_gb) for v in vram_gb]
    shared = max((s for _, s, _ in parts), default=0.0) + max((e for _, _, e in parts), default=0.0)
    return HostRam([round(own, 1) for own, _, _ in parts], round(shared, 1))
