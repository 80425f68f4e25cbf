"""Engine-side generation features, tested structurally on the tiny weights (no visual likeness claims)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modules.framepack import conditioning as cond

from engine_helpers import golden_params, output_options, run_engine

SMALL = dict(total_seconds=1.0, latent_window_size=3, steps=2)  # 2 sections of 3 latents


def _last_section(trace, n=2):
    return trace[f"section{n - 1:02d}.clean_inputs"]


def test_f1_end_frame_in_final_section(tiny_manager, golden_dir, tmp_path):
    base = golden_params(golden_dir, "f1", **SMALL)
    with_end = golden_params(golden_dir, "f1", **SMALL, end_image=golden_dir / "end_image_64x64.png",
                             end_frame_strength=0.5)
    t0, _ = run_engine(tiny_manager, base, output_options(tmp_path / "a"), trace=True)
    t1, ev1 = run_engine(tiny_manager, with_end, output_options(tmp_path / "b"), trace=True)
    end_latent = t1["prepared"].end_latent
    first, last = t1["section00.clean_inputs"], _last_section(t1)
    # Only the final section carries it, as a third 1x clean latent one frame past the window.
    assert first.clean.shape[2] == 2 and last.clean.shape[2] == 3
    assert torch.equal(last.clean[:, :, 2:3], end_latent * 0.5)
    assert last.indices.clean.tolist() == [0, 19, int(last.indices.latent[-1]) + 1]
    assert torch.equal(t0["section00.generated_latents"], t1["section00.generated_latents"])
    diff = (t0["section01.generated_latents"] - t1["section01.generated_latents"]).abs().max()
    assert diff > 1e-3
    assert ev1[-1].result.frames == 25


def test_original_keyframe_replaces_post_anchor(tiny_manager, golden_dir, tmp_path):
    # 0.5 s lies in the second video-time section (0.4-0.8 s), which the Original model generates first.
    kf = golden_params(golden_dir, "original", **SMALL,
                       keyframes=[{"image": str(golden_dir / "end_image_64x64.png"), "seconds": 0.5}])
    t1, _ = run_engine(tiny_manager, kf, output_options(tmp_path / "kf"), trace=True)
    key_latent = t1["prepared"].keyframe_latents[1]
    s0, s1 = t1["section00.clean_inputs"], t1["section01.clean_inputs"]
    assert torch.equal(s0.clean[:, :, 1:2], key_latent)  # post slot (index latent[-1] + 1)
    assert int(s0.indices.clean[1]) == int(s0.indices.latent[-1]) + 1
    assert not torch.equal(s1.clean[:, :, 1:2], key_latent)  # the other section is untouched
    golden = load_file(str(golden_dir / "original_endframe.safetensors"))
    assert (key_latent - golden["end_latent"]).abs().max() < 1e-5  # same image -> same latent
    t0, _ = run_engine(tiny_manager, golden_params(golden_dir, "original", **SMALL),
                       output_options(tmp_path / "base"), trace=True)
    assert (t0["section00.generated_latents"] - t1["section00.generated_latents"]).abs().max() > 1e-3


def test_end_frame_strength_scales_history_slot(tiny_manager, golden_dir, tmp_path):
    p = golden_params(golden_dir, "original_endframe", **SMALL, end_frame_strength=0.25)
    t, _ = run_engine(tiny_manager, p, output_options(tmp_path), trace=True)
    s0 = t["section00.clean_inputs"]
    assert torch.allclose(s0.clean[:, :, 1:2], t["prepared"].end_latent * 0.25)


@pytest.mark.parametrize("kind,mean", [("Black", 0), ("White", 255), ("Green Screen", (0 + 177 + 64) / 3)])
def test_latent_images(kind, mean):
    from modules.framepack.params import LatentImage
    img = cond.latent_image(LatentImage(kind), 64, 96, seed=1)
    assert img.shape == (64, 96, 3) and img.dtype == np.uint8 and img.mean() == pytest.approx(mean)
    noise = cond.latent_image(LatentImage.NOISE, 64, 96, seed=1)
    assert noise.std() > 50 and np.array_equal(noise, cond.latent_image(LatentImage.NOISE, 64, 96, seed=1))


def test_template_is_a_parameter(tiny_manager):
    m = tiny_manager.shared()
    default = cond.encode_prompt("a cat", m.tokenizer, m.text_encoder, m.tokenizer_2, m.text_encoder_2)
    assert cond.template_crop_start(m.tokenizer, cond.DEFAULT_TEMPLATE) == 95
    custom_t = "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    custom = cond.encode_prompt("a cat", m.tokenizer, m.text_encoder, m.tokenizer_2, m.text_encoder_2, custom_t)
    crop = cond.template_crop_start(m.tokenizer, custom_t)
    assert crop < 95
    # Same prompt tokens after the crop (the same count of valid tokens), different context -> different vectors.
    assert int(custom.llama_mask.sum()) == int(default.llama_mask.sum())
    assert not torch.allclose(custom.llama_vec, default.llama_vec)
    assert torch.equal(custom.clip_pooled, default.clip_pooled)  # CLIP never sees the template


def test_f1_keyframe_appended_in_its_section(tiny_manager, golden_dir, tmp_path):
    # F1 generates in video order: 0.5 s lies in section 1 (0.4-0.8 s); section 0 keeps the plain layout.
    kf = golden_params(golden_dir, "f1", **SMALL,
                       keyframes=[{"image": str(golden_dir / "end_image_64x64.png"), "seconds": 0.5}])
    t1, _ = run_engine(tiny_manager, kf, output_options(tmp_path / "kf"), trace=True)
    key_latent = t1["prepared"].keyframe_latents[1]
    s0, s1 = t1["section00.clean_inputs"], t1["section01.clean_inputs"]
    assert s0.clean.shape[2] == 2 and s1.clean.shape[2] == 3
    assert torch.equal(s1.clean[:, :, 2:3], key_latent)
    assert int(s1.indices.clean[2]) == int(s1.indices.latent[-1]) + 1
    t0, _ = run_engine(tiny_manager, golden_params(golden_dir, "f1", **SMALL), output_options(tmp_path / "base"),
                       trace=True)
    assert torch.equal(t0["section00.generated_latents"], t1["section00.generated_latents"])
    assert (t0["section01.generated_latents"] - t1["section01.generated_latents"]).abs().max() > 1e-3
