"""The one list of model components FP-Studio loads: repo ids, subfolders, classes and sizes.

Every other module asks this registry; no repo id is spelled anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

HUNYUAN_REPO = "hunyuanvideo-community/HunyuanVideo"
REDUX_REPO = "lllyasviel/flux_redux_bfl"
ORIGINAL_REPO = "lllyasviel/FramePackI2V_HY"
F1_REPO = "lllyasviel/FramePack_F1_I2V_HY_20250503"

# The tiny, random-initialised stand-ins in the same Hugging Face cache layout (real repo ids).
TINY_HUB_DIR = Path(__file__).resolve().parent / "tiny_hub"


class ModelSet(str, Enum):
    """Which weights to load: the real ones from the HF cache, or the shipped tiny set."""

    REAL = "real"
    TINY = "tiny"


class TransformerKind(str, Enum):
    """The two FramePack transformers; generation types map onto one of them."""

    ORIGINAL = "original"
    F1 = "f1"


@dataclass(frozen=True)
class Component:
    """One loadable piece: where it lives and which class loads it."""

    name: str
    repo_id: str
    subfolder: str | None
    library: str  # "transformers" or "diffusers"
    class_name: str
    allow_patterns: tuple[str, ...]
    approx_size_gb: float  # download size of the real weights, for messages


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("text_encoder", HUNYUAN_REPO, "text_encoder", "transformers", "LlamaModel",
                  ("text_encoder/*",), 16.1),
        Component("tokenizer", HUNYUAN_REPO, "tokenizer", "transformers", "PreTrainedTokenizerFast",
                  ("tokenizer/*",), 0.01),
        Component("text_encoder_2", HUNYUAN_REPO, "text_encoder_2", "transformers", "CLIPTextModel",
                  ("text_encoder_2/*",), 0.25),
        Component("tokenizer_2", HUNYUAN_REPO, "tokenizer_2", "transformers", "CLIPTokenizer",
                  ("tokenizer_2/*",), 0.01),
        Component("vae", HUNYUAN_REPO, "vae", "diffusers", "AutoencoderKLHunyuanVideo",
                  ("vae/*",), 0.99),
        Component("feature_extractor", REDUX_REPO, "feature_extractor", "transformers", "SiglipImageProcessor",
                  ("feature_extractor/*",), 0.01),
        Component("image_encoder", REDUX_REPO, "image_encoder", "transformers", "SiglipVisionModel",
                  ("image_encoder/*",), 0.86),
        Component("transformer_original", ORIGINAL_REPO, None, "diffusers",
                  "HunyuanVideoFramepackTransformer3DModel", ("*.json", "*.safetensors"), 25.7),
        Component("transformer_f1", F1_REPO, None, "diffusers",
                  "HunyuanVideoFramepackTransformer3DModel", ("*.json", "*.safetensors"), 25.7),
    )
}

# The vision-language models the prompt helpers (caption, describe video, enhance) may use; the first is the
# default. All load with transformers' native classes (no trust_remote_code); docs/captioning.md compares them.
CAPTIONER_MODELS: dict[str, Component] = {
    c.repo_id: c
    for c in (
        Component("captioner", "Qwen/Qwen3-VL-2B-Instruct", None, "transformers", "AutoModelForImageTextToText",
                  ("*.json", "*.safetensors", "*.jinja", "*.txt"), 4.3),
        Component("captioner", "Qwen/Qwen3-VL-4B-Instruct", None, "transformers", "AutoModelForImageTextToText",
                  ("*.json", "*.safetensors", "*.jinja", "*.txt"), 8.9),
    )
}
DEFAULT_CAPTIONER = next(iter(CAPTIONER_MODELS))

TRANSFORMER_COMPONENT: dict[TransformerKind, str] = {
    TransformerKind.ORIGINAL: "transformer_original",
    TransformerKind.F1: "transformer_f1",
}

SHARED_COMPONENTS: tuple[str, ...] = (
    "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "vae", "feature_extractor", "image_encoder",
)


def cache_dir_for(model_set: ModelSet, hf_home: Path | None = None) -> Path | None:
    """The hub cache folder to use; None lets huggingface_hub honour HF_HOME / HF_HUB_CACHE itself."""
    if model_set == ModelSet.TINY:
        return TINY_HUB_DIR
    if hf_home is not None:
        return Path(hf_home) / "hub"
    return None


def transformer_config(kind: TransformerKind, model_set: ModelSet = ModelSet.REAL,
                       hf_home: Path | None = None) -> dict | None:
    """The transformer's config.json from the local hub cache (no download, no weights), or None when absent
    or unreadable: enough to know its layer shapes (lora_files.transformer_layers) without loading it."""
    import json

    from huggingface_hub import try_to_load_from_cache

    c = COMPONENTS[TRANSFORMER_COMPONENT[kind]]
    cache_dir = cache_dir_for(model_set, hf_home)
    try:
        found = try_to_load_from_cache(c.repo_id, "config.json", cache_dir=str(cache_dir) if cache_dir else None)
        if not isinstance(found, str):  # None (not cached) or the "known to be missing" sentinel
            return None
        config = json.loads(Path(found).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None
