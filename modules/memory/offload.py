"""Moving whole models on and off the device, measuring free memory, and freeing the GPU.

Weights are loaded from safetensors memory-mapped (diffusers/transformers `from_pretrained` do this by default
with low_cpu_mem_usage): pages are read on first touch, and `.to(device)` replaces each parameter, so a model
is never held twice in RAM; moving it back to the CPU allocates fresh pageable tensors and frees the GPU copy.

A model that waits in RAM between uses can instead keep its CPU weights (`HostState`) and point back at them
after each use (`on_device(..., host=...)`): no copy back, and the workers of one process that load the same
weights share that one CPU copy (`HOST_COPIES`, checked equal before it is shared).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Hashable
from typing import Iterator

import torch
from torch import nn

from modules.memory.planner import GIB
from modules.memory.shared_copies import SharedCopies

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_free_bytes(device: str | torch.device) -> int:
    """Bytes this process may still allocate on `device` (honours set_per_process_memory_fraction).

    Memory cached by PyTorch's allocator counts as free. On CPU, the available system RAM.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        reserved = torch.cuda.memory_reserved(device)
        allocated = torch.cuda.memory_allocated(device)
        free += reserved - allocated
        fraction = torch.cuda.get_per_process_memory_fraction(device)
        if fraction < 1.0:
            free = min(free, int(fraction * total) - allocated)
        return max(int(free), 0)
    import psutil

    return int(psutil.virtual_memory().available)


def module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


class HostState(dict):
    """A model's CPU weights by qualified name (parameters and buffers)."""

    @classmethod
    def of(cls, module: nn.Module) -> "HostState":
        return cls({name: t.data for name, t in _tensors(module)})

    def same_as(self, other: "HostState") -> bool:
        return self.keys() == other.keys() and all(
            a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b) for a, b in
            ((self[k], other[k]) for k in self))

    def point(self, module: nn.Module) -> None:
        """Make the module's parameters and buffers these tensors again (the device copies are dropped)."""
        for name, _ in _tensors(module):
            owner_path, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_path)
            if attr in owner._parameters:
                owner._parameters[attr].data = self[name]
            else:
                owner._buffers[attr] = self[name]


def _tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]


HOST_COPIES: SharedCopies[HostState, HostState] = SharedCopies("CPU weights of")


def keep_shared(key: Hashable, module: nn.Module) -> HostState:
    """The CPU weights the module keeps from now on: another worker's equal copy (the module is pointed at it
    and its own copy freed), else its own, registered for the next worker."""
    own = HostState.of(module)

    def adopt(other: HostState) -> HostState | None:
        if not other.same_as(own):
            return None
        other.point(module)
        return other

    return HOST_COPIES.share(key, lambda: (own, own), adopt)



@contextlib.contextmanager
def on_device(module: nn.Module, device: str | torch.device, offload_to: str | torch.device = "cpu",
              keep: bool = False, host: HostState | None = None) -> Iterator[nn.Module]:
    """Run `module` on `device` for the body of the with-block, then move it back to `offload_to`, or point it
    back at its kept CPU weights `host` (no copy back).

    A no-op when the device is the CPU. `keep=True` leaves it on the device (enough memory to keep it).
    """
    device = torch.device(device)
    if device.type == "cpu" or module_device(module) == device:
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        if not keep:
            if host is not None and torch.device(offload_to).type == "cpu":
                host.point(module)
            else:
                module.to(offload_to)
            if device.type == "cuda":
                torch.cuda.empty_cache()


def release_device_memory() -> None:
    """Return cached GPU memory to the driver once the last reference to a model is gone."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def unload_modules(*modules: nn.Module | None) -> None:
    """Move modules off the GPU to the CPU and return the cached GPU memory.

    The caller must also drop its references for the host RAM to be released.
    """
    for m in modules:
        if m is not None and module_device(m).type == "cuda":
            m.to("cpu")
    release_device_memory()


# -- VAE ---------------------------------------------------------------------------------------------------------

# Largest window the engine decodes: 2 * latent window 9 + 1 latent frames at the 640x640 bucket.
WORST_DECODE_LATENTS = (1, 16, 19, 80, 80)


def estimate_vae_decode_bytes(latent_shape: tuple[int, ...], dtype_bytes: int = 2,
                              framewise_frames: int | None = None) -> int:
    """Peak memory of an untiled HunyuanVideo VAE decode of latents [B, 16, T, h, w].

    The last up-block works at full resolution with 128 channels on 4(T-1)+1 frames; about four such tensors
    are live at once (input, conv output, norm, residual). diffusers decodes long clips frame-wise in chunks of
    `framewise_frames` (+1) output frames, which bounds T.
    """
    b, _, t, h, w = latent_shape
    frames = 4 * (t - 1) + 1
    if framewise_frames is not None:
        frames = min(frames, framewise_frames + 1)
    return int(b * frames * (8 * h) * (8 * w) * 128 * dtype_bytes * 4)


def configure_vae_for_memory(vae: nn.Module, latent_shape: tuple[int, ...] = WORST_DECODE_LATENTS,
                             free_bytes: int | None = None, preserved_gb: float = 0.0,
                             dtype_bytes: int | None = None) -> bool:
    """Enable tiled decoding when an untiled decode would not fit; returns True if tiled.

    Tiling changes the pixels slightly at tile seams, so it is only switched on when memory is short.
    """
    if dtype_bytes is None:
        dtype_bytes = next(vae.parameters()).element_size()
    if free_bytes is None:
        free_bytes = device_free_bytes(module_device(vae))
    framewise = getattr(vae, "tile_sample_min_num_frames", None) if getattr(vae, "use_framewise_decoding",
                                                                           False) else None
    need = estimate_vae_decode_bytes(latent_shape, dtype_bytes, framewise)
    short = need > free_bytes - int(preserved_gb * GIB)
    if short and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        log.info("VAE tiling on: untiled decode needs ~%.1f GB, %.1f GB free", need / GIB, free_bytes / GIB)
    elif hasattr(vae, "disable_tiling"):
        vae.disable_tiling()
    return short and hasattr(vae, "enable_tiling")
