"""Tiny FramePack transformers and a realistic forward call built from the golden data."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from modules.models.registry import ORIGINAL_REPO, TINY_HUB_DIR


def load_tiny_transformer():
    from diffusers import HunyuanVideoFramepackTransformer3DModel

    model = HunyuanVideoFramepackTransformer3DModel.from_pretrained(
        ORIGINAL_REPO, cache_dir=TINY_HUB_DIR, local_files_only=True, torch_dtype=torch.float32)
    return model.eval().requires_grad_(False)


def build_deep_transformer(num_layers: int = 3, num_single_layers: int = 4, seed: int = 0):
    """The tiny config with more blocks (random weights), so plans can mix resident and streamed blocks."""
    from diffusers import HunyuanVideoFramepackTransformer3DModel

    cfg = dict(HunyuanVideoFramepackTransformer3DModel.load_config(
        ORIGINAL_REPO, cache_dir=TINY_HUB_DIR, local_files_only=True))
    cfg.update(num_layers=num_layers, num_single_layers=num_single_layers)
    torch.manual_seed(seed)
    model = HunyuanVideoFramepackTransformer3DModel.from_config(cfg)
    return model.eval().requires_grad_(False)


def golden_forward_kwargs(golden_dir, history_seed: int | None = None) -> dict:
    """Section 0, step 0 of the `original` golden case (sigma 1.0), in diffusers' argument names.

    With `history_seed`, the clean/2x/4x history is random instead of zeros (exercises every embedder).
    """
    g = load_file(str(golden_dir / "original.safetensors"))
    s = "section00."
    start = g["start_latent"]
    b, c, _, h, w = start.shape
    if history_seed is None:
        hist = torch.zeros(b, c, 19, h, w)
    else:
        hist = torch.randn(b, c, 19, h, w, generator=torch.Generator().manual_seed(history_seed))
    sigma = g["sigmas"][:1]
    return dict(
        hidden_states=g[s + "noise"],
        timestep=sigma * 1000.0,
        encoder_hidden_states=g["llama_vec"],
        encoder_attention_mask=g["llama_attention_mask"],
        pooled_projections=g["clip_l_pooler"],
        image_embeds=g["image_encoder_last_hidden_state"],
        indices_latents=g[s + "latent_indices"][0],
        guidance=torch.tensor([10.0 * 1000.0]),
        latents_clean=torch.cat([start, hist[:, :, 0:1]], dim=2),
        indices_latents_clean=g[s + "clean_latent_indices"][0],
        latents_history_2x=hist[:, :, 1:3],
        indices_latents_history_2x=g[s + "clean_latent_2x_indices"][0],
        latents_history_4x=hist[:, :, 3:19],
        indices_latents_history_4x=g[s + "clean_latent_4x_indices"][0],
        return_dict=False,
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny models are faster on one thread, and the test machine's two cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_transformer():
    return load_tiny_transformer()


@pytest.fixture(scope="module")
def deep_transformer():
    return build_deep_transformer()
