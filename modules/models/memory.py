"""The ModelManager's memory policy on CUDA (`make_policy`, called by the manager).

Thin adapter over modules.memory: where to load weights, placing/streaming the transformer by free memory,
moving the shared encoders/VAE onto the GPU only while they run, and freeing everything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any, Iterator

import torch
from torch import nn

from modules.memory import (
    GIB,
    BlockStreamer,
    MemoryPolicy,
    configure_vae_for_memory,
    device_free_bytes,
    on_device,
    place_transformer,
    release_device_memory,
)
from modules.memory.offload import HostState, keep_shared, module_device
from modules.memory.policy import DEFAULT_TOKENS
from modules.models.registry import COMPONENTS, SHARED_COMPONENTS, TRANSFORMER_COMPONENT, TransformerKind

log = logging.getLogger(__name__)

VAE_MARGIN_GB = 1.0  # kept free beyond the estimated untiled VAE decode before tiling is switched off


class ManagerMemory:
    """One per ModelManager on a CUDA device.

    config: the manager's RuntimeConfig. Its `preserved_memory_gb` is read every time the policy is asked, so a
    changed "GPU Inference Preserved Memory" setting (the worker writes it into the config before each job)
    applies to the next job's plans without a restart."""

    def __init__(self, device: torch.device, policy: MemoryPolicy, config: Any = None) -> None:
        self.device = torch.device(device)
        self._policy = policy
        self._config = config
        self.streamer: BlockStreamer | None = None
        self._host_key: tuple[str, ...] | None = None  # the loaded transformer's weights (after_load)
        self._hosts: dict[int, HostState] = {}  # id(encoder or VAE) -> its kept (shared) CPU weights
        self._shared_on_device: bool | None = None

    @property
    def policy(self) -> MemoryPolicy:
        """The policy with the config's current preserved memory."""
        preserved = getattr(self._config, "preserved_memory_gb", None)
        if preserved is None or float(preserved) == self._policy.preserved_gb:
            return self._policy
        return dataclasses.replace(self._policy, preserved_gb=float(preserved))

    @policy.setter
    def policy(self, policy: MemoryPolicy) -> None:
        """An explicit policy (tests, benchmarks): its preserved memory wins over the config's from now on."""
        self._policy = policy
        self._config = None

    # where to load ------------------------------------------------------------------------------------------
    def transformer_load_device(self) -> torch.device | str:
        """Straight onto the GPU when the whole transformer clearly fits (no host round trip); otherwise
        loaded (memory-mapped) on the CPU and then placed block by block."""
        transformer_gb = COMPONENTS[TRANSFORMER_COMPONENT[TransformerKind.ORIGINAL]].approx_size_gb
        free_gb = self._free_gb()
        if not self.policy.force_streaming and transformer_gb * 1.05 + self.policy.preserved_gb <= free_gb:
            return self.device
        return "cpu"

    def _free_gb(self) -> float:
        free_gb = device_free_bytes(self.device) / GIB
        return min(free_gb, self.policy.device_cap_gb) if self.policy.device_cap_gb is not None else free_gb

    def shared_load_device(self) -> torch.device:
        """Keep the encoders and VAE on the GPU only when they fit beside the whole transformer."""
        if self._shared_on_device is None:
            shared_gb = sum(COMPONENTS[n].approx_size_gb for n in SHARED_COMPONENTS)
            transformer_gb = COMPONENTS[TRANSFORMER_COMPONENT[TransformerKind.ORIGINAL]].approx_size_gb
            free_gb = self._free_gb()
            if self.streamer is not None and self.streamer.plan.all_resident:
                transformer_gb = 0.0  # already on the device, so not part of what is free
            self._shared_on_device = (not self.policy.force_streaming
                                      and shared_gb + transformer_gb + self.policy.preserved_gb <= free_gb)
            log.info("encoders/VAE %s (%.1f GB free)", "stay on the GPU" if self._shared_on_device
                     else "move to the GPU only while they run", free_gb)
        return self.device if self._shared_on_device else torch.device("cpu")

    def load_device(self, component: str) -> torch.device | str:
        if component in TRANSFORMER_COMPONENT.values():
            return self.transformer_load_device()
        if component in SHARED_COMPONENTS:
            return self.shared_load_device()
        return self.device

    def after_load(self, component: str, model: Any) -> Any:
        # Which weights these are: the workers of this process that load the same ones share one CPU copy of
        # what waits in RAM (streamed blocks: HOST_BLOCKS; offloaded encoders and VAE: HOST_COPIES).
        if not isinstance(model, nn.Module):  # tokenizers, image processors
            return model
        cfg = self._config
        key = (component, str(getattr(cfg, "model_set", "")), str(getattr(cfg, "hf_home", "")),
               str(next(model.parameters()).dtype))
        if component in TRANSFORMER_COMPONENT.values():
            self._host_key = key
            return self.place(model)
        if module_device(model).type == "cpu" and self.device.type != "cpu":
            self._hosts[id(model)] = keep_shared(key, model)
        return model

    # placing ------------------------------------------------------------------------------------------------
    def place(self, transformer: nn.Module, tokens: int = DEFAULT_TOKENS) -> nn.Module:
        """Place (or re-plan before a section) the transformer; unchanged plans move nothing."""
        current = self.streamer if self.streamer is not None and self.streamer.transformer is transformer else None
        self.streamer = place_transformer(transformer, self.device, self.policy, current=current, tokens=tokens,
                                          host_key=self._host_key)
        return transformer

    @contextlib.contextmanager
    def using(self, *modules: nn.Module | None) -> Iterator[None]:
        """Run encoders/VAE on the GPU for the body of the with-block (no-op for modules already there)."""
        with contextlib.ExitStack() as stack:
            for m in modules:
                if m is not None:
                    stack.enter_context(on_device(m, self.device, host=self._hosts.get(id(m))))
            for m in modules:
                if m is not None and hasattr(m, "enable_tiling"):  # the VAE: tile only when memory is short
                    configure_vae_for_memory(m, free_bytes=device_free_bytes(self.device),
                                             preserved_gb=VAE_MARGIN_GB)
            yield

    def release(self) -> None:
        """Forget the transformer's placement; the caller drops the model, then the GPU is emptied."""
        if self.streamer is not None:
            self.streamer.detach()
            self.streamer = None
        self._hosts.clear()
        self._shared_on_device = None  # decided again at the next load
        release_device_memory()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"preserved_gb": self.policy.preserved_gb,
                               "force_streaming": self.policy.force_streaming}
        if self.streamer is not None:
            out.update(self.streamer.plan.summary())
        return out


def make_policy(manager: Any) -> ManagerMemory:
    """Policy from RuntimeConfig (preserved memory; optional `force_low_vram` / `vram_cap_gb` fields) with the
    environment (FP_STUDIO_FORCE_LOW_VRAM=1, FP_STUDIO_VRAM_CAP_GB=6) as the fallback."""
    cfg = manager.config
    env = MemoryPolicy.from_env(cfg.preserved_memory_gb)
    cap = getattr(cfg, "vram_cap_gb", None)
    policy = MemoryPolicy(cfg.preserved_memory_gb, bool(getattr(cfg, "force_low_vram", False)) or env.force_streaming,
                          float(cap) if cap else env.device_cap_gb)
    return ManagerMemory(manager.device, policy, config=cfg)
