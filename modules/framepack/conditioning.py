"""Conditioning: prompt encodings (Llama + CLIP), SigLIP image embedding, VAE encode/decode, latent images.

Pixels are float in [-1, 1], (batch, 3, time, height, width); latents (batch, 16, time, height/8, width/8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from modules.framepack.params import LatentImage
from modules.framepack.system_prompt import SystemPromptTemplate, parse_system_prompt

DEFAULT_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)
MAX_PROMPT_TOKENS = 256
LLAMA_PAD_TO = 512
CLIP_MAX_LENGTH = 77


@dataclass
class PromptEmbedding:
    llama_vec: torch.Tensor  # [1, 512, C] zero-padded
    llama_mask: torch.Tensor  # [1, 512] bool
    clip_pooled: torch.Tensor  # [1, C2]

    def zeros_like(self) -> "PromptEmbedding":
        """The cfg == 1 negative: zeros with the positive's mask (never evaluated by the transformer)."""
        return PromptEmbedding(torch.zeros_like(self.llama_vec), self.llama_mask.clone(),
                               torch.zeros_like(self.clip_pooled))


def template_crop_start(tokenizer, template: str) -> int:
    """Number of tokens the template puts before the prompt (95 for HunyuanVideo's), incl. BOS."""
    prefix = template.split("{}")[0]
    return len(tokenizer(prefix)["input_ids"])


def pad_to(vec: torch.Tensor, mask: torch.Tensor, length: int = LLAMA_PAD_TO) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (or cut) [1, n, C] to [1, length, C] with a bool mask marking the first n tokens."""
    n = vec.shape[1]
    if n >= length:
        return vec[:, :length], mask[:, :length]
    pad = torch.zeros(vec.shape[0], length - n, vec.shape[2], dtype=vec.dtype, device=vec.device)
    mpad = torch.zeros(mask.shape[0], length - n, dtype=torch.bool, device=mask.device)
    return torch.cat([vec, pad], dim=1), torch.cat([mask.bool(), mpad], dim=1)


def llama_input(prompt: str, tokenizer, template: str | SystemPromptTemplate | None = None) -> tuple[str, int]:
    """The Llama encoder's text and the number of template tokens cropped off its output (crop_start).

    template: None (HunyuanVideo's default) or a system prompt override in either form
    (modules/framepack/system_prompt.py: text with `{}`, or a JSON object with "template" and "crop_start")."""
    if template is None or isinstance(template, str) and not template.strip():
        parsed = SystemPromptTemplate(template=DEFAULT_TEMPLATE)
    elif isinstance(template, SystemPromptTemplate):
        parsed = template
    else:
        parsed = parse_system_prompt(template)
    crop = parsed.crop_start if parsed.crop_start is not None else template_crop_start(tokenizer, parsed.template)
    return parsed.format(prompt), crop


@torch.no_grad()
def encode_prompt(prompt: str, tokenizer, text_encoder, tokenizer_2, text_encoder_2,
                  template: str | SystemPromptTemplate | None = None) -> PromptEmbedding:
    device = text_encoder.device
    text, crop = llama_input(prompt, tokenizer, template)
    tok = tokenizer(text, padding="max_length", max_length=MAX_PROMPT_TOKENS + crop,
                    truncation=True, return_tensors="pt")
    ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
    out = text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    n_valid = int(mask.sum())
    vec = out.hidden_states[-3][:, crop:n_valid]
    vmask = torch.ones(1, vec.shape[1], dtype=torch.bool, device=device)
    llama_vec, llama_mask = pad_to(vec, vmask)

    tok2 = tokenizer_2(prompt, padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True,
                       return_tensors="pt")
    clip = text_encoder_2(input_ids=tok2["input_ids"].to(text_encoder_2.device)).pooler_output
    return PromptEmbedding(llama_vec, llama_mask, clip)


def mix_embeddings(embs: list[PromptEmbedding], weights: dict[int, float]) -> PromptEmbedding:
    """Linear mix of padded embeddings by weights over indices; the mask is the union of those used."""
    items = [(i, w) for i, w in sorted(weights.items()) if w != 0.0]
    if len(items) == 1:
        return embs[items[0][0]]
    vec = sum(embs[i].llama_vec * w for i, w in items)
    clip = sum(embs[i].clip_pooled * w for i, w in items)
    mask = embs[items[0][0]].llama_mask.clone()
    for i, _ in items[1:]:
        mask |= embs[i].llama_mask
    return PromptEmbedding(vec, mask, clip)


@torch.no_grad()
def encode_image_siglip(image: np.ndarray, feature_extractor, image_encoder) -> torch.Tensor:
    """SigLIP last_hidden_state of a uint8 HxWx3 image: [1, tokens, C]."""
    pixels = feature_extractor.preprocess(images=image, return_tensors="pt")["pixel_values"]
    pixels = pixels.to(image_encoder.device, image_encoder.dtype)
    return image_encoder(pixel_values=pixels).last_hidden_state


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float [1, 3, 1, H, W] in [-1, 1]."""
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).float() / 127.5 - 1.0  # a copy: inputs may be read-only
    return t.permute(2, 0, 1)[None, :, None]


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 TxHxWx3 -> float [1, 3, T, H, W] in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return t.permute(3, 0, 1, 2)[None]


@torch.no_grad()
def vae_encode(pixels: torch.Tensor, vae) -> torch.Tensor:
    """[1, 3, T, H, W] in [-1, 1] -> latents `mode() * scaling_factor` (float32)."""
    pixels = pixels.to(vae.device, vae.dtype)
    latent = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor
    return latent.float()


@torch.no_grad()
def vae_decode(latents: torch.Tensor, vae) -> torch.Tensor:
    """Latents -> float pixels [1, 3, 4(T-1)+1, H, W] in about [-1, 1] (float32, on CPU)."""
    latents = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor
    return vae.decode(latents).sample.float().cpu()


def pixels_to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """[1, 3, T, H, W] float -> uint8 TxHxWx3 (clamp, *127.5+127.5, truncating cast as the reference does)."""
    x = (pixels[0].clamp(-1, 1) * 127.5 + 127.5).to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().numpy()


GREEN_SCREEN_RGB = (0, 177, 64)  # chroma-key green


def latent_image(kind: LatentImage, height: int, width: int, seed: int) -> np.ndarray:
    """The stand-in start image when no start frame is given (encoded like a start frame)."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    if kind == LatentImage.WHITE:
        img[:] = 255
    elif kind == LatentImage.NOISE:
        # Its own RNG: the job's torch generator is reserved for section noise (reproducibility).
        img = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    elif kind == LatentImage.GREEN_SCREEN:
        img[:] = GREEN_SCREEN_RGB
    return img
