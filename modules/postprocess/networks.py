"""Building post-processing networks from state dicts: spandrel detection, meta-device builds, random weights.

Shared by the upscaler, face restoration and frame interpolation, so none of them imports another for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from spandrel import ImageModelDescriptor, ModelLoader

from .common import PostProcessError

M = TypeVar("M", bound=torch.nn.Module)


def random_state_dict(net_factory: Callable[[], torch.nn.Module], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights for an architecture, fan-in scaled and reproducible for a seed. The network is built
    on the meta device, which skips PyTorch's slow per-layer initialisation of large models."""
    with torch.device("meta"):
        net = net_factory()
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in net.state_dict().items():
        if v.dim() >= 2:
            bound = 1.0 / math.sqrt(max(1, v[0].numel()))  # PyTorch's default fan-in bound
            state[k] = torch.empty(v.shape).uniform_(-bound, bound, generator=g)
        elif k.endswith("bias"):
            state[k] = torch.zeros(v.shape)
        else:  # PReLU slopes, scales, noise buffers
            state[k] = torch.full(v.shape, 0.25) if v.numel() <= 64 else torch.randn(v.shape, generator=g)
    return state


def build_with_state(net_factory: Callable[[], M], state: dict[str, torch.Tensor]) -> M:
    """Build the network on the meta device and adopt `state` as its weights (strict: every key must match).

    The meta device (a thread-local torch mode, unlike patching torch.nn.init) skips the random
    initialisation that the loaded weights would overwrite anyway.
    """
    with torch.device("meta"):
        net = net_factory()
    own = net.state_dict()
    # assign=True adopts the tensors as they are; cast to the architecture's dtypes as a copy would.
    net.load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}, assign=True)
    left = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:
        raise PostProcessError(f"weights do not cover the network: {left[0]} has no value")
    return net


def load_descriptor(state: dict[str, torch.Tensor]) -> ImageModelDescriptor:
    """Build the network spandrel detects from the state dict and load every weight into it."""
    desc = ModelLoader().load_from_state_dict(state)
    if not isinstance(desc, ImageModelDescriptor):
        raise PostProcessError("weights are not an image-to-image model")
    return desc.eval()
