"""The three prompt helpers over an already-checked input (modules/captioning/inputs.py) and a loaded model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modules.captioning import instructions as ask
from modules.captioning.inputs import SampledVideo
from modules.captioning.vlm import TokenListener, VisionLanguageModel
from modules.framepack.prompts import PromptSegment


STEP_TOKENS = 48  # one short sentence per timestamped segment


class EmptyAnswerError(RuntimeError):
    """The model wrote nothing usable (a prompt box is never filled with an empty string)."""


def _checked(text: str, what: str) -> str:
    if not text:
        raise EmptyAnswerError(f"the captioner wrote no {what}; write the prompt yourself or try another model")
    return text


def caption_image(vlm: VisionLanguageModel, image: np.ndarray, on_token: TokenListener | None = None) -> str:
    """A FramePack prompt for animating the image."""
    return _checked(ask.clean_reply(vlm.ask(ask.CAPTION, image=image, on_token=on_token)), "caption")


@dataclass(frozen=True)
class VideoDescription:
    description: str  # what happens in the source video
    prompt: str  # a prompt for its extension (timestamped when asked)


def describe_video(vlm: VisionLanguageModel, video: SampledVideo, seconds: float, timestamped: bool = False,
                   on_token: TokenListener | None = None) -> VideoDescription:
    """What happens in the video, and a prompt that continues it for `seconds` (the extension's length)."""
    description = ask.clean_reply(vlm.ask(ask.DESCRIBE, video=video, on_token=on_token))
    if timestamped:
        steps = ask.continuation_steps(seconds)
        sentences: list[str] = []
        for k in range(steps):
            reply = vlm.ask(ask.continue_step(k, steps, seconds, sentences), video=video, on_token=on_token,
                            max_new_tokens=STEP_TOKENS)
            sentences.append(ask.clean_reply(reply))
        prompt = ask.timestamped(sentences, seconds)
    else:
        prompt = ask.clean_reply(vlm.ask(ask.CONTINUE.format(seconds=seconds), video=video, on_token=on_token))
    return VideoDescription(description, _checked(prompt, "prompt for the extension"))


def enhance_prompt(vlm: VisionLanguageModel, segments: Sequence[PromptSegment],
                   on_token: TokenListener | None = None) -> str:
    """Each segment's text rewritten as a motion prompt; its timestamp kept as it was."""
    return ask.enhance_segments(segments, lambda text: vlm.ask(ask.ENHANCE.format(text=text), on_token=on_token))
