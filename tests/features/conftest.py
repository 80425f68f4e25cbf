"""Fixtures for the features tests: the tiny Original transformer and a realistic forward call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_transformer():
    from diffusers import HunyuanVideoFramepackTransformer3DModel

    from modules.models.registry import ORIGINAL_REPO, TINY_HUB_DIR

    model = HunyuanVideoFramepackTransformer3DModel.from_pretrained(
        ORIGINAL_REPO, cache_dir=TINY_HUB_DIR, local_files_only=True, torch_dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="session")
def forward_inputs(golden_dir: Path) -> dict[str, torch.Tensor]:
    """Section 0 of the golden Original case at its first sigma (history rules: tests/fixtures/golden/README.md)."""
    from safetensors.torch import load_file

    g = load_file(str(golden_dir / "original.safetensors"))
    mask = g["llama_attention_mask"]
    zeros = torch.zeros(1, 16, 19, 8, 8)
    history = zeros
    return {
        "hidden_states": g["section00.noise"],
        "timestep": g["sigmas"][:1] * 1000.0,
        "encoder_hidden_states": g["llama_vec"],
        "encoder_attention_mask": mask,
        "pooled_projections": g["clip_l_pooler"],
        "image_embeds": g["image_encoder_last_hidden_state"],
        "indices_latents": g["section00.latent_indices"][0],
        "guidance": torch.tensor([10.0 * 1000.0]),
        "latents_clean": torch.cat([g["start_latent"], history[:, :, 0:1]], dim=2),
        "indices_latents_clean": g["section00.clean_latent_indices"][0],
        "latents_history_2x": history[:, :, 1:3],
        "indices_latents_history_2x": g["section00.clean_latent_2x_indices"][0],
        "latents_history_4x": history[:, :, 3:19],
        "indices_latents_history_4x": g["section00.clean_latent_4x_indices"][0],
    }


@pytest.fixture(scope="session")
def run_forward(tiny_transformer, forward_inputs) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.no_grad():
            return tiny_transformer(**forward_inputs, return_dict=False)[0]
    return run
