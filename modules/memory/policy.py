"""The device-memory policy: measure free memory, plan residency, place the transformer.

Chosen from the memory actually free on the device (no fixed 60 GB threshold): a card where everything fits
keeps every block resident for the whole job (nothing swaps between sections); smaller cards stream the rest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from torch import nn

from modules.memory.offload import device_free_bytes
from modules.memory.planner import GIB, ResidencyPlan, estimate_activation_bytes, plan_residency
from modules.memory.streaming import BlockStreamer, describe_transformer

log = logging.getLogger(__name__)

# 640x640 bucket, latent window 9 (Original): 18,400 latent + 729 image + ~20 text tokens.
DEFAULT_TOKENS = 19_149
FORCE_ENV = "FP_STUDIO_FORCE_LOW_VRAM"
CAP_ENV = "FP_STUDIO_VRAM_CAP_GB"


@dataclass(frozen=True)
class MemoryPolicy:
    """User-facing knobs. `force_streaming` reaches the low-memory path on any card (testing);
    `device_cap_gb` makes the planner behave as on a card with that much memory."""

    preserved_gb: float = 6.0
    force_streaming: bool = False
    device_cap_gb: float | None = None

    @classmethod
    def from_env(cls, preserved_gb: float = 6.0) -> "MemoryPolicy":
        force = os.environ.get(FORCE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        cap = os.environ.get(CAP_ENV, "").strip()
        return cls(preserved_gb, force, float(cap) if cap else None)


def _bytes_on(module: nn.Module, device: torch.device) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers())
               if t.device == device)


def plan_for_transformer(transformer: nn.Module, device: str | torch.device, policy: MemoryPolicy,
                         tokens: int = DEFAULT_TOKENS, free_bytes: int | None = None,
                         current: BlockStreamer | None = None) -> ResidencyPlan:
    """Plan from the memory that would be free with none of this transformer (nor `current`'s staging
    slots) on the device."""
    device = torch.device(device)
    sizes, fixed = describe_transformer(transformer)
    if free_bytes is None:
        free_bytes = device_free_bytes(device) + _bytes_on(transformer, device)
        if current is not None and current.attached:
            free_bytes += current.slot_bytes_allocated
    if policy.device_cap_gb is not None:
        free_bytes = min(free_bytes, int(policy.device_cap_gb * GIB))
    cfg = getattr(transformer, "config", None)
    inner = int(cfg.num_attention_heads * cfg.attention_head_dim) if cfg is not None else 3072
    dtype_bytes = next(transformer.parameters()).element_size()
    act = estimate_activation_bytes(tokens, inner, getattr(cfg, "mlp_ratio", 4.0), dtype_bytes)
    plan = plan_residency(sizes, fixed, free_bytes, policy.preserved_gb, act,
                          force_streaming=policy.force_streaming)
    if not plan.fits:
        log.warning("transformer does not fit even streaming one block at a time (%.1f GB free, %.1f GB "
                    "preserved); expect out-of-memory errors: lower the preserved memory",
                    free_bytes / GIB, policy.preserved_gb)
    return plan


def place_transformer(transformer: nn.Module, device: str | torch.device, policy: MemoryPolicy,
                      current: BlockStreamer | None = None, tokens: int = DEFAULT_TOKENS,
                      host_key: Hashable | None = None) -> BlockStreamer:
    """Attach a BlockStreamer for the policy; call before each section. When the plan is unchanged the
    current streamer is kept as it is (no weight moves between sections). host_key: BlockStreamer's (one host
    copy per process of the same weights)."""
    plan = plan_for_transformer(transformer, device, policy, tokens, current=current)
    if current is not None and current.attached and current.plan.same_placement(plan):
        return current
    if current is not None:
        current.detach()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return BlockStreamer(transformer, device, plan, host_key=host_key).attach()
