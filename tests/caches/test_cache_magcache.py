"""MagCache decisions, ratio tables and the residual recorder on the tiny Original transformer."""

from __future__ import annotations

import json
import math

import pytest
import torch

from modules.framepack.cache import (RATIOS_FILE, MagCache, MagnitudeRecorder, load_magcache_ratios,
                                     make_step_cache, resample_ratios)
from modules.framepack.params import CacheType, GenerationParams
from modules.framepack.sampler import flow_sigmas, unipc_sample
from modules.models.registry import TransformerKind
from tests.caches.harness import make_denoise, section_inputs


def _run(model, g, cache, steps: int, k: int = 0) -> torch.Tensor:
    cache.start_section(steps)
    with cache.attach(model), torch.no_grad():
        return unipc_sample(make_denoise(model, section_inputs(g, k)), g[f"section{k:02d}.noise"],
                            flow_sigmas(steps, 48))


def test_magcache_rule_by_hand(tiny_original, golden_plain):
    # retention int(0.2*6)=1 keeps step 0; step 1: |1-1.3| = 0.3 > 0.1 -> compute (reset);
    # step 2: err 0.01 -> skip; step 3: ratio 1.0302, err 0.0402, 2 skips -> skip;
    # step 4: 3rd consecutive skip > K=2 -> compute; step 5: last -> compute.
    ratios = [1.0, 1.3, 1.01, 1.02, 1.0, 0.8]
    cache = MagCache(ratios, threshold=0.1, max_consecutive_skips=2, retention_ratio=0.2)
    out = _run(tiny_original, golden_plain, cache, 6)
    assert cache.computed_log == [[True, True, False, False, True, True]]
    assert cache.skipped_steps == 2
    assert [t.mag_ratio for t in cache.trace[0]] == ratios
    assert cache.trace[0][3].accumulated == pytest.approx(0.01 + (1.01 * 1.02 - 1))
    assert torch.isfinite(out).all()


def test_magcache_retention_threshold_and_step_guard(tiny_original, golden_plain):
    flat = [1.0] + [1.01] * 7
    # retention 0.5 of 8 steps keeps steps 0..3 computed
    c1 = MagCache(flat, threshold=1.0, max_consecutive_skips=10, retention_ratio=0.5)
    _run(tiny_original, golden_plain, c1, 8)
    assert c1.computed_log[0][:4] == [True] * 4 and c1.computed_log[0][4:7] == [False] * 3
    assert c1.computed_log[0][7] is True  # last step always computed
    # threshold 0 never skips
    c2 = MagCache(flat, threshold=0.0, max_consecutive_skips=10, retention_ratio=0.0)
    _run(tiny_original, golden_plain, c2, 8)
    assert c2.skipped_steps == 0
    # a step whose own ratio deviates by more than 0.06 is computed even under a huge threshold
    c3 = MagCache([1.0, 1.0, 1.1, 1.0, 1.0], threshold=10.0, max_consecutive_skips=10, retention_ratio=0.0)
    _run(tiny_original, golden_plain, c3, 5)
    assert c3.computed_log == [[True, False, True, False, True]]


def test_magcache_skip_reuses_residual(tiny_original, golden_plain):
    """A skipped call's block-stack output is its input plus the stored residual. The packed image tokens do
    not depend on the timestep, so with the same x the skipped call must reproduce the computed call's
    block output (seen at norm_out's input), while a real computation at the new timestep differs."""
    model = tiny_original
    seen: list[torch.Tensor] = []
    hook = model.norm_out.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    cache = MagCache([1.0, 1.0, 1.0], threshold=1.0, max_consecutive_skips=1, retention_ratio=0.0)
    cache.start_section(3)
    x = golden_plain["section00.noise"]
    kwargs = dict(guidance=torch.tensor([10000.0]), return_dict=False, **section_inputs(golden_plain, 0))
    try:
        with torch.no_grad():
            with cache.attach(model):
                model(hidden_states=x, timestep=torch.tensor([1000.0]), **kwargs)
                model(hidden_states=x, timestep=torch.tensor([900.0]), **kwargs)  # skipped
            model(hidden_states=x, timestep=torch.tensor([900.0]), **kwargs)  # computed, no cache
    finally:
        hook.remove()
    assert cache.computed_log == [[True, False]]
    torch.testing.assert_close(seen[1], seen[0], atol=1e-5, rtol=0)
    assert (seen[2] - seen[0]).abs().max() > 1e-3


