"""Build the tiny, random-initialised Qwen3-VL captioner stand-ins in modules/models/tiny_hub/.

What it builds: for each of ``Qwen/Qwen3-VL-2B-Instruct`` and ``Qwen/Qwen3-VL-4B-Instruct`` a
Hugging Face hub-cache folder (``models--Qwen--Qwen3-VL-*/refs/main`` + ``snapshots/<hex>/``, plain
files, the same layout as the other tiny_hub folders) holding:

- ``config.json``: a tiny ``Qwen3VLConfig`` (2 text layers of width 64, a 2-block vision tower of
  width 32) that keeps the real patch_size=16, temporal_patch_size=2 and spatial_merge_size=2, so
  the processor math (smart_resize, patchify, token counts, timestamps) is the real one;
- ``model.safetensors``: random weights drawn from a fixed seed;
- ``tokenizer.json`` / ``tokenizer_config.json``: a word-level tokenizer (about 300 plain English
  words for describing video plus the Qwen chat special tokens) built with ``tokenizers``;
- ``chat_template.jinja``: a Qwen-format chat template (system/user/assistant turns, image and
  video placeholders, ``add_generation_prompt``);
- the image/video processor configs written by ``Qwen3VLProcessor.save_pretrained`` and a
  ``generation_config.json``.

Why: tests and ``--models tiny`` must run the captioner code path (snapshot_download with
local_files_only, AutoProcessor, AutoModelForImageTextToText, generate, decode) on a CPU in
seconds, without downloading the multi-GB real weights.

The rows of the output projection that belong to special tokens are zeroed, so their logits are
exactly 0 while the word logits are random; the greedy argmax is therefore always a word and the
decoded caption is never empty (it also means generation runs to ``max_new_tokens``).

The build is deterministic: running it twice produces byte-identical files.

Usage: .venv/bin/python scripts/make_tiny_captioner.py [--out modules/models/tiny_hub]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast, Qwen3VLConfig, Qwen3VLProcessor

logger = logging.getLogger("make_tiny_captioner")

REPO_IDS: tuple[str, ...] = ("Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-4B-Instruct")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "modules" / "models" / "tiny_hub"
SEED = 1234
STD = 0.1  # text-model matrices and lm_head (0.02 makes the caption ignore the pixels)
STD_EMBED = 1.0  # token embeddings
STD_VISUAL = 0.1  # vision tower, mergers included
BUILD_TAG = "fp-studio-tiny-captioner-v1"  # part of the snapshot hash; bump when the contents change

# Qwen chat special tokens, first in the vocabulary (ids 0..6).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Plain words. The prompt/template words come first so the chat prompt tokenises without unknowns
# (the whitespace pre-tokenizer also splits "<0.5 seconds>" video timestamps into "<", "0", ".",
# "5", "seconds", ">").
WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        """
        system user assistant you are helpful describe this video image picture clip frame frames
        in detail briefly what is happening seconds caption write one sentence short
        the a an and of to on with at by from into over under near its their his her
        is are was were be being has have it they he she there here while as then
        . , ! ? : ; ' " - ( ) < > / 0 1 2 3 4 5 6 7 8 9
        man woman person people child children boy girl dog cat bird horse car bus train bicycle
        boat plane crowd group couple dancer runner player team animal fish tree trees flower
        flowers grass water river lake sea ocean wave waves sky cloud clouds sun moon light
        shadow snow rain fire smoke road street city building house room kitchen table chair
        window door wall floor field forest mountain hill beach sand desert bridge park garden
        stage camera screen ball hand hands face hair eyes dress shirt hat coat
        walks walking runs running jumps jumping dances dancing sits sitting stands standing
        moves moving turns turning looks looking smiles smiling talks talking holds holding
        rides riding drives driving flies flying swims swimming falls falling rises rising
        spins spinning waves waving plays playing throws throwing catches catching climbs
        climbing opens opening closes closing pours pouring flows flowing drifts drifting
        glows glowing shines shining sways swaying rotates zooms pans tilts follows approaches
        enters leaves crosses passes slowly quickly gently smoothly suddenly steadily
        red orange yellow green blue purple pink white black gray brown golden silver
        bright dark dim warm cold soft sharp blurry calm busy quiet loud empty crowded
        small large big tiny tall long wide old young new beautiful colorful cinematic
        sunny cloudy rainy snowy foggy misty night day morning evening sunset sunrise
        indoor outdoor background foreground left right center top bottom front behind
        close up wide shot scene view camera motion slow fast steady handheld aerial
        """.split()
    )
)

CHAT_TEMPLATE = """{%- set ns = namespace(img=0, vid=0) -%}
{%- if messages[0]['role'] != 'system' -%}
<|im_start|>system
You are a helpful assistant.<|im_end|>
{% endif -%}
{%- for message in messages -%}
<|im_start|>{{ message['role'] }}
{% if message['content'] is string -%}
{{ message['content'] }}
{%- else -%}
{%- for item in message['content'] -%}
{%- if item['type'] == 'image' or 'image' in item or 'image_url' in item -%}
{%- set ns.img = ns.img + 1 -%}
<|vision_start|><|image_pad|><|vision_end|>
{%- elif item['type'] == 'video' or 'video' in item -%}
{%- set ns.vid = ns.vid + 1 -%}
<|vision_start|><|video_pad|><|vision_end|>
{%- elif item['type'] == 'text' -%}
{{ item['text'] }}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""


