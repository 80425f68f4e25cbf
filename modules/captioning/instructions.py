"""What the vision-language model is asked, and how its answers become FramePack prompts.

FramePack follows its prompt closely and does best with one or two plain sentences about the subject and its
motion, so every instruction asks for that and every answer is cleaned into it (`clean_reply`). Timestamps
never pass through the model: Enhance rewrites each segment's text and keeps the segment's time, and a
timestamped video prompt gets its times from here."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from modules.framepack.prompts import PromptSegment, format_timestamped_prompt

CAPTION = ("Write a prompt for an image-to-video model that animates this picture: the subject, the setting and "
           "one plausible, natural motion, in one or two plain sentences. Answer with the prompt only.")
DESCRIBE = "Describe what happens in this video, from start to end, in two or three plain sentences."
CONTINUE = ("Write a prompt for an image-to-video model that continues this video for {seconds:g} more seconds: "
            "how the subject keeps moving, in one or two plain sentences. Answer with the prompt only.")
CONTINUE_STEP = ("This video continues for {seconds:g} more seconds in {steps} steps.{so_far} Write step {step}: one "
                 "short sentence saying what the subject does next. Answer with the sentence only.")
ENHANCE = ("Rewrite this short prompt for an image-to-video model as one or two plain sentences that name the "
           "subject and describe its motion clearly. Keep its meaning. Answer with the prompt only.\n\n"
           "Prompt: {text}")

SECONDS_PER_STEP = 3.0  # a timestamped continuation gets a new segment about this often
MAX_STEPS = 4

_LABEL = re.compile(r"^\s*(prompt|answer|caption|description)\s*:\s*", re.IGNORECASE)


def clean_reply(text: str) -> str:
    """One plain line: whitespace collapsed, a leading "Prompt:" label and wrapping quotes removed, square
    brackets made round (a bracket in a prompt could read as a timestamp)."""
    text = _unquoted(_LABEL.sub("", _unquoted(" ".join(text.split()))))
    return text.replace("[", "(").replace("]", ")")


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def continuation_steps(seconds: float) -> int:
    """How many timestamped segments a continuation of `seconds` gets (1 to MAX_STEPS)."""
    return max(1, min(MAX_STEPS, round(seconds / SECONDS_PER_STEP)))


def continue_step(index: int, steps: int, seconds: float, so_far: Sequence[str]) -> str:
    """The question for step `index` (0-based) of a timestamped continuation, given the steps written so far
    (each step is asked on its own, so every model, however it formats lists, gives one sentence per segment)."""
    done = "".join(f" Step {k + 1}: {text}" for k, text in enumerate(so_far))
    return CONTINUE_STEP.format(seconds=seconds, steps=steps, so_far=done, step=index + 1)


def timestamped(sentences: Sequence[str], seconds: float) -> str:
    """Sentences as a timestamped prompt: the k-th of n starts at k * seconds / n. Empty ones are dropped; one
    sentence stays a plain prompt."""
    lines = [clean_reply(s) for s in sentences]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    step = seconds / len(lines)
    return format_timestamped_prompt([PromptSegment(round(k * step, 2), line) for k, line in enumerate(lines)])


def enhance_segments(segments: Sequence[PromptSegment], rewrite: Callable[[str], str]) -> str:
    """Each segment's text rewritten by `rewrite`, its time kept. A segment whose rewrite comes back empty keeps
    its own text, so the result always parses as the same timestamps."""
    out = []
    for seg in segments:
        text = clean_reply(rewrite(seg.text)) or seg.text
        out.append(PromptSegment(seg.start_seconds, text))
    return format_timestamped_prompt(out)
