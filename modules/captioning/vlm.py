"""One loaded vision-language model and how it is asked (greedy decoding: the same question gives the same
answer, so a caption is reproducible like a video)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.generation.streamers import BaseStreamer

from modules.captioning.inputs import SampledVideo
from modules.models.loader import DownloadListener, load_captioner
from modules.models.registry import Component, ModelSet

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 120  # two or three sentences; also the length of the progress bar

TokenListener = Callable[[int, int], None]  # (tokens written, at most) after each new token


class _TokenCounter(BaseStreamer):
    """Reports each generated token to a listener (the CLI's tqdm bar, the UI's progress)."""

    def __init__(self, listener: TokenListener, limit: int) -> None:
        self.listener, self.limit, self.count, self._prompt_seen = listener, limit, 0, False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt itself
            self._prompt_seen = True
            return
        self.count += 1
        self.listener(self.count, self.limit)

    def end(self) -> None:
        self.listener(self.limit, self.limit)


@dataclass
class VisionLanguageModel:
    component: Component
    model: Any
    processor: Any
    device: torch.device

    @classmethod
    def load(cls, component: Component, model_set: ModelSet, device: str, dtype: torch.dtype,
             hf_home: Path | None = None, listener: DownloadListener | None = None) -> VisionLanguageModel:
        model, processor = load_captioner(component, model_set, device, dtype, hf_home, listener=listener)
        return cls(component, model, processor, torch.device(device))

    @property
    def memory_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def ask(self, question: str, image: np.ndarray | None = None, video: SampledVideo | None = None,
            on_token: TokenListener | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
        """The model's answer to `question` about an image or a video (or neither), special tokens removed."""
        content: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        if image is not None:
            content.append({"type": "image", "image": Image.fromarray(image)})
        if video is not None:
            content.append({"type": "video", "video": [Image.fromarray(f) for f in video.frames]})
            kwargs["processor_kwargs"] = video_kwargs(video)
        content.append({"type": "text", "text": question})
        inputs = self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", **kwargs).to(self.device)
        streamer = _TokenCounter(on_token, max_new_tokens) if on_token else None
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer)
        new = out[0, inputs["input_ids"].shape[1]:]
        return self.processor.decode(new, skip_special_tokens=True).strip()

    def unload(self) -> None:
        self.model = None
        self.processor = None


def video_kwargs(video: SampledVideo) -> dict[str, Any]:
    """What the processor needs to take already-sampled frames as they are: where each came from (the times the
    model is told) and no resampling of its own; each frame's pixels capped as the model's reference code does."""
    return {"video_metadata": [{"total_num_frames": video.total_frames, "fps": video.fps,
                                "frames_indices": list(video.indices)}],
            "do_sample_frames": False, "cap_pixels_per_frame": True}
