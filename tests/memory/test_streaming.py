"""Block streaming on CPU: identical transformer outputs for every placement, from all resident to one block
at a time, on the tiny golden transformer and on a deeper random one."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from modules.memory import BlockStreamer, MemoryPolicy, describe_transformer, place_transformer, plan_residency
from modules.memory.planner import ResidencyPlan
from modules.memory.policy import plan_for_transformer
from modules.memory.streaming import transformer_blocks
from tests.memory.conftest import golden_forward_kwargs


def _forward(model, kwargs):
    with torch.no_grad():
        return model(**kwargs)[0]


def _all_plans(model, limit: int = 10) -> list[ResidencyPlan]:
    """Distinct plans the planner produces while free memory shrinks from "all fits" to "nothing fits"
    (at most `limit`, evenly chosen, always including both ends), plus the forced extremes."""
    sizes, fixed = describe_transformer(model)
    found: list[ResidencyPlan] = []
    total = sum(sizes)
    for free in range(fixed + total, fixed - 1, -max(1, min(sizes) // 4)):
        plan = plan_residency(sizes, fixed, free, 0)
        if plan not in found:
            found.append(plan)
    step = max(1, (len(found) - 1) / (limit - 1))
    plans = sorted({found[min(round(i * step), len(found) - 1)] for i in range(limit)} | {found[-1]},
                   key=found.index)
    plans.append(plan_residency(sizes, fixed, 10**12, 0, force_streaming=True))
    plans.append(plan_residency(sizes, fixed, 10**12, 0, force_streaming=True, prefetch=False))
    return plans


def _host_ptrs(streamer: BlockStreamer) -> list[tuple[int, int]]:
    return [(t.data_ptr(), t.data_ptr() + t.numel() * t.element_size())
            for hb in streamer._host for t in hb.flat.values()]


def _within(ptr: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= ptr < b for a, b in ranges)


def test_golden_transformer_identical_for_every_budget(tiny_transformer, golden_dir):
    model = tiny_transformer
    kwargs = golden_forward_kwargs(golden_dir)
    baseline = _forward(model, kwargs)
    # the call is the real one: x0 = x - v * sigma(=1) matches the reference's first model evaluation
    golden = load_file(str(golden_dir / "original.safetensors"))["section00.step_denoised"][0]
    assert torch.allclose(kwargs["hidden_states"] - baseline, golden, atol=1e-4, rtol=0)

    plans = _all_plans(model)
    layouts = {(p.resident, p.slots) for p in plans}
    assert ((True, True), 0) in layouts and ((False, False), 1) in layouts and ((False, False), 2) in layouts
    # with two blocks no budget gives a mixed plan; place each block both ways by hand
    sizes = plans[0].block_bytes
    for resident in ((True, False), (False, True)):
        for slots in (1, 2):
            plans.append(ResidencyPlan(sizes, resident, slots, max(sizes), 0, True))
    for plan in plans:
        with BlockStreamer(model, "cpu", plan) as streamer:
            out = _forward(model, kwargs)
            assert streamer.copies == len(plan.streamed)
        assert torch.equal(out, baseline), plan.summary()
    assert _forward(model, kwargs).equal(baseline)  # detached: back to the plain model


def test_deep_transformer_identical_for_every_budget_with_history(deep_transformer, golden_dir):
    model = deep_transformer
    kwargs = golden_forward_kwargs(golden_dir, history_seed=5)
    baseline = _forward(model, kwargs)
    plans = _all_plans(model)
    mixed = [p for p in plans if 0 < sum(p.resident) < len(p.resident)]
    assert len(mixed) >= 3 and len(plans) >= 6
    for plan in plans:
        with BlockStreamer(model, "cpu", plan) as streamer:
            first, second = _forward(model, kwargs), _forward(model, kwargs)
            assert streamer.copies == 2 * len(plan.streamed)
        assert torch.equal(first, baseline) and torch.equal(second, baseline), plan.summary()


def test_streamed_blocks_run_from_staging_slots_and_return_to_host(deep_transformer, golden_dir):
    model = deep_transformer
    kwargs = golden_forward_kwargs(golden_dir)
    sizes, fixed = describe_transformer(model)
    plan = plan_residency(sizes, fixed, 10**12, 0, force_streaming=True)
    blocks = transformer_blocks(model)
    seen: dict[int, int] = {}
    with BlockStreamer(model, "cpu", plan) as streamer:
        slots = [(t.data_ptr(), t.data_ptr() + t.numel() * t.element_size())
                 for slot in streamer._slots for t in slot.values()]
        hooks = [b.register_forward_pre_hook(
            lambda m, a, i=i: seen.__setitem__(i, next(m.parameters()).data_ptr())) for i, b in enumerate(blocks)]
        try:
            _forward(model, kwargs)
        finally:
            for h in hooks:
                h.remove()
        assert len(streamer._slots) == 2
        assert sorted(seen) == list(range(len(blocks)))
        assert all(_within(p, slots) for p in seen.values())  # each ran on its slot copy
        host = _host_ptrs(streamer)
        assert all(_within(p.data_ptr(), host) for b in blocks for p in b.parameters())  # and went back
    assert not any(b._forward_pre_hooks or b._forward_hooks for b in blocks)


def test_standalone_submodule_call_loads_its_block(tiny_transformer, golden_dir):
    """TeaCache evaluates transformer_blocks[0].norm1 outside the block's forward."""
    model = tiny_transformer
    sizes, fixed = describe_transformer(model)
    plan = plan_residency(sizes, fixed, 10**12, 0, force_streaming=True, prefetch=False)
    block = model.transformer_blocks[0]
    with BlockStreamer(model, "cpu", plan) as streamer:
        slot = streamer._slots[0][torch.float32]
        hidden, temb = torch.randn(1, 4, 20), torch.randn(1, 20)
        with torch.no_grad():
            block.norm1(hidden, emb=temb)
        assert _within(block.norm1.linear.weight.data_ptr(), [(slot.data_ptr(), slot.data_ptr() + slot.numel() * 4)])
        _forward(model, golden_forward_kwargs(golden_dir))  # a new forward releases it
        assert _within(block.norm1.linear.weight.data_ptr(), _host_ptrs(streamer))


