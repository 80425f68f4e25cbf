"""Section schedule and clean-latent packing for the Original (inverted) and F1 (forward) loops.

Pure functions plus two small history buffers.

Anchors beyond the reference (documented rules, tested structurally):

* **End frame, Original** (FramePack-Studio's rule, golden `original_endframe`): before the first section
  (the video's end) `history[:, :, 0:1] = end_latent` (times the strength when it is not 1). The first
  section sees it as its 1x *post* clean latent; later sections see it in their 2x/4x context. Never decoded.
* **End frame, F1**: the F1 model has no post slot of its own, so the end latent (times the strength) is
  appended to the clean latents of the **final section** as a third 1x clean latent at RoPE frame index
  `latent_indices[-1] + 1` (right after the generated window), exactly where the Original model puts its
  post latent: `clean_latents = cat(start, 1x, end)`, `clean_latent_indices = cat(start, 1x, [last + 1])`.
* **Section keyframes**: a keyframe at t seconds belongs to the section whose video-time span contains t
  (`section_for_time`). That section's post anchor is the keyframe latent: Original replaces its 1x post
  clean latent (`clean_latents[:, :, 1]`, index `clean_latent_indices[1] = latent_indices[-1] + 1`) with it;
  F1 appends it as the post clean latent as described for the end frame. The keyframe is not written into
  history. In the final F1 section an end frame takes the post slot over a keyframe.
* **Pre-seeded history** (video extension): `F1History.seed(latents)` / `OriginalHistory.seed(latents)`
  place encoded source-video latents as already-generated history (not decoded again by the loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modules.framepack.params import FPS

HISTORY_CONTEXT = 1 + 2 + 16  # 1x post/recent + 2x + 4x frames of history context


def section_count(total_seconds: float, latent_window_size: int) -> int:
    return int(max(round(total_seconds * FPS / (latent_window_size * 4)), 1))


def frames_per_section(latent_window_size: int) -> int:
    return latent_window_size * 4 - 3


def total_latent_frames(sections: int, latent_window_size: int) -> int:
    """Latent frames of the finished video (start latent included)."""
    return sections * latent_window_size + 1


def pixel_frames(latent_frames: int) -> int:
    return 4 * (latent_frames - 1) + 1


def total_pixel_frames(total_seconds: float, latent_window_size: int) -> int:
    return pixel_frames(total_latent_frames(section_count(total_seconds, latent_window_size), latent_window_size))


def overlap_frames(latent_window_size: int) -> int:
    return 4 * latent_window_size - 3


def original_paddings(sections: int) -> list[int]:
    if sections <= 4:
        return list(reversed(range(sections)))
    return [3] + [2] * (sections - 3) + [1, 0]


def section_for_time(seconds: float, sections: int, latent_window_size: int) -> int:
    """Video-time index (0 = the video's first section) of the section covering `seconds`."""
    return min(sections - 1, max(0, int(seconds * FPS // (4 * latent_window_size))))


def section_start_seconds(sections: int, latent_window_size: int) -> list[float]:
    """Start time of each section in video-time order."""
    return [v * 4 * latent_window_size / FPS for v in range(sections)]


@dataclass
class SectionIndices:
    """RoPE frame indices (1-D int64) of the noisy window and the clean 1x / 2x / 4x inputs."""

    latent: torch.Tensor
    clean: torch.Tensor
    clean_2x: torch.Tensor
    clean_4x: torch.Tensor


def original_indices(padding: int, latent_window_size: int) -> SectionIndices:
    lws = latent_window_size
    idx = torch.arange(0, 1 + padding * lws + lws + HISTORY_CONTEXT)
    pre, _blank, latent, post, i2x, i4x = idx.split([1, padding * lws, lws, 1, 2, 16])
    return SectionIndices(latent, torch.cat([pre, post]), i2x, i4x)


def f1_indices(latent_window_size: int) -> SectionIndices:
    idx = torch.arange(0, 1 + 16 + 2 + 1 + latent_window_size)
    start, i4x, i2x, i1x, latent = idx.split([1, 16, 2, 1, latent_window_size])
    return SectionIndices(latent, torch.cat([start, i1x]), i2x, i4x)


@dataclass
class CleanInputs:
    """What one section feeds the transformer besides the noisy latents."""

    indices: SectionIndices
    clean: torch.Tensor  # [1, C, k, h, w]
    clean_2x: torch.Tensor  # [1, C, 2, h, w]
    clean_4x: torch.Tensor  # [1, C, 16, h, w]


def _zeros(like: torch.Tensor, frames: int) -> torch.Tensor:
    b, c, _, h, w = like.shape
    return torch.zeros(b, c, frames, h, w, dtype=torch.float32, device=like.device)


class OriginalHistory:
    """History for the inverted loop: new sections go in front; the real history is the first `total` frames."""

    def __init__(self, start_latent: torch.Tensor) -> None:
        self.start_latent = start_latent.float()
        self.buffer = _zeros(start_latent, HISTORY_CONTEXT)
        self.total = 0

    def place_end(self, end_latent: torch.Tensor, strength: float = 1.0) -> None:
        lat = end_latent.float() if strength == 1.0 else end_latent.float() * strength
        self.buffer[:, :, 0:1] = lat

    def seed(self, latents: torch.Tensor) -> None:
        """Pre-seed already-generated latents (video time order) that later sections continue from."""
        self.buffer = torch.cat([latents.float(), self.buffer], dim=2)
        self.total += latents.shape[2]

    def clean_inputs(self, padding: int, latent_window_size: int,
                     post_override: torch.Tensor | None = None) -> CleanInputs:
        ind = original_indices(padding, latent_window_size)
        post = self.buffer[:, :, 0:1] if post_override is None else post_override.float()
        clean = torch.cat([self.start_latent, post], dim=2)
        return CleanInputs(ind, clean, self.buffer[:, :, 1:3], self.buffer[:, :, 3:HISTORY_CONTEXT])

    def add(self, generated: torch.Tensor, is_last: bool) -> torch.Tensor:
        """Store a section's output; the last section gets the start latent in front. Returns what was added."""
        if is_last:
            generated = torch.cat([self.start_latent, generated.float()], dim=2)
        self.buffer = torch.cat([generated.float(), self.buffer], dim=2)
        self.total += generated.shape[2]
        return generated

    def real(self) -> torch.Tensor:
        return self.buffer[:, :, : self.total]

    def decode_window(self, latent_window_size: int, first: bool, is_last: bool) -> torch.Tensor:
        """Latents to decode after a section: all on the first, else the newest 2*lws (+1 on the last)."""
        if first:
            return self.real()
        n = latent_window_size * 2 + (1 if is_last else 0)
        return self.real()[:, :, :n]


class F1History:
    """History for the forward loop: sections are appended; the real history is the last `total` frames."""

    def __init__(self, start_latent: torch.Tensor) -> None:
        self.start_latent = start_latent.float()
        self.buffer = torch.cat([_zeros(start_latent, HISTORY_CONTEXT), self.start_latent], dim=2)
        self.total = 1

    def seed(self, latents: torch.Tensor) -> None:
        """Replace the start with already-generated latents (e.g. an encoded source video), video order."""
        self.buffer = torch.cat([_zeros(latents, HISTORY_CONTEXT), latents.float()], dim=2)
        self.total = latents.shape[2]

    def clean_inputs(self, latent_window_size: int, post: torch.Tensor | None = None) -> CleanInputs:
        ind = f1_indices(latent_window_size)
        ctx = self.buffer[:, :, -HISTORY_CONTEXT:]
        c4x, c2x, c1x = ctx.split([16, 2, 1], dim=2)
        clean = torch.cat([self.start_latent, c1x], dim=2)
        if post is not None:
            clean = torch.cat([clean, post.float()], dim=2)
            ind.clean = torch.cat([ind.clean, ind.latent[-1:] + 1])
        return CleanInputs(ind, clean, c2x, c4x)

    def add(self, generated: torch.Tensor) -> torch.Tensor:
        self.buffer = torch.cat([self.buffer, generated.float()], dim=2)
        self.total += generated.shape[2]
        return generated

    def real(self) -> torch.Tensor:
        return self.buffer[:, :, -self.total:]

    def decode_window(self, latent_window_size: int, first: bool) -> torch.Tensor:
        if first:
            return self.real()
        return self.real()[:, :, -latent_window_size * 2:]


def soft_append(a: torch.Tensor, b: torch.Tensor, overlap: int) -> torch.Tensor:
    """a ⊕ b along frames (dim 2): linear cross-fade of a's last and b's first `overlap` frames."""
    if overlap <= 0:
        return torch.cat([a, b], dim=2)
    w = torch.linspace(1, 0, overlap, dtype=a.dtype, device=a.device).view(1, 1, -1, 1, 1)
    blended = w * a[:, :, -overlap:] + (1 - w) * b[:, :, :overlap]
    return torch.cat([a[:, :, :-overlap], blended, b[:, :, overlap:]], dim=2)


class PixelAssembler:
    """Cross-fades decoded sections and hands out frames once no later section can change them.

    `prepend` (Original): each section's pixels go in front (`current ⊕ pending`), so everything after the
    first `overlap` frames is final. `append` (F1): `pending ⊕ current`, everything before the last
    `overlap` frames is final. Only the non-final float frames are kept.
    """

    def __init__(self, prepend: bool, overlap: int) -> None:
        self.prepend = prepend
        self.overlap = overlap
        self.pending: torch.Tensor | None = None
        self.frames_total = 0  # frames in the whole video so far (final + pending)

    def add(self, current: torch.Tensor) -> torch.Tensor:
        """Add a decoded section ([1,3,T,H,W] float); returns the newly final frames in video order."""
        current = current.float()
        if self.pending is None:
            merged = current
            self.frames_total = current.shape[2]
        else:
            merged = soft_append(current, self.pending, self.overlap) if self.prepend \
                else soft_append(self.pending, current, self.overlap)
            self.frames_total += current.shape[2] - self.overlap
        o = min(self.overlap, merged.shape[2])
        if self.prepend:
            self.pending, final = merged[:, :, :o], merged[:, :, o:]
        else:
            self.pending, final = merged[:, :, merged.shape[2] - o:], merged[:, :, :merged.shape[2] - o]
        self.pending = self.pending.clone()
        return final

    def resume(self, current: torch.Tensor, frames_total: int) -> None:
        """The state right after `current` (the newest decoded section) was added, from `current` alone: the
        pending frames lie in its part no cross-fade reaches (a section decodes more than twice the overlap),
        so they are its first (prepend) or last `overlap` frames, bit for bit."""
        current = current.float()
        o = min(self.overlap, current.shape[2])
        self.pending = (current[:, :, :o] if self.prepend else current[:, :, current.shape[2] - o:]).clone()
        self.frames_total = frames_total

    def flush(self) -> torch.Tensor:
        out = self.pending if self.pending is not None else torch.zeros(1, 3, 0, 1, 1)
        self.pending = None
        return out
