"""The section loop's ETA (plan.StepClock) from injected times: steps first, then whole measured sections."""

from __future__ import annotations

import pytest

from modules.framepack.plan import StepClock


def _run_section(clock: StepClock, steps: int, step_s: float, overhead_s: float) -> list[float]:
    """Ticks one section's steps and finishes it; returns the ETA after each step."""
    etas = [clock.tick(step_s) for _ in range(steps)]
    clock.section_done(steps * step_s + overhead_s)
    return etas


def test_before_the_first_section_finishes_only_steps_count():
    clock = StepClock(sections=3, steps_per_section=4)
    assert clock.tick(1.0) == pytest.approx(11.0)  # 3 of this section + 8 of the two after
    assert clock.tick(1.0) == pytest.approx(10.0)


def test_after_one_section_the_overhead_is_included():
    """Steps of 1 s and a section overhead (decode, encode, checkpoint) of 5 s."""
    clock = StepClock(sections=3, steps_per_section=4)
    _run_section(clock, 4, 1.0, 5.0)
    # Section 2 of 3: the section just started (all 4 steps + 5 s), one more section of 9 s, the join (5 s).
    assert clock.eta() == pytest.approx(4 + 5 + 9 + 5)
    assert clock.tick(1.0) == pytest.approx(3 + 5 + 9 + 5)
    etas = _run_section(clock, 3, 1.0, 5.0)
    assert etas[-1] == pytest.approx(5 + 9 + 5)


def test_the_last_section_never_reads_zero_while_decode_and_encode_remain():
    clock = StepClock(sections=2, steps_per_section=4)
    _run_section(clock, 4, 1.0, 5.0)
    last = _run_section(clock, 4, 1.0, 5.0)
    assert last == [pytest.approx(v) for v in (3 + 5 + 5, 2 + 5 + 5, 1 + 5 + 5, 5 + 5)]
    assert clock.eta() == pytest.approx(5.0)  # every section done: the final join is left


def test_the_issue_case_tiny_steps_long_sections():
    """Issue 14: a 4-step job whose sections take ~9 s each, nearly all of it decoding and encoding."""
    clock = StepClock(sections=5, steps_per_section=4)
    _run_section(clock, 4, 0.25, 8.0)  # 9 s in all
    eta = clock.tick(0.25)
    assert eta == pytest.approx(3 * 0.25 + 8 + 3 * 9 + 8)  # not 0.25 s x 15 steps
    assert eta > 40


def test_a_resumed_job_counts_only_the_sections_left():
    clock = StepClock(sections=5, steps_per_section=2, first_section=3)
    assert clock.tick(2.0) == pytest.approx(2.0 + 2 * 2.0)  # section 4 of 5: 1 step + the last section's 2
    clock.tick(2.0)
    clock.section_done(4.0 + 6.0)
    assert clock.eta() == pytest.approx(2 * 2.0 + 6 + 6)  # the last section (steps + overhead) + the join


def test_the_mean_uses_every_finished_section():
    clock = StepClock(sections=4, steps_per_section=1)
    clock.tick(1.0)
    clock.section_done(3.0)  # overhead 2
    clock.tick(1.0)
    clock.section_done(5.0)  # overhead 4
    # Section 3 of 4 just started: 1 step (1 s) + mean overhead 3, one section of mean 4 s, the join 3.
    assert clock.eta() == pytest.approx(1 + 3 + 4 + 3)