def test_streaming_composes_with_teacache(deep_transformer, golden_dir):
    from modules.framepack.cache import TeaCache

    model = deep_transformer
    base_kwargs = golden_forward_kwargs(golden_dir, history_seed=1)
    sigmas = [1.0, 0.97, 0.95, 0.5]

    def run(streamer: BlockStreamer | None):
        cache = TeaCache(0.15)
        cache.start_section(len(sigmas))
        outs = []
        with cache.attach(model):
            for s in sigmas:
                outs.append(_forward(model, {**base_kwargs, "timestep": torch.tensor([s * 1000.0])}))
        if streamer is not None:
            streamer.detach()
        return outs, cache.computed_log

    ref, ref_log = run(None)
    sizes, fixed = describe_transformer(model)
    for plan in (plan_residency(sizes, fixed, 10**12, 0, force_streaming=True, prefetch=False),
                 plan_residency(sizes, fixed, fixed + sum(sizes) // 2, 0)):
        streamer = BlockStreamer(model, "cpu", plan).attach()
        outs, log = run(streamer)
        assert log == ref_log
        assert all(torch.equal(a, b) for a, b in zip(outs, ref))


def test_policy_plans_from_free_memory_and_keeps_an_unchanged_plan(deep_transformer, golden_dir):
    model = deep_transformer
    sizes, fixed = describe_transformer(model)
    roomy = plan_for_transformer(model, "cpu", MemoryPolicy(preserved_gb=0), tokens=10, free_bytes=10**9)
    assert roomy.all_resident
    forced = plan_for_transformer(model, "cpu", MemoryPolicy(preserved_gb=0, force_streaming=True), tokens=10,
                                  free_bytes=10**9)
    assert not any(forced.resident)
    capped = MemoryPolicy(preserved_gb=0, device_cap_gb=(fixed + sum(sizes) * 0.8) / 2**30)
    s1 = place_transformer(model, "cpu", capped, tokens=1)
    try:
        assert 0 < sum(s1.plan.resident) < len(sizes)
        assert place_transformer(model, "cpu", capped, current=s1, tokens=1) is s1  # nothing moves
        out = _forward(model, golden_forward_kwargs(golden_dir))
    finally:
        s1.detach()
    assert torch.equal(out, _forward(model, golden_forward_kwargs(golden_dir)))


def test_two_streamers_of_the_same_weights_share_one_host_copy(golden_dir):
    """Two workers' transformers (two loads of the same weights) under one host_key: the second re-points its
    streamed blocks at the first one's host buffers, and both still give the unstreamed output exactly."""
    import gc

    from modules.memory.streaming import HOST_BLOCKS
    from tests.memory.conftest import build_deep_transformer

    a, b, other = build_deep_transformer(), build_deep_transformer(), build_deep_transformer()
    with torch.no_grad():  # a third load whose first block has other values: that block is never shared
        next(iter(transformer_blocks(other)[0].parameters())).add_(1)
    kwargs = golden_forward_kwargs(golden_dir, history_seed=5)
    baseline, other_baseline = _forward(a, kwargs), _forward(other, kwargs)
    sizes, fixed = describe_transformer(a)
    plan = plan_residency(sizes, fixed, 10**12, 0, force_streaming=True)
    key = ("transformer_original", "tiny", "", "torch.float32", "test_share")
    adopted = HOST_BLOCKS.adopted
    with BlockStreamer(a, "cpu", plan, host_key=key) as sa, BlockStreamer(b, "cpu", plan, host_key=key) as sb, \
            BlockStreamer(other, "cpu", plan, host_key=key) as so:
        # b adopted every block; `other` all but its changed first one, which keeps a copy of its own.
        assert HOST_BLOCKS.adopted - adopted == 2 * len(plan.streamed) - 1
        assert _host_ptrs(sa) == _host_ptrs(sb)
        assert sa._host[0].flat[torch.float32].data_ptr() != so._host[0].flat[torch.float32].data_ptr()
        assert _host_ptrs(sa)[1:] == _host_ptrs(so)[1:]
        for pa, pb in zip(a.parameters(), b.parameters()):
            if _within(pa.data_ptr(), _host_ptrs(sa)):
                assert pa.data_ptr() == pb.data_ptr()  # one copy in RAM, seen by both
        for _ in range(2):  # interleaved, as two workers run
            assert torch.equal(_forward(a, kwargs), baseline) and torch.equal(_forward(b, kwargs), baseline)
        assert torch.equal(_forward(other, kwargs), other_baseline)
    assert torch.equal(_forward(b, kwargs), baseline)  # detached: b keeps the shared buffers as its weights
    del a, b, other, sa, sb, so
    gc.collect()
    assert not any(k[0][0] == key for k in HOST_BLOCKS._copies.keys())  # the copy lives only as long as its users
