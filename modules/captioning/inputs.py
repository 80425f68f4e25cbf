"""The prompt helpers' one input checker: an image to caption, a video to describe, a prompt to enhance.

The UI, the HTTP API and the CLI all call it before any model loads. A refusal is an InputError whose fields
map the request's field ("image", "video", "prompt") to a sentence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modules.framepack import prompts
from modules.framepack.inputs import InputError, check_image_file, check_video_file, load_image_rgb
from modules.media.video_io import VideoError, iter_frames, probe_video

MAX_PROMPT_CHARS = 4000  # an enhance request longer than this is not a short prompt
MIN_VIDEO_FRAMES = 2  # one frame shows no motion to describe
VIDEO_SAMPLES = 8  # frames sampled evenly over a source video
MAX_SIDE = 768  # pictures are shrunk to this before the model sees them (its processor would anyway)


@dataclass(frozen=True)
class SampledVideo:
    """Frames taken evenly over a video's length, with the time of each (seconds)."""

    frames: list[np.ndarray]  # H x W x 3 uint8
    indices: list[int]  # each frame's index in the source
    total_frames: int
    fps: float

    @property
    def times(self) -> list[float]:
        return [i / self.fps for i in self.indices]

    @property
    def duration(self) -> float:
        return self.total_frames / self.fps


def _shrunk(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def load_caption_image(path: Path, field: str = "image") -> np.ndarray:
    """The image to caption as H x W x 3 uint8 (shrunk to MAX_SIDE), or InputError naming `field`."""
    if (why := check_image_file(Path(path))) is not None:
        raise InputError({field: why})
    return _shrunk(load_image_rgb(Path(path)))


def sample_video(path: Path, count: int = VIDEO_SAMPLES, field: str = "video") -> SampledVideo:
    """`count` frames spread evenly from the first to the last, or InputError naming `field` (not a video,
    corrupt, a single frame)."""
    p = Path(path)
    if (why := check_video_file(p)) is not None:
        raise InputError({field: why})
    try:
        info = probe_video(p, count_frames=True)
        if info.frames < MIN_VIDEO_FRAMES:
            raise InputError({field: f"{p.name} has {info.frames} frame; a video to describe needs at least "
                              f"{MIN_VIDEO_FRAMES} (use Caption on a still image)"})
        n = min(count, info.frames)
        wanted = sorted({round(i * (info.frames - 1) / (n - 1)) for i in range(n)})
        frames: list[np.ndarray] = []
        for index, frame in enumerate(iter_frames(p)):
            if index in wanted:
                frames.append(_shrunk(frame))
    except VideoError as exc:
        raise InputError({field: str(exc)}) from None
    if len(frames) < MIN_VIDEO_FRAMES:  # the container promised more frames than it decodes
        raise InputError({field: f"{p.name}: only {len(frames)} frame(s) could be decoded"})
    return SampledVideo(frames, wanted[:len(frames)], info.frames, info.fps or 30.0)


def check_extension_seconds(seconds: float, field: str = "seconds") -> float:
    """The length of the extension a video's prompt is written for (more than 0, at most the longest video), or
    InputError naming `field`."""
    if not 0 < seconds <= prompts.MAX_SECONDS:
        raise InputError({field: f"{seconds:g} s: the extension's length is more than 0 and at most "
                                 f"{prompts.MAX_SECONDS:g} seconds"})
    return seconds


def check_enhance_prompt(text: object, field: str = "prompt") -> list[prompts.PromptSegment]:
    """The prompt's segments (its timestamps), or InputError naming `field`: empty, too long, or a timestamp
    syntax error (the same parser the jobs use)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError({field: "write a short prompt to enhance first"})
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError({field: f"{len(text)} characters; a prompt to enhance has at most {MAX_PROMPT_CHARS}"})
    try:
        return prompts.parse_timestamped_prompt(text)
    except prompts.PromptError as exc:
        raise InputError({field: str(exc).removeprefix("prompt: ")}) from None
