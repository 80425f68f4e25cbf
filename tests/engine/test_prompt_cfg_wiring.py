"""The engine feeds the transformer what the parameters say: per-section timestamped-prompt embeddings, and
with real CFG (cfg > 1) a second, unconditional pass per step carrying the encoded negative prompt."""

from __future__ import annotations

import torch

from modules.framepack import conditioning as cond
from modules.framepack.events import StageEvent

from engine_helpers import golden_params, output_options, run_engine


def _record_calls(transformer):
    """Forward pre-hook collecting (encoder_hidden_states, pooled_projections) of every transformer call."""
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_module, _args, kwargs):
        calls.append((kwargs["encoder_hidden_states"].detach().clone(),
                      kwargs["pooled_projections"].detach().clone()))

    return calls, transformer.register_forward_pre_hook(hook, with_kwargs=True)


def test_timestamped_prompts_and_negative_prompt_reach_the_transformer(tiny_manager, golden_dir, tmp_path):
    steps = 2
    # 1 s at latent window 3 -> 2 sections (starting at 0 and 0.4 s); blend 0 = hard switch at the covering section.
    params = golden_params(golden_dir, "original", total_seconds=1.0, steps=steps,
                           prompt="[0s: a red fox runs] [0.4s: a blue bird flies]", blend_sections=0,
                           cfg=2.0, negative_prompt="blurry, low quality")
    transformer = tiny_manager.transformer(params.transformer_kind)
    calls, handle = _record_calls(transformer)
    try:
        trace, events = run_engine(tiny_manager, params, output_options(tmp_path), trace=True)
    finally:
        handle.remove()
    prep = trace["prepared"]
    assert len(prep.prompt_embs) == 2 and prep.section_weights == [{0: 1.0}, {1: 1.0}]

    # Two passes (positive, negative) per step, every section.
    assert len(calls) == 2 * steps * 2
    m = tiny_manager.shared()
    negative = cond.encode_prompt("blurry, low quality", m.tokenizer, m.text_encoder, m.tokenizer_2,
                                  m.text_encoder_2, params.system_prompt)
    empty = cond.encode_prompt("", m.tokenizer, m.text_encoder, m.tokenizer_2, m.text_encoder_2,
                               params.system_prompt)
    assert not torch.allclose(negative.llama_vec, empty.llama_vec)
    for vec, pooled in calls[1::2]:
        assert torch.equal(vec, negative.llama_vec) and torch.equal(pooled, negative.clip_pooled)

    # The Original model generates the last video section first: its prompt is the [0.4s] one.
    positive = calls[0::2]
    first_gen, second_gen = positive[:steps], positive[steps:]
    assert all(torch.equal(v, prep.prompt_embs[1].llama_vec) for v, _ in first_gen)
    assert all(torch.equal(v, prep.prompt_embs[0].llama_vec) for v, _ in second_gen)
    assert not torch.allclose(first_gen[0][0], second_gen[0][0])
    assert events[-1].result.frames == 25
    assert any("bucket 64x64" in e.message for e in events if isinstance(e, StageEvent))  # bucket reported


def test_cfg_one_runs_a_single_pass(tiny_manager, golden_dir, tmp_path):
    params = golden_params(golden_dir, "original", total_seconds=1.0, steps=2, negative_prompt="ignored at cfg 1")
    calls, handle = _record_calls(tiny_manager.transformer(params.transformer_kind))
    try:
        trace, events = run_engine(tiny_manager, params, output_options(tmp_path, metadata_dir=tmp_path / "meta"),
                                    trace=True)
    finally:
        handle.remove()
    assert len(calls) == 2 * 2 and trace["prepared"].negative is None
    # The sidecar goes to the metadata directory when one is set (default: beside the video).
    result = events[-1].result
    assert result.metadata == tmp_path / "meta" / (result.video.stem + ".json") and result.metadata.is_file()
    assert not result.video.with_suffix(".json").exists()