def tiny_config(vocab_size: int, ids: dict[str, int]) -> Qwen3VLConfig:
    """A tiny Qwen3VLConfig; vision geometry (patch 16, temporal 2, merge 2) equals the real one."""
    from transformers import Qwen3VLConfig

    text_config = {
        "model_type": "qwen3_vl_text",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "initializer_range": 0.02,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        # mrope_section sums to head_dim // 2 (real model: [24, 20, 20] for head_dim 128)
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": [4, 2, 2],
            "mrope_interleaved": True,
        },
    }
    vision_config = {
        "model_type": "qwen3_vl_vision",
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "in_channels": 3,
        "patch_size": 16,
        "temporal_patch_size": 2,
        "spatial_merge_size": 2,
        "out_hidden_size": 64,
        "num_position_embeddings": 256,  # a 16x16 grid, interpolated like the real 48x48 one
        "deepstack_visual_indexes": [1],  # real 2B: [5, 11, 17] of 24 blocks
        "hidden_act": "gelu_pytorch_tanh",
        "initializer_range": 0.02,
    }
    return Qwen3VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer: specials at ids 0..6, then WORDS; decode joins words with spaces.

    Saved as the generic fast tokenizer (tokenizer_class "TokenizersBackend"), not Qwen2Tokenizer:
    in transformers 5 Qwen2Tokenizer rebuilds its own byte-level BPE pipeline on load, which would
    not keep a word-level model. AutoTokenizer/AutoProcessor load the generic class from
    tokenizer_config.json without trust_remote_code.
    """
    from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    backend.normalizer = normalizers.Lowercase()  # special tokens are added un-normalized
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
        padding_side="left",  # batched generation pads on the left
        clean_up_tokenization_spaces=False,
    )
    return tok


def build_processor(tokenizer: PreTrainedTokenizerFast) -> Qwen3VLProcessor:
    """Processor with the real Qwen3-VL image/video processor settings."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    common = {
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": 65536, "longest_edge": 16777216}, **common)
    video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": 25165824}, **common)
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def init_weights(model: torch.nn.Module, seed: int, special_ids: list[int]) -> None:
    """Deterministic init independent of the library's own init (drawn in sorted-name order from one
    generator): N(0, STD) matrices (larger than the usual 0.02 so attention actually mixes the context and the caption depends on the pixels), ones for norms, zeros for biases. Token embeddings get N(0, 1)
    and the vision tower a larger std so image/video features are not drowned by the text and the
    caption depends on the pixels. The special-token rows of lm_head are zeroed so a word always
    wins the greedy argmax (the caption is never empty)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if param.dim() == 1:
                param.copy_(torch.ones_like(param) if "norm" in name else torch.zeros_like(param))
            else:
                std = STD_EMBED if name.endswith("embed_tokens.weight") else STD_VISUAL if ".visual." in f".{name}" else STD
                param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32) * std)
        model.lm_head.weight[special_ids] = 0.0


def snapshot_hash(repo_id: str) -> str:
    return hashlib.sha1(f"{BUILD_TAG}:{repo_id}".encode()).hexdigest()


def write_repo(out_dir: Path, repo_id: str, staging: Path) -> Path:
    """Copy the staged files into <out>/models--org--name/snapshots/<hex>/ with refs/main."""
    repo_dir = out_dir / ("models--" + repo_id.replace("/", "--"))
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    rev = snapshot_hash(repo_id)
    snap = repo_dir / "snapshots" / rev
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(rev)  # no trailing newline, like the other tiny repos
    for src in sorted(staging.iterdir()):
        shutil.copyfile(src, snap / src.name)
    return snap


def build(out_dir: Path) -> list[Path]:
    from transformers import GenerationConfig, Qwen3VLForConditionalGeneration

    torch.manual_seed(SEED)
    tokenizer = build_tokenizer()
    vocab = tokenizer.get_vocab()
    ids = {t: vocab[t] for t in SPECIAL_TOKENS}
    config = tiny_config(len(vocab), ids)
    model = Qwen3VLForConditionalGeneration(config).eval()
    init_weights(model, SEED, list(ids.values()))
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("vocab %d tokens, model %d parameters", len(vocab), n_params)

    processor = build_processor(tokenizer)
    generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        do_sample=False,
        max_new_tokens=64,
    )

    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        generation_config.save_pretrained(staging)
        for repo_id in REPO_IDS:
            snap = write_repo(out_dir, repo_id, staging)
            size = sum(p.stat().st_size for p in snap.iterdir())
            logger.info("%s -> %s (%d files, %.1f KiB)", repo_id, snap, len(list(snap.iterdir())), size / 1024)
            written.append(snap)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="hub cache dir (default: tiny_hub)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    build(args.out)


if __name__ == "__main__":
    main()
