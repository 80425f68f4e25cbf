"""Timestamped prompts and the per-section prompt blend schedule.

Syntax
------
``[0s: a cat sits] [2.5s: the cat jumps]``: each ``[<seconds>s: <text>]`` starts a prompt segment at that
video time. Seconds are a non-negative decimal number followed by ``s`` (``2s``, ``2.5s``, ``0.25 s``),
at most :data:`MAX_SECONDS`. Text before the first timestamp belongs to 0 s, so ``a cat [3s: a dog]`` is
two segments. A prompt without any timestamp is one segment at 0 s. Square brackets that do not start with a
timestamp are ordinary prompt text (``a [red] ball``); brackets may nest inside a segment.

Rules (violations raise :class:`PromptError` with the position and a short excerpt): every timestamp's
bracket is closed, its text is not empty, no two segments start at the same time (leading text counts as
0 s), and only whitespace may stand between a closing bracket and the next timestamp. Segments may be written
in any order; they are returned sorted by start time.

Blend schedule
--------------
The engine generates sections that start at given video times ``s_0 <= s_1 <= ... <= s_{n-1}`` (video
time order, whatever order the model samples them in). Section ``k`` covers ``[s_k, s_{k+1})``; the last
section covers ``[s_{n-1}, end)``. The section *covering* a time ``T`` is ``c(T) = max{k : s_k <= T}``
(0 if ``T < s_0``). The video ends at ``video_seconds`` (when not given: one section length after the last
start, sections being evenly spaced); segments starting at or after the end are not used.

For ``B = blend_sections`` and a segment ``j >= 1`` starting at ``T_j``, its ramp at section ``k`` is::

    r_j(k) = clamp((k - c(T_j) + 1) / (B + 1), 0, 1)

so with ``B = 0`` the new prompt takes over completely in the section covering its timestamp (hard switch),
and with ``B > 0`` the section covering the timestamp is the first of ``B`` mixed sections
(weights ``1/(B+1) ... B/(B+1)``) and the section ``B`` after it is the first that uses the new prompt alone.

The weights of section ``k`` come from a chain of linear interpolations over segments in time order,
``e = seg_0; for j = 1..m-1: e = (1 - r_j(k)) * e + r_j(k) * seg_j``. When transitions overlap (a timestamp
arrives while the previous blend is still running) the unfinished mix simply fades into the new segment.
Weights are returned as ``{segment index: weight}`` with zero weights left out; they sum to 1. The first
segment applies from video time 0 even if its timestamp is later.

Example: segments at 0 s and 2 s, sections starting at 0, 1.2, 2.4, 3.6 s: ``c(2) = 1``. ``B = 0`` gives
``[{0:1}, {1:1}, {1:1}, {1:1}]``; ``B = 2`` gives ``[{0:1}, {0:2/3, 1:1/3}, {0:1/3, 1:2/3}, {1:1}]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_SECONDS = 120.0  # the longest video a job may ask for
MAX_BLEND_SECTIONS = 10
_EPS = 1e-9  # timestamps equal to a section start (up to float noise) belong to that section

# "[" + optional spaces + number + optional spaces + "s" + optional spaces + ":"
_TIMESTAMP = re.compile(r"\[\s*(\d+(?:\.\d+)?|\.\d+)\s*s\s*:", re.IGNORECASE)


class PromptError(ValueError):
    """A timestamped prompt that cannot be parsed or whose segments are inconsistent."""


@dataclass(frozen=True)
class PromptSegment:
    start_seconds: float
    text: str


def _excerpt(text: str, pos: int, width: int = 24) -> str:
    snippet = text[pos:pos + width].replace("\n", " ")
    return snippet + ("..." if pos + width < len(text) else "")


def _closing_bracket(text: str, start: int) -> int:
    """Index of the ']' that closes the '[' at `start` (nested brackets allowed), or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                return i
    return -1


def has_timestamps(text: str) -> bool:
    return _TIMESTAMP.search(text) is not None


