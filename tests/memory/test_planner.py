"""Residency planner: hand-computed budgets and invariants (pure function, no torch)."""

from __future__ import annotations

import pytest

from modules.memory.planner import GIB, estimate_activation_bytes, plan_residency

MIB = 2**20


def test_everything_fits_is_all_resident_without_slots():
    # budget = 60 - 3 - max(0, 5) = 52 >= 50 total
    plan = plan_residency([10, 10, 10, 5, 5, 5, 5], fixed_bytes=3, free_bytes=60, preserved_gb=0, activation_bytes=5)
    assert plan.all_resident and plan.slots == 0 and plan.streamed == ()
    assert plan.budget_bytes == 52 and plan.device_bytes == 50 and plan.fits
    assert plan.summary()["mode"] == "resident"


def test_small_blocks_stream_first_when_that_keeps_more_resident():
    # budget 50 - 3 - 5 = 42. Slot size 5: 42 - 2*5 = 32 -> the three 10s (30) resident, no 5 fits.
    # Slot size 10: 42 - 20 = 22 -> two 10s resident (20). 30 > 20, so the 5s stream.
    plan = plan_residency([10, 10, 10, 5, 5, 5, 5], 3, 50, 0, 5)
    assert plan.resident == (True, True, True, False, False, False, False)
    assert plan.slots == 2 and plan.slot_bytes == 5 and plan.prefetch
    assert plan.resident_bytes == 30 and plan.streamed_bytes == 20 and plan.device_bytes == 40 <= plan.budget_bytes


def test_real_model_on_a_24gb_card_with_6gb_preserved():
    # 20 dual blocks of 680 MiB, 40 single of 283 MiB, 600 MiB fixed; 24 GiB free, 6 GiB preserved.
    # budget = 24576 - 600 - 6144 = 17832 MiB. Slots of 283: cap 17266 -> 20 duals (13600) + 12 singles (3396).
    # Slots of 680: cap 16472 -> 19 duals (12920) + 12 singles (3396) = 16316 < 16996.
    sizes = [680 * MIB] * 20 + [283 * MIB] * 40
    plan = plan_residency(sizes, 600 * MIB, 24 * GIB, 6.0, 2 * GIB)
    assert plan.resident[:20] == (True,) * 20
    assert sum(plan.resident[20:]) == 12
    assert plan.slots == 2 and plan.slot_bytes == 283 * MIB
    assert plan.resident_bytes == (13600 + 12 * 283) * MIB
    assert plan.device_bytes <= plan.budget_bytes == 17832 * MIB
    # streamed singles are spread through the stack, so copies overlap resident compute
    streamed = plan.streamed
    assert len(streamed) == 28 and max(b - a for a, b in zip(streamed, streamed[1:])) <= 2


def test_activation_estimate_is_a_floor_under_the_preserved_setting():
    sizes = [GIB] * 4
    low = plan_residency(sizes, 0, 6 * GIB, preserved_gb=0.5, activation_bytes=2 * GIB)
    # reserve 2 GiB -> budget 4 GiB -> all four fit
    assert low.all_resident and low.budget_bytes == 4 * GIB
    high = plan_residency(sizes, 0, 6 * GIB, preserved_gb=3.0, activation_bytes=2 * GIB)
    # reserve 3 GiB -> budget 3 GiB -> slots 2x1 GiB, one block resident
    assert high.budget_bytes == 3 * GIB and sum(high.resident) == 1 and high.slots == 2


def test_force_streaming_streams_every_block_even_on_a_big_card():
    plan = plan_residency([10] * 4 + [5] * 4, 0, 10**6, 0, force_streaming=True)
    assert not any(plan.resident) and plan.slots == 2 and plan.slot_bytes == 10 and plan.fits and plan.forced


def test_one_slot_when_two_do_not_fit_and_unfit_when_nothing_does():
    # budget 15: two 10-byte slots do not fit, one does -> one block at a time, no prefetch
    plan = plan_residency([10, 10, 5], 0, 15, 0)
    assert plan.slots == 1 and not plan.prefetch and plan.fits
    assert plan.resident == (False, False, True) and plan.device_bytes == 15
    bad = plan_residency([10, 10, 5], 0, 9, 0)
    assert not bad.fits and bad.slots == 1 and not any(bad.resident)


def test_no_prefetch_option_uses_one_slot():
    plan = plan_residency([10] * 6, 0, 40, 0, prefetch=False)
    assert plan.slots == 1 and sum(plan.resident) == 3


def test_more_memory_never_means_fewer_resident_bytes_and_plans_fit_their_budget():
    # Prefetch (two slots) is preferred over one more resident block, so compare within a slot count.
    sizes = [7] * 5 + [3] * 9
    previous: dict[int, int] = {}
    slots_seen = []
    for free in range(0, sum(sizes) + 10):
        plan = plan_residency(sizes, 2, free, 0, 1)
        if plan.fits:
            assert plan.device_bytes <= plan.budget_bytes
        assert plan.resident_bytes >= previous.get(plan.slots, -1)
        previous[plan.slots] = plan.resident_bytes
        slots_seen.append(plan.slots)
    assert plan.all_resident
    # one slot only below the two-slot threshold; never back to one slot after prefetch became possible
    first_two = slots_seen.index(2)
    assert 1 not in slots_seen[first_two:]


def test_invalid_inputs():
    with pytest.raises(ValueError):
        plan_residency([], 0, 100, 0)
    with pytest.raises(ValueError):
        plan_residency([5, 0], 0, 100, 0)


def test_activation_estimate_for_the_640_bucket():
    # 19,149 tokens x 3072 x bf16 x (2*4+6) x 1.25
    est = estimate_activation_bytes(19_149, 3072)
    assert est == int(19_149 * 3072 * 2 * 14 * 1.25)
    assert 1.5 * GIB < est < 2.5 * GIB
