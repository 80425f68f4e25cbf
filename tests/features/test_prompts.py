"""Timestamped prompt parsing and the per-section blend schedule, with hand-computed weights."""

from __future__ import annotations

import pytest

from modules.framepack.prompts import (
    PromptError, PromptSegment, has_timestamps, parse_timestamped_prompt, section_prompt_weights,
)


def test_plain_prompt_is_one_segment():
    assert parse_timestamped_prompt("  a cat on a [red] sofa ") == [PromptSegment(0.0, "a cat on a [red] sofa")]
    assert parse_timestamped_prompt("") == [PromptSegment(0.0, "")]
    assert not has_timestamps("a [red] ball")


def test_timestamps_sorted_with_leading_text_and_decimals():
    segs = parse_timestamped_prompt("a cat sits [4.5s: the cat runs] [2s: the cat stands, [sic] up]")
    assert segs == [PromptSegment(0.0, "a cat sits"), PromptSegment(2.0, "the cat stands, [sic] up"),
                    PromptSegment(4.5, "the cat runs")]
    segs = parse_timestamped_prompt("[0s: one]\n[ 2.5 S : two ]  [.5s:half]")
    assert segs == [PromptSegment(0.0, "one"), PromptSegment(0.5, "half"), PromptSegment(2.5, "two")]
    # A prompt that starts later than 0 s keeps its time; the schedule uses it from the start.
    assert parse_timestamped_prompt("[3s: late]") == [PromptSegment(3.0, "late")]


@pytest.mark.parametrize("text, fragment", [
    ("[0s: a] [2s: b", "never closed"),
    ("[0s: a] stray [2s: b]", "outside"),
    ("[0s: a] [2s:   ]", "no text"),
    ("[1s: a] [1.0s: b]", "two segments start at 1s"),
    ("lead text [0s: b]", "before the first timestamp"),
    ("[0s: a [2s: b]]", "another timestamp"),
    ("[130s: too late]", "beyond"),
])
def test_invalid_prompts_raise_clear_errors(text, fragment):
    with pytest.raises(PromptError) as info:
        parse_timestamped_prompt(text)
    assert fragment in str(info.value)


SEGS2 = [PromptSegment(0.0, "a"), PromptSegment(2.0, "b")]
STARTS = [0.0, 1.2, 2.4, 3.6, 4.8]  # e.g. latent window 9 sections (36 frames = 1.2 s)


def _approx(schedule):
    return [{k: pytest.approx(v, abs=1e-12) for k, v in d.items()} for d in schedule]


def test_hard_switch_at_covering_section():
    # 2.0 s lies in section 1 ([1.2, 2.4)), so section 1 is the first with prompt b.
    assert section_prompt_weights(SEGS2, STARTS, 0) == [{0: 1.0}, {1: 1.0}, {1: 1.0}, {1: 1.0}, {1: 1.0}]
    # A timestamp exactly on a section start belongs to that section.
    assert section_prompt_weights([PromptSegment(0, "a"), PromptSegment(2.4, "b")], STARTS, 0) == \
        [{0: 1.0}, {0: 1.0}, {1: 1.0}, {1: 1.0}, {1: 1.0}]


def test_blend_over_sections_hand_computed():
    # B = 2: ramp (k - 1 + 1) / 3 -> sections 1, 2 mixed (1/3, 2/3), section 3 pure b.
    assert section_prompt_weights(SEGS2, STARTS, 2) == _approx(
        [{0: 1.0}, {0: 2 / 3, 1: 1 / 3}, {0: 1 / 3, 1: 2 / 3}, {1: 1.0}, {1: 1.0}])
    # B = 1: one mixed section at 1/2.
    assert section_prompt_weights(SEGS2, STARTS, 1) == _approx(
        [{0: 1.0}, {0: 0.5, 1: 0.5}, {1: 1.0}, {1: 1.0}, {1: 1.0}])
    # B = 10 longer than the video: the blend never completes.
    assert section_prompt_weights(SEGS2, STARTS, 10) == _approx(
        [{0: 1.0}] + [{0: 1 - r / 11, 1: r / 11} for r in (1, 2, 3, 4)])


def test_overlapping_blends_chain():
    segs = [PromptSegment(0, "a"), PromptSegment(1.2, "b"), PromptSegment(2.4, "c")]
    # c(1.2) = 1, c(2.4) = 2; B = 2: r_b = [0, 1/3, 2/3, 1, 1], r_c = [0, 0, 1/3, 2/3, 1]
    # section 2: mix a/b = (1/3, 2/3), then *(1 - 1/3) and c gets 1/3 -> a 2/9, b 4/9, c 1/3
    # section 3: a/b = (0, 1) -> b 1/3, c 2/3
    assert section_prompt_weights(segs, STARTS, 2) == _approx([
        {0: 1.0}, {0: 2 / 3, 1: 1 / 3}, {0: 2 / 9, 1: 4 / 9, 2: 1 / 3}, {1: 1 / 3, 2: 2 / 3}, {2: 1.0}])
    for weights in section_prompt_weights(segs, STARTS, 5):
        assert sum(weights.values()) == pytest.approx(1.0)


def test_two_timestamps_in_one_section_and_late_first_segment():
    segs = [PromptSegment(0, "a"), PromptSegment(1.3, "b"), PromptSegment(2.0, "c")]
    assert section_prompt_weights(segs, STARTS, 0) == [{0: 1.0}, {2: 1.0}, {2: 1.0}, {2: 1.0}, {2: 1.0}]
    assert section_prompt_weights([PromptSegment(3.0, "late")], STARTS, 3) == [{0: 1.0}] * 5
    # Timestamps at or after the end of the video are not used (end inferred or given).
    assert section_prompt_weights(SEGS2, [0.0], 4, video_seconds=1.2) == [{0: 1.0}]
    assert section_prompt_weights(SEGS2, [0.0], 0, video_seconds=2.5) == [{1: 1.0}]
    assert section_prompt_weights(SEGS2 + [PromptSegment(6.0, "c")], STARTS, 0)[-1] == {1: 1.0}
    assert section_prompt_weights(SEGS2 + [PromptSegment(5.9, "c")], STARTS, 0)[-1] == {2: 1.0}


def test_schedule_validation():
    with pytest.raises(PromptError):
        section_prompt_weights(SEGS2, STARTS, 11)
    with pytest.raises(PromptError):
        section_prompt_weights(SEGS2, [1.2, 0.0], 0)
    with pytest.raises(PromptError):
        section_prompt_weights(list(reversed(SEGS2)), STARTS, 0)