def parse_timestamped_prompt(text: str) -> list[PromptSegment]:
    """Split a prompt into segments sorted by start time; see the module docstring for the syntax."""
    if not isinstance(text, str):
        raise PromptError("prompt must be a string")
    first = _TIMESTAMP.search(text)
    if first is None:
        return [PromptSegment(0.0, text.strip())]

    segments: list[PromptSegment] = []
    lead = text[:first.start()].strip()
    if lead:
        segments.append(PromptSegment(0.0, lead))

    pos = first.start()
    while pos < len(text):
        gap_end = pos
        while gap_end < len(text) and text[gap_end].isspace():
            gap_end += 1
        if gap_end >= len(text):
            break
        match = _TIMESTAMP.match(text, gap_end)
        if match is None:
            raise PromptError(
                f"prompt: text outside a [<seconds>s: ...] bracket at position {gap_end}: "
                f"{_excerpt(text, gap_end)!r}; put it inside the bracket of the segment it belongs to")
        close = _closing_bracket(text, gap_end)
        if close < 0:
            raise PromptError(f"prompt: the bracket at position {gap_end} is never closed: "
                              f"{_excerpt(text, gap_end)!r}")
        seconds = float(match.group(1))
        if seconds > MAX_SECONDS:
            raise PromptError(f"prompt: timestamp {match.group(1)}s at position {gap_end} is beyond "
                              f"the longest video ({MAX_SECONDS:g} s)")
        body = text[match.end():close].strip()
        if not body:
            raise PromptError(f"prompt: the segment at {seconds:g}s (position {gap_end}) has no text")
        if _TIMESTAMP.search(body):
            raise PromptError(f"prompt: the segment at {seconds:g}s (position {gap_end}) contains another "
                              "timestamp; close each segment's bracket before the next one")
        segments.append(PromptSegment(seconds, body))
        pos = close + 1

    segments.sort(key=lambda s: s.start_seconds)  # stable: equal times are caught below
    for a, b in zip(segments, segments[1:]):
        if abs(a.start_seconds - b.start_seconds) < _EPS:
            what = "the text before the first timestamp and " if a.start_seconds == 0 and lead else ""
            raise PromptError(f"prompt: {what}two segments start at {b.start_seconds:g}s; "
                              "give each segment its own time")
    return segments


def format_timestamped_prompt(segments: Sequence[PromptSegment]) -> str:
    """The prompt text of `segments`: one segment without a timestamp as its plain text, several as
    ``[<seconds>s: <text>]`` brackets (parse_timestamped_prompt reads it back to the same segments)."""
    if len(segments) == 1 and segments[0].start_seconds == 0:
        return segments[0].text
    return " ".join(f"[{s.start_seconds:g}s: {s.text}]" for s in segments)


def _covering_section(t: float, starts: Sequence[float]) -> int:
    k = 0
    for i, s in enumerate(starts):
        if s <= t + _EPS:
            k = i
        else:
            break
    return k


def section_prompt_weights(segments: Sequence[PromptSegment], section_start_seconds: Sequence[float],
                           blend_sections: int, video_seconds: float | None = None) -> list[dict[int, float]]:
    """Per section (video-time order): weights over segment indices, summing to 1 (module docstring)."""
    if not segments:
        raise PromptError("prompt: no segments")
    if not 0 <= int(blend_sections) <= MAX_BLEND_SECTIONS or int(blend_sections) != blend_sections:
        raise PromptError(f"blend_sections: must be an integer 0-{MAX_BLEND_SECTIONS}, got {blend_sections!r}")
    times = [s.start_seconds for s in segments]
    if any(b < a for a, b in zip(times, times[1:])):
        raise PromptError("prompt: segments must be sorted by start time")
    starts = [float(s) for s in section_start_seconds]
    if any(b < a for a, b in zip(starts, starts[1:])):
        raise PromptError("section_start_seconds: must be in video-time order (non-decreasing)")
    if not starts:
        return []

    b = int(blend_sections)
    if video_seconds is None:  # sections are evenly spaced: the video ends one section after the last start
        video_seconds = starts[-1] + (starts[-1] - starts[-2]) if len(starts) > 1 else float("inf")
    late = [j for j in range(1, len(segments)) if times[j] >= video_seconds - _EPS]
    if late:
        log.warning("prompt segment(s) at %s start after the video ends (%gs) and are not used",
                    ", ".join(f"{times[j]:g}s" for j in late), video_seconds)
    covering = [_covering_section(t, starts) for t in times]
    for j in range(1, len(segments)):
        if covering[j] == covering[j - 1] and times[j] > times[j - 1]:
            log.info("prompt segments at %gs and %gs fall into the same section; with blend %d the earlier "
                     "one is only partly visible", times[j - 1], times[j], b)

    schedule: list[dict[int, float]] = []
    for k in range(len(starts)):
        weights = {0: 1.0}
        for j in range(1, len(segments)):
            if j in late:
                continue
            ramp = min(max((k - covering[j] + 1) / (b + 1), 0.0), 1.0)
            if ramp <= 0.0:
                continue
            weights = {i: w * (1.0 - ramp) for i, w in weights.items()}
            weights[j] = weights.get(j, 0.0) + ramp
        schedule.append({i: w for i, w in weights.items() if w > 0.0})
    return schedule

