"""The SectionBuilder of the image types (Original, Original with Endframe, F1; section_loop.py runs it).

Original generates back to front: its history grows at the front, the end frame (if any) sits in the last
slot, each decoded section is cross-faded in front of the video. F1 generates forward: the history grows at
the back, an end frame is the post latent of the last section, decoded sections are appended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from modules.framepack import conditioning as cond
from modules.framepack import sections as sec
from modules.framepack.params import GenerationParams
from modules.framepack.plan import Prepared, SectionPlan


class ImageSections:
    """History, clean inputs and pixel assembly of one image-type job."""

    def __init__(self, params: GenerationParams, plan: SectionPlan, prep: Prepared) -> None:
        self.plan, self.prep = plan, prep
        self.forward = plan.forward
        self.end_strength = params.end_frame_strength
        self.history: sec.F1History | sec.OriginalHistory
        if self.forward:
            self.history = sec.F1History(prep.start_latent)
        else:
            self.history = sec.OriginalHistory(prep.start_latent)
            if prep.end_latent is not None:
                self.history.place_end(prep.end_latent, params.end_frame_strength)
        self.assembler = sec.PixelAssembler(prepend=not self.forward,
                                            overlap=sec.overlap_frames(plan.latent_window_size))

    def prompt_section(self, k: int) -> int:
        return self.plan.video_index(k)

    def _is_last(self, k: int) -> bool:
        return k == self.plan.sections - 1

    def clean_inputs(self, k: int) -> sec.CleanInputs:
        lws = self.plan.latent_window_size
        keyframe = self.prep.keyframe_latents.get(self.plan.video_index(k))
        if not self.forward:
            assert isinstance(self.history, sec.OriginalHistory)
            return self.history.clean_inputs(self.plan.paddings[k], lws, post_override=keyframe)
        post = keyframe
        end = self.prep.end_latent
        if self._is_last(k) and end is not None:
            post = end if self.end_strength == 1.0 else end * self.end_strength
        return self.history.clean_inputs(lws, post=post)

    def _window(self, k: int) -> torch.Tensor:
        """The latents decoded after section k was added."""
        lws, first = self.plan.latent_window_size, k == 0
        if isinstance(self.history, sec.F1History):
            return self.history.decode_window(lws, first=first)
        return self.history.decode_window(lws, first=first, is_last=self._is_last(k))

    def add(self, k: int, generated: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        if isinstance(self.history, sec.F1History):
            self.history.add(generated)
        else:
            self.history.add(generated, self._is_last(k))
        return cond.pixels_to_uint8(self.assembler.add(decode(self._window(k))))

    def flush(self) -> np.ndarray:
        return cond.pixels_to_uint8(self.assembler.flush())

    @property
    def pending(self) -> torch.Tensor | None:
        return self.assembler.pending

    @property
    def frames_so_far(self) -> int:
        return self.assembler.frames_total

    def history_latents(self) -> torch.Tensor:
        return self.history.real()

    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return ({"history": self.history.buffer.contiguous()},
                {"history_total": self.history.total, "frames_total": self.assembler.frames_total})

    def restore(self, tensors: dict[str, torch.Tensor], facts: dict[str, Any], next_section: int,
                decode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.history.buffer, self.history.total = tensors["history"], int(facts["history_total"])
        self.assembler.resume(decode(self._window(next_section - 1)), int(facts["frames_total"]))
