"""Drive the tiny Original transformer section by section from the golden recorded conditioning.

The Original (anti-drifting) history rule of tests/fixtures/golden/README.md is rebuilt here from the golden
generated latents of earlier sections, so each section can be checked on its own, without the engine.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import HunyuanVideoFramepackTransformer3DModel
from safetensors.torch import load_file

from modules.framepack.sampler import unipc_sample
from modules.models.registry import ORIGINAL_REPO, TINY_HUB_DIR

GS = 10.0


def load_tiny_original() -> HunyuanVideoFramepackTransformer3DModel:
    model = HunyuanVideoFramepackTransformer3DModel.from_pretrained(
        ORIGINAL_REPO, cache_dir=TINY_HUB_DIR, local_files_only=True, torch_dtype=torch.float32)
    return model.eval().requires_grad_(False)


def load_case(golden_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(golden_dir / f"{name}.safetensors"))


def section_inputs(g: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Transformer keyword arguments (minus x/timestep) of section k, history from golden outputs."""
    start = g["start_latent"]
    history = torch.zeros(1, 16, 19, 8, 8)
    for j in range(k):
        history = torch.cat([g[f"section{j:02d}.generated_latents"], history], dim=2)
    p = f"section{k:02d}."
    return dict(
        encoder_hidden_states=g["llama_vec"],
        encoder_attention_mask=g["llama_attention_mask"],
        pooled_projections=g["clip_l_pooler"],
        image_embeds=g["image_encoder_last_hidden_state"],
        indices_latents=g[p + "latent_indices"][0],
        latents_clean=torch.cat([start, history[:, :, 0:1]], dim=2),
        indices_latents_clean=g[p + "clean_latent_indices"][0],
        latents_history_2x=history[:, :, 1:3],
        indices_latents_history_2x=g[p + "clean_latent_2x_indices"][0],
        latents_history_4x=history[:, :, 3:19],
        indices_latents_history_4x=g[p + "clean_latent_4x_indices"][0],
    )


def make_denoise(model, inputs: dict[str, torch.Tensor], calls: list | None = None):
    guidance = torch.tensor([GS * 1000.0])

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(x.clone())
        v = model(hidden_states=x, timestep=sigma.float() * 1000, guidance=guidance, return_dict=False,
                  **inputs)[0]
        return x.float() - v.float() * sigma.float()

    return denoise


def run_section(model, g: dict[str, torch.Tensor], k: int, calls: list | None = None) -> torch.Tensor:
    with torch.no_grad():
        return unipc_sample(make_denoise(model, section_inputs(g, k), calls), g[f"section{k:02d}.noise"],
                            g["sigmas"])
