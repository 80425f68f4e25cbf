"""Device memory management: residency planning, block streaming, on-demand model placement, RSS.

    plan = plan_residency(block_bytes, fixed_bytes, free_bytes, preserved_gb, activation_bytes)
    streamer = BlockStreamer(transformer, device, plan).attach()   # .detach() / .refresh()
    streamer = place_transformer(transformer, device, MemoryPolicy(preserved_gb), current=streamer)
    with on_device(text_encoder, device): ...
    peak_rss_mb()
"""

from modules.memory.offload import (
    configure_vae_for_memory,
    device_free_bytes,
    estimate_vae_decode_bytes,
    on_device,
    release_device_memory,
    resolve_device,
    unload_modules,
)
from modules.memory.planner import GIB, ResidencyPlan, estimate_activation_bytes, plan_residency
from modules.memory.policy import DEFAULT_TOKENS, MemoryPolicy, place_transformer, plan_for_transformer
from modules.memory.rss import RSSMonitor, current_rss_mb, peak_rss_mb
from modules.memory.streaming import BlockStreamer, describe_transformer, transformer_blocks

__all__ = [
    "GIB", "DEFAULT_TOKENS", "BlockStreamer", "MemoryPolicy", "RSSMonitor", "ResidencyPlan",
    "configure_vae_for_memory", "current_rss_mb", "describe_transformer", "device_free_bytes",
    "estimate_activation_bytes", "estimate_vae_decode_bytes", "on_device", "peak_rss_mb", "place_transformer",
    "plan_for_transformer", "plan_residency", "release_device_memory", "resolve_device", "transformer_blocks",
    "unload_modules",
]