def test_ratio_tables_in_data_file():
    data = json.loads(RATIOS_FILE.read_text())
    assert data["source"] and "FramePack-Studio" in data["source"]
    assert set(data["models"]) == {k.value for k in TransformerKind}
    for kind, tables in data["models"].items():
        for steps, table in tables.items():
            assert len(table) == int(steps) and table[0] == 1.0
            assert all(0.5 < r < 2.0 for r in table)
    assert data["models"]["original"]["25"] != data["models"]["f1"]["25"]


def test_resample_ratios():
    table = [1.0, 1.2, 1.1, 0.9, 0.8]
    assert resample_ratios(table, 5) == table
    two = resample_ratios(table, 2)
    assert two[0] == 1.0 and two[1] == pytest.approx(math.prod(table))  # magnitude end-to-end preserved
    three = resample_ratios(table, 3)
    assert three[1] == pytest.approx(1.2 * 1.1) and three[2] == pytest.approx(0.9 * 0.8)
    up = resample_ratios(table, 9)
    assert len(up) == 9 and math.prod(up) == pytest.approx(math.prod(table))
    assert resample_ratios(table, 1) == [1.0]


def test_load_ratios_picks_nearest_table_and_make_step_cache_uses_model_kind():
    assert load_magcache_ratios(TransformerKind.ORIGINAL, 25) == \
        json.loads(RATIOS_FILE.read_text())["models"]["original"]["25"]
    assert len(load_magcache_ratios("f1", 30)) == 30
    with pytest.raises(KeyError):
        load_magcache_ratios("nope", 25)
    p = GenerationParams(cache_type=CacheType.MAGCACHE, steps=25, magcache_threshold=0.2,
                         magcache_max_consecutive_skips=3, magcache_retention_ratio=0.3)
    cache = make_step_cache(p)
    assert isinstance(cache, MagCache)
    assert (cache.threshold, cache.max_consecutive_skips, cache.retention_ratio) == (0.2, 3, 0.3)
    cache.start_section(25)
    assert cache.ratios == load_magcache_ratios(TransformerKind.ORIGINAL, 25)
    f1 = make_step_cache(p.model_copy(update={"generation_type": "F1"}))
    f1.start_section(25)
    assert f1.ratios == load_magcache_ratios(TransformerKind.F1, 25) != cache.ratios
    custom = make_step_cache(p, ratios=[1.0, 1.0, 1.0, 1.0])
    custom.start_section(4)
    assert custom.ratios == [1.0, 1.0, 1.0, 1.0]


def test_recorder_measures_residual_norm_ratio(tiny_original, golden_plain):
    """The recorder's ratio equals one computed independently from block hooks (input of block 0, output of
    the last single block), and it never changes the result."""
    model = tiny_original
    captured_in, captured_out = [], []
    h1 = model.transformer_blocks[0].register_forward_pre_hook(lambda m, a: captured_in.append(a[0].clone()))
    h2 = model.single_transformer_blocks[-1].register_forward_hook(lambda m, a, o: captured_out.append(o[0]))
    rec = MagnitudeRecorder(num_steps=4)  # no start_section: sections roll over every 4 steps
    try:
        with rec.attach(model), torch.no_grad():
            outs = [unipc_sample(make_denoise(model, section_inputs(golden_plain, k)),
                                 golden_plain[f"section{k:02d}.noise"], golden_plain["sigmas"]) for k in range(2)]
    finally:
        h1.remove()
        h2.remove()
    for k in range(2):
        torch.testing.assert_close(outs[k], golden_plain[f"section{k:02d}.generated_latents"], atol=1e-4, rtol=0)
    assert rec.computed_log == [[True] * 4] * 2 and rec.skipped_steps == 0
    res = [o - i for i, o in zip(captured_in, captured_out)]
    expected = [[1.0] + [(res[s * 4 + t].norm(dim=-1) / res[s * 4 + t - 1].norm(dim=-1)).mean().item()
                         for t in range(1, 4)] for s in range(2)]
    for got, exp in zip(rec.ratio_log, expected):
        assert got == pytest.approx(exp, rel=1e-6)
    mean = rec.mean_ratios()
    assert mean == pytest.approx([(a + b) / 2 for a, b in zip(*expected)], rel=1e-6)
