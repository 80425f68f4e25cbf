"""TeaCache on the tiny Original transformer against the golden `original_teacache` case, section by section."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modules.framepack.cache import TeaCache, make_step_cache
from modules.framepack.params import CacheType, GenerationParams
from modules.framepack.sampler import flow_sigmas, make_denoiser, unipc_sample
from tests.caches.harness import GS, run_section, section_inputs

SECTIONS = 5


@pytest.mark.parametrize("k", range(SECTIONS))
def test_golden_teacache_section(tiny_original, golden_teacache, teacache_case_json, k):
    """Each section: same skip pattern, same rel_l1 / poly / accumulator values, same latents."""
    cache = TeaCache(0.15)
    cache.start_section(4)
    with cache.attach(tiny_original):
        out = run_section(tiny_original, golden_teacache, k)
    expected = golden_teacache[f"section{k:02d}.teacache_computed"].bool().tolist()
    assert cache.computed_log == [expected]
    assert cache.skipped_steps == expected.count(False) == 1
    torch.testing.assert_close(out, golden_teacache[f"section{k:02d}.generated_latents"], atol=1e-4, rtol=0)

    ref_steps = teacache_case_json["derived"]["sections"][k]["teacache"]
    assert [t.step for t in cache.trace[0]] == [s["step"] for s in ref_steps]
    for got, ref in zip(cache.trace[0], ref_steps):
        assert got.computed == ref["computed"]
        for ours, theirs in ((got.rel_l1, ref["rel_l1"]), (got.poly_rel_l1, ref["poly_rel_l1"])):
            assert (ours is None) == (theirs is None)
            if theirs is not None:
                assert ours == pytest.approx(theirs, abs=1e-5)
        assert got.accumulated == pytest.approx(ref["accumulated_after"], abs=1e-5)


def test_uncached_run_differs_from_cached_golden(tiny_original, golden_teacache, golden_plain):
    """Guard against a vacuous pass: without the cache the cached golden latents are not reproduced."""
    out = run_section(tiny_original, golden_teacache, 0)
    torch.testing.assert_close(out, golden_plain["section00.generated_latents"], atol=1e-4, rtol=0)
    assert (out - golden_teacache["section00.generated_latents"]).abs().max() > 0.05


def _count_block_calls(model: nn.Module) -> tuple[list[int], list]:
    counter = [0]
    blocks = list(model.transformer_blocks) + list(model.single_transformer_blocks)
    handles = [b.register_forward_hook(lambda *a: counter.__setitem__(0, counter[0] + 1)) for b in blocks]
    return counter, handles


def test_skipped_step_runs_no_block_and_attach_restores(tiny_original, golden_teacache):
    model = tiny_original
    dual, single = model.transformer_blocks, model.single_transformer_blocks
    keys = list(model.state_dict().keys())
    n_blocks = len(dual) + len(single)
    counter, handles = _count_block_calls(model)
    per_step: list[int] = []
    cache = TeaCache(0.15)
    cache.start_section(4)
    try:
        with cache.attach(model):
            assert list(model.state_dict().keys()) == keys  # same modules, same names
            assert [type(b) for b in model.transformer_blocks] == [type(b) for b in dual]  # plain iteration
            inputs = section_inputs(golden_teacache, 0)

            def denoise(x, sigma):
                before = counter[0]
                v = model(hidden_states=x, timestep=sigma * 1000, guidance=torch.tensor([GS * 1000.0]),
                          return_dict=False, **inputs)[0]
                per_step.append(counter[0] - before)
                return x - v * sigma

            with torch.no_grad():
                unipc_sample(denoise, golden_teacache["section00.noise"], golden_teacache["sigmas"])
    finally:
        for h in handles:
            h.remove()
    assert per_step == [n_blocks, 0, n_blocks, n_blocks]
    assert model.transformer_blocks is dual and model.single_transformer_blocks is single


def test_attach_twice_is_refused_and_exception_restores(tiny_original):
    dual = tiny_original.transformer_blocks
    a, b = TeaCache(0.15), TeaCache(0.15)
    with pytest.raises(RuntimeError):
        with a.attach(tiny_original):
            with b.attach(tiny_original):
                pass
    assert tiny_original.transformer_blocks is dual
    with pytest.raises(ValueError):
        with a.attach(tiny_original):
            raise ValueError("boom")
    assert tiny_original.transformer_blocks is dual


def test_cfg_passes_keep_separate_state_and_skip_together(tiny_original, golden_teacache):
    """Real CFG: two calls per step (positive then negative); one decision and one log entry per step."""
    model = tiny_original
    inputs = section_inputs(golden_teacache, 0)
    negative = dict(inputs, encoder_hidden_states=torch.zeros_like(inputs["encoder_hidden_states"]),
                    pooled_projections=torch.zeros_like(inputs["pooled_projections"]))
    guidance = torch.tensor([GS * 1000.0])
    n_blocks = len(model.transformer_blocks) + len(model.single_transformer_blocks)
    counter, handles = _count_block_calls(model)
    calls: list[tuple[bool, int]] = []

    def velocity(x, sigma, positive):
        before = counter[0]
        v = model(hidden_states=x, timestep=sigma * 1000, guidance=guidance, return_dict=False,
                  **(inputs if positive else negative))[0]
        calls.append((positive, counter[0] - before))
        return v

    cache = make_step_cache(GenerationParams(cache_type=CacheType.TEACACHE, teacache_threshold=0.15, cfg=2.0))
    steps = 6
    sigmas = flow_sigmas(steps, 48)
    cache.start_section(steps)
    try:
        with cache.attach(model), torch.no_grad():
            unipc_sample(make_denoiser(velocity, 2.0, 0.0), golden_teacache["section00.noise"], sigmas)
    finally:
        for h in handles:
            h.remove()
    log = cache.computed_log[0]
    assert len(log) == steps and len(calls) == 2 * steps
    assert log[0] and log[-1] and not all(log)  # some step skipped, first and last computed
    for i, computed in enumerate(log):
        (pos_a, n_a), (pos_b, n_b) = calls[2 * i], calls[2 * i + 1]
        assert pos_a and not pos_b
        assert n_a == n_b == (n_blocks if computed else 0)
    # separate state: each pass has its own residual and its own modulated-input history
    assert set(cache._passes) == {0, 1}
    r0, r1 = cache._passes[0].residual, cache._passes[1].residual
    assert r0 is not None and r1 is not None and not torch.equal(r0, r1)


def test_make_step_cache_none_and_defaults():
    assert make_step_cache(GenerationParams(cache_type=CacheType.NONE)) is None
    cache = make_step_cache(GenerationParams(cache_type=CacheType.TEACACHE))
    assert isinstance(cache, TeaCache)
    assert cache.rel_l1_thresh == GenerationParams.model_fields["teacache_threshold"].default
    assert make_step_cache(GenerationParams(cache_type=CacheType.TEACACHE, teacache_threshold=0.3)).rel_l1_thresh == 0.3


def test_sampler_without_start_section_is_an_error(tiny_original, golden_teacache):
    cache = TeaCache(0.15)
    with cache.attach(tiny_original), pytest.raises(RuntimeError, match="start_section"):
        run_section(tiny_original, golden_teacache, 0)


def test_log_spans_sections_and_threshold_zero_never_skips(tiny_original, golden_teacache):
    cache = TeaCache(0.0)
    for k in range(2):
        cache.start_section(4)
        with cache.attach(tiny_original):
            run_section(tiny_original, golden_teacache, k)
    assert cache.computed_log == [[True] * 4, [True] * 4]
    assert cache.skipped_steps == 0 and cache.total_steps == 8
    assert cache.summary()["computed"] == [[1] * 4, [1] * 4]
