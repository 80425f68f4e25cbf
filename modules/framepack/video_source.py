"""Source videos for the Video, Video with Endframe and Video F1 generation types.

The three video types extend an uploaded video forward in time. This module holds everything that is
specific to them, so the engine needs one branch that calls it:

* reading the source (`check_source_video`, `load_source_video`, `iter_source_frames`): PyAV decode,
  resize + centre crop to the generation bucket, resampling to FramePack's 30 fps, keeping only the tail
  that is VAE-encoded for context (full-length frames are streamed again when the output is combined);
* `encode_video_latents`: chunked VAE encode of the tail (the Hunyuan VAE compresses time 4x: 4k+1 frames
  -> k+1 latents);
* `VideoExtension`: the section loop state - history latents (source tail + generated sections), the
  clean-latent inputs of each section and the soft-append decoding of the extension;
* `combine_with_source`: the source followed by the extension, cross-faded where they overlap.

Extension scheme (all three types generate forward in time, after the source's last frame):

* history = the last latents of the source, then each generated section appended in video order;
* "Number of Context Frames" N (2-10): each section is conditioned on the last N history latents. They
  fill the 1x/2x/4x clean-latent slots from the most recent frame backwards (1 + 2 + up to 7 of the 16
  4x slots); slots older than N hold zeros, which is what both models see in their own early sections;
* Video F1 (F1 model): the F1 layout unchanged - indices split [1, 16, 2, 1, lws] into start, 4x, 2x, 1x,
  window; the start slot holds the latent of the source's last frame encoded as an image (what F1 would
  use had that frame been its start image);
* Video / Video with Endframe (Original model): layout [16, 2, 1, lws, 1] = 4x, 2x, pre, window, post:
  the context sits before the window at its true positions, the pre 1x latent is the newest history latent
  (adjacent to the window, as the Original model's start latent is in its last section), and the post 1x
  latent is zeros (the Original model's "unknown future", as in its first section) except in the final
  section of Video with Endframe, where it is the end frame's latent (times End Frame Influence when it is
  not 1.0): the extension is pulled onto the end frame as it finishes;
* the SigLIP image embedding comes from the source's last frame (after the bucket crop).

Decoding: the first section is decoded together with the source's last two latents (causal warm-up), the
first decoded frame is dropped and the next four re-render the source's last four frames: they are the
overlap that "Combine with source video" cross-fades. Later sections soft-append like F1 (decode the last
2*lws latents, overlap 4*lws-3 frames). Extension length = sections * 4 * lws frames at 30 fps.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from modules.framepack.buckets import resize_and_center_crop
from modules.framepack.conditioning import pixels_to_uint8
from modules.framepack.params import FPS
from modules.framepack.sections import CleanInputs, SectionIndices, soft_append
from modules.media.video_io import VideoError, VideoInfo, iter_frames, probe_video

log = logging.getLogger(__name__)

# F1's clean-latent context: 16 latents at 4x, 2 at 2x, 1 at 1x (the most recent).
CONTEXT_4X, CONTEXT_2X, CONTEXT_1X = 16, 2, 1
CONTEXT_SLOTS = CONTEXT_4X + CONTEXT_2X + CONTEXT_1X
# Source latents decoded in front of the first section: warm up the causal VAE decoder and re-render the
# source's last latent (its 4 frames are the overlap with the source).
WARMUP_LATENTS = 2
VAE_TIME_FACTOR = 4
MIN_SOURCE_FRAMES = 1


# --------------------------------------------------------------------------------------------- reading


def check_source_video(path: Path | str | None) -> VideoInfo:
    """Probe the source before any model loads; raises VideoError (a ValueError) with a clear message."""
    if path is None:
        raise VideoError("input_video: a source video is required for the Video generation types")
    info = probe_video(Path(path), count_frames=True)
    if info.fps <= 0:
        raise VideoError(f"{Path(path).name}: unknown frame rate")
    return info


def resample_indices(source_fps: float, target_fps: float) -> Callable[[int], int]:
    """Output frame j shows the source frame displayed at time j / target_fps (constant frame rate)."""
    if abs(source_fps - target_fps) / target_fps < 1e-3:
        return lambda j: j
    ratio = source_fps / target_fps
    return lambda j: int(np.floor(j * ratio + 1e-6))


def _resampled(frames: Iterable[np.ndarray], source_fps: float, target_fps: float) -> Iterator[np.ndarray]:
    """Drop or repeat frames so the stream plays at target_fps with the same duration."""
    src_of = resample_indices(source_fps, target_fps)
    j = 0
    for i, frame in enumerate(frames):
        while src_of(j) == i:
            yield frame
            j += 1


def iter_source_frames(path: Path | str, bucket_hw: tuple[int, int], source_fps: float | None = None,
                       target_fps: float = FPS) -> Iterator[np.ndarray]:
    """All source frames, bucket-cropped and resampled to target_fps, one at a time (streamed)."""
    if source_fps is None:
        source_fps = check_source_video(path).fps
    h, w = bucket_hw
    cropped = (resize_and_center_crop(f, w, h) for f in iter_frames(Path(path)))
    yield from _resampled(cropped, source_fps, target_fps)


@dataclass
class SourceVideo:
    """A source video prepared for extension. `frames` is the tail only (see load_source_video)."""

    path: Path
    frames: np.ndarray  # uint8 T x H x W x 3, the last T frames at `fps`, bucket-cropped
    fps: float  # frame rate of `frames` and of iter_frames() (FramePack's 30 unless asked otherwise)
    source_fps: float  # the file's own frame rate
    num_frames: int  # frames of the whole source after resampling to `fps`
    source_size: tuple[int, int]  # (width, height) of the file

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def last_frame(self) -> np.ndarray:
        """The frame the extension continues from (SigLIP conditioning, start latent of Video F1)."""
        return self.frames[-1]

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Stream every frame again (for "Combine with source video"), never holding the whole video."""
        return iter_source_frames(self.path, (self.height, self.width), self.source_fps, self.fps)


def tail_frames_for(num_context_frames: int) -> int:
    """Source frames needed to encode the context: 4k+1 frames give k+1 latents (k >= context, warm-up)."""
    k = max(int(num_context_frames), WARMUP_LATENTS)
    return VAE_TIME_FACTOR * k + 1


def resampled_count(source_frames: int, source_fps: float, target_fps: float) -> int:
    """How many frames the source has after resampling to target_fps."""
    src_of = resample_indices(source_fps, target_fps)
    lo, hi = 0, max(1, int(source_frames * target_fps / source_fps) + 2)
    while lo < hi:  # first j whose source frame is past the end
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if src_of(mid) < source_frames else (lo, mid)
    return lo


def load_source_video(path: Path | str, bucket_hw: tuple[int, int], max_frames: int | None = None,
                      target_fps: float = FPS) -> SourceVideo:
    """Decode `path`, resize + centre-crop to bucket_hw (height, width), resample to target_fps.

    Only the last `max_frames` frames (after resampling) are kept and cropped (None keeps all, for small
    files and tests): the file is decoded once to count frames and once more to pick the tail, so memory
    stays bounded by the tail. Raises VideoError for missing, empty, non-video or oversized files.
    """
    info = check_source_video(path)  # decodes once: frame count, and a broken file fails here
    h, w = bucket_hw
    src_of = resample_indices(info.fps, target_fps)
    count = resampled_count(info.frames, info.fps, target_fps)
    first = max(0, count - max_frames) if max_frames else 0
    wanted: dict[int, list[int]] = {}  # source index -> output indices showing it
    for j in range(first, count):
        wanted.setdefault(src_of(j), []).append(j)
    tail: dict[int, np.ndarray] = {}
    decoded = 0
    for i, frame in enumerate(iter_frames(Path(path))):
        decoded = i + 1
        if i in wanted:
            cropped = resize_and_center_crop(frame, w, h)
            for j in wanted[i]:
                tail[j] = cropped
    if decoded < info.frames:  # a stream that decodes shorter than it counted: keep what exists
        count = resampled_count(decoded, info.fps, target_fps)
    frames = [tail[j] for j in range(first, count) if j in tail]
    if not frames:
        raise VideoError(f"{Path(path).name}: contains no frames")
    return SourceVideo(Path(path), np.stack(frames), float(target_fps), info.fps, count,
                       (info.width, info.height))


# -------------------------------------------------------------------------------------------- encoding


def _vae_device_dtype(vae) -> tuple[torch.device, torch.dtype]:
    p = next(vae.parameters())
    return p.device, p.dtype


def aligned_tail(num_frames: int) -> int:
    """Largest 4k+1 <= num_frames: the oldest extra frames are dropped so the last latent covers the
    last four frames (the causal VAE gives frame 0 its own latent, then one latent per 4 frames)."""
    if num_frames < 1:
        raise VideoError("no frames to encode")
    return (num_frames - 1) // VAE_TIME_FACTOR * VAE_TIME_FACTOR + 1


@torch.inference_mode()
def encode_video_latents(vae, frames: np.ndarray, chunk_frames: int = 33,
                         device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                         out_device: torch.device | str = "cpu") -> torch.Tensor:
    """VAE-encode uint8 frames T x H x W x 3 into latents [1, 16, T', H/8, W/8] (float32 on out_device).

    Frames are aligned to 4k+1 (the oldest (T-1) % 4 are dropped) giving T' = k+1 latents, the same
    `latent_dist.mode() * scaling_factor` as the start latent. Encoding runs in chunks of `chunk_frames`
    (4m+1) frames that share one boundary frame; each later chunk's first latent (that boundary frame
    encoded alone) is dropped, so memory is bounded by one chunk and the latents stay aligned.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be T x H x W x 3, got {frames.shape}")
    frames = frames[len(frames) - aligned_tail(len(frames)):]
    chunk_frames = max(5, aligned_tail(chunk_frames))
    stride = chunk_frames - 1
    vdev, vdtype = _vae_device_dtype(vae)
    device = torch.device(device) if device is not None else vdev
    dtype = dtype or vdtype
    scaling = float(vae.config.scaling_factor)
    parts: list[torch.Tensor] = []
    start = 0
    while True:
        chunk = frames[start:start + chunk_frames]
        x = torch.from_numpy(np.ascontiguousarray(chunk)).to(device=device)
        x = (x.to(dtype) / 127.5 - 1.0).permute(3, 0, 1, 2).unsqueeze(0)  # [1, 3, t, H, W]
        lat = vae.encode(x).latent_dist.mode() * scaling
        if start > 0:
            lat = lat[:, :, 1:]
        parts.append(lat.to(device=out_device, dtype=torch.float32))
        del x, lat
        if start + chunk_frames >= len(frames):
            break
        start += stride
    return torch.cat(parts, dim=2)


@torch.inference_mode()
def encode_image_latent(vae, image: np.ndarray, out_device: torch.device | str = "cpu") -> torch.Tensor:
    """One frame encoded as an image: [1, 16, 1, H/8, W/8] (the start-latent convention)."""
    return encode_video_latents(vae, image[None], out_device=out_device)


# ------------------------------------------------------------------------------------ section inputs


@dataclass
class SectionInputs:
    """Clean-latent inputs of one section, in the reference's [1, n] index layout (diffusers wants 1-D)."""

    latent_indices: torch.Tensor
    clean_latents: torch.Tensor
    clean_latent_indices: torch.Tensor
    clean_latents_2x: torch.Tensor
    clean_latent_2x_indices: torch.Tensor
    clean_latents_4x: torch.Tensor
    clean_latent_4x_indices: torch.Tensor

    def to_clean_inputs(self) -> CleanInputs:
        """The engine's `sections.CleanInputs` (1-D indices) for its transformer call."""
        ind = SectionIndices(self.latent_indices[0], self.clean_latent_indices[0], self.clean_latent_2x_indices[0],
                             self.clean_latent_4x_indices[0])
        return CleanInputs(ind, self.clean_latents, self.clean_latents_2x, self.clean_latents_4x)

    def transformer_kwargs(self) -> dict[str, torch.Tensor]:
        """The diffusers HunyuanVideoFramepackTransformer3DModel argument names, 1-D indices."""
        return {
            "indices_latents": self.latent_indices[0],
            "latents_clean": self.clean_latents,
            "indices_latents_clean": self.clean_latent_indices[0],
            "latents_history_2x": self.clean_latents_2x,
            "indices_latents_history_2x": self.clean_latent_2x_indices[0],
            "latents_history_4x": self.clean_latents_4x,
            "indices_latents_history_4x": self.clean_latent_4x_indices[0],
        }


def context_slots(history: torch.Tensor, num_context_frames: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The last N history latents, zero-padded in front to 19 and split into (4x [16], 2x [2], 1x [1])."""
    n = max(1, min(int(num_context_frames), CONTEXT_SLOTS, history.shape[2]))
    ctx = history[:, :, -n:]
    if n < CONTEXT_SLOTS:
        pad = ctx.new_zeros((*ctx.shape[:2], CONTEXT_SLOTS - n, *ctx.shape[3:]))
        ctx = torch.cat([pad, ctx], dim=2)
    return tuple(ctx.split([CONTEXT_4X, CONTEXT_2X, CONTEXT_1X], dim=2))  # type: ignore[return-value]


def f1_section_inputs(history: torch.Tensor, start_latent: torch.Tensor, num_context_frames: int,
                      lws: int, post_latent: torch.Tensor | None = None) -> SectionInputs:
    """Video F1: F1's forward layout [start, 4x(16), 2x(2), 1x(1), window(lws)] over the last N latents.

    `post_latent` (an end frame, final section only) is appended as a third 1x clean latent at index
    `latent_indices[-1] + 1`, the engine's rule for F1's end frame.
    """
    idx = torch.arange(0, 1 + CONTEXT_SLOTS + lws).unsqueeze(0)
    start_i, i4, i2, i1, lat_i = idx.split([1, CONTEXT_4X, CONTEXT_2X, CONTEXT_1X, lws], dim=1)
    c4, c2, c1 = context_slots(history, num_context_frames)
    clean, clean_i = [start_latent.to(c1), c1], [start_i, i1]
    if post_latent is not None:
        clean.append(post_latent.to(c1))
        clean_i.append(lat_i[:, -1:] + 1)
    return SectionInputs(
        latent_indices=lat_i,
        clean_latents=torch.cat(clean, dim=2),
        clean_latent_indices=torch.cat(clean_i, dim=1),
        clean_latents_2x=c2, clean_latent_2x_indices=i2,
        clean_latents_4x=c4, clean_latent_4x_indices=i4)


def original_section_inputs(history: torch.Tensor, num_context_frames: int, lws: int,
                            post_latent: torch.Tensor | None = None) -> SectionInputs:
    """Video / Video with Endframe on the Original model: [4x(16), 2x(2), pre(1), window(lws), post(1)].

    pre = newest history latent, post = `post_latent` (the end frame's, final section) or zeros.
    """
    idx = torch.arange(0, CONTEXT_SLOTS + lws + 1).unsqueeze(0)
    i4, i2, pre_i, lat_i, post_i = idx.split([CONTEXT_4X, CONTEXT_2X, CONTEXT_1X, lws, 1], dim=1)
    c4, c2, c1 = context_slots(history, num_context_frames)
    post = torch.zeros_like(c1) if post_latent is None else post_latent.to(c1)
    return SectionInputs(
        latent_indices=lat_i,
        clean_latents=torch.cat([c1, post], dim=2),
        clean_latent_indices=torch.cat([pre_i, post_i], dim=1),
        clean_latents_2x=c2, clean_latent_2x_indices=i2,
        clean_latents_4x=c4, clean_latent_4x_indices=i4)


# ---------------------------------------------------------------------------------------- frames


def crossfade(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Frames of `a` fading linearly into the same number of frames of `b` (weight of `a` 1 -> 0), uint8."""
    w = np.linspace(1.0, 0.0, len(a), dtype=np.float32)[:, None, None, None]
    mid = w * a.astype(np.float32) + (1 - w) * b.astype(np.float32)
    return np.clip(np.rint(mid), 0, 255).astype(np.uint8)


def combine_with_source(source_frames: Iterable[np.ndarray], generated_frames: Iterable[np.ndarray],
                        overlap: int) -> Iterator[np.ndarray]:
    """The source, then the generated frames, the last `overlap` source frames cross-faded into the first
    `overlap` generated ones (weight of the source 1 -> 0). Streams: holds only `overlap` source frames.

    Length = len(source) + len(generated) - overlap.
    """
    held: deque[np.ndarray] = deque()
    for frame in source_frames:
        held.append(frame)
        if len(held) > overlap:
            yield held.popleft()
    gen = iter(generated_frames)
    if held:
        blend = np.stack(list(held))
        first = [f for _, f in zip(range(len(held)), gen)]
        if len(first) < len(held):
            raise ValueError(f"combine_with_source: {len(first)} generated frames, overlap {len(held)}")
        yield from crossfade(blend, np.stack(first))
    yield from gen


# ------------------------------------------------------------------------------------- section loop


@dataclass
class VideoExtension:
    """The section loop of a video type: history latents, section inputs, and the decoded extension.

    Build with `prepare_extension`. Per section (in video order, k = 0..n-1):
        inputs = ext.section_inputs(k)            # clean latents from the last N history latents
        generated = sample(..., **inputs.transformer_kwargs())
        ext.append(generated)                     # history grows forward
        final = ext.decode_step(decode)           # uint8 frames no later section will cross-fade
    The frames returned over the whole loop are `overlap` frames re-rendering the source's last frames,
    then the extension (`extension_frames` frames); `ExtensionOutput` turns them into the written video.
    """

    kind: str  # "f1" or "original"
    history: torch.Tensor  # [1, 16, T, h, w] source tail latents, then generated sections
    start_latent: torch.Tensor  # [1, 16, 1, h, w] the source's last frame as an image latent (F1 start slot)
    num_context_frames: int
    latent_window_size: int
    total_sections: int
    end_latent: torch.Tensor | None = None  # post latent of the final section (Video with Endframe)
    source_latents: int = 0  # how many history latents (at the front) came from the source
    warmup: int = 0  # source latents decoded in front of the first section
    pixels: torch.Tensor | None = None  # decoded float [1, 3, F, H, W] not yet final (a later section blends)
    sections_done: int = 0
    frames_done: int = 0  # frames returned as final so far (overlap included)
    section_log: list[SectionInputs] = field(default_factory=list, repr=False)  # for tests/debugging

    @property
    def overlap(self) -> int:
        """Decoded frames at the start of the output that re-render the source's last frames."""
        return VAE_TIME_FACTOR if self.warmup >= 2 else 1

    @property
    def generated(self) -> torch.Tensor:
        """The generated latents alone, in video order."""
        return self.history[:, :, self.source_latents:]

    @property
    def extension_frames(self) -> int:
        """Frames of the finished extension alone: sections * 4 * lws."""
        return self.total_sections * VAE_TIME_FACTOR * self.latent_window_size

    def section_inputs(self, section: int) -> SectionInputs:
        lws = self.latent_window_size
        post = self.end_latent if section == self.total_sections - 1 else None
        if self.kind == "f1":
            inputs = f1_section_inputs(self.history, self.start_latent, self.num_context_frames, lws, post)
        else:
            inputs = original_section_inputs(self.history, self.num_context_frames, lws, post)
        self.section_log.append(inputs)
        return inputs

    def append(self, generated: torch.Tensor) -> None:
        self.history = torch.cat([self.history, generated.to(self.history)], dim=2)

    def decode_step(self, decode: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """Decode the newest section, soft-append it, return the frames that became final (uint8 T x H x W x 3).

        `decode` maps latents [1,16,t,h,w] to pixels [1,3,4(t-1)+1,H,W] in [-1, 1]. The first section is
        decoded behind `warmup` source latents (their first decoded frame is dropped); later ones decode the
        last 2*lws latents and cross-fade 4*lws-3 frames, as F1 does.
        """
        blend = self._blend
        if self.sections_done == 0:
            new = self._window(first=True)
            px = decode(new).float().cpu()
            keep = self.overlap + VAE_TIME_FACTOR * (new.shape[2] - self.warmup)
            pixels = px[:, :, px.shape[2] - keep:]
        else:
            px = decode(self._window(first=False)).float().cpu()
            pixels = soft_append(self.pixels, px, blend)  # F1's history ⊕ current
        self.sections_done += 1
        cut = pixels.shape[2] if self.sections_done == self.total_sections else max(0, pixels.shape[2] - blend)
        final, self.pixels = pixels[:, :, :cut], pixels[:, :, cut:]
        self.frames_done += final.shape[2]
        return pixels_to_uint8(final) if final.shape[2] else np.zeros((0, *pixels.shape[3:], 3), np.uint8)


    @property
    def _blend(self) -> int:
        """Frames of a decoded section cross-faded with the next one."""
        return VAE_TIME_FACTOR * self.latent_window_size - 3

    def _window(self, first: bool) -> torch.Tensor:
        """The latents decoded after the newest section: behind `warmup` source latents on the first."""
        if first:
            return self.history[:, :, self.source_latents - self.warmup:]
        return self.history[:, :, -2 * self.latent_window_size:]

    def resume_pixels(self, decode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """After restoring `history` and `sections_done`: the not yet final pixels, decoded again. They are the
        last `blend` frames of the newest decoded window, which no cross-fade has reached, so bit-identical."""
        if self.sections_done >= self.total_sections:
            self.pixels = None  # everything is final
            return
        px = decode(self._window(first=self.sections_done == 1)).float().cpu()
        self.pixels = px[:, :, px.shape[2] - self._blend:]


class ExtensionOutput:
    """Turns the final frames of a VideoExtension into the written video, incrementally.

    combine=True: the source (streamed from its file, resampled to 30 fps) followed by the extension, the
    last `overlap` source frames cross-faded into the re-rendered ones; length = source + extension.
    combine=False: the extension alone (the re-rendered overlap frames are dropped).
    """

    def __init__(self, source: SourceVideo, overlap: int, combine: bool) -> None:
        self.source, self.overlap, self.combine = source, overlap, combine
        self._head: list[np.ndarray] = []  # generated frames until the overlap is complete
        self._head_done = False

    def push(self, frames: np.ndarray) -> Iterator[np.ndarray]:
        """Frames to write, in order, for the newly final generated `frames`."""
        if self._head_done:
            yield from frames
            return
        self._head.extend(frames)
        if len(self._head) < self.overlap:
            return
        head, self._head, self._head_done = self._head, [], True
        if self.combine:
            yield from combine_with_source(self.source.iter_frames(), head, self.overlap)
        else:
            yield from head[self.overlap:]

    def skip_head(self) -> None:
        """Resuming after the first section: the source and the overlap are already written."""
        self._head, self._head_done = [], True

    def frames_for(self, generated_final: int) -> int:
        """Output frames written once `generated_final` generated frames (overlap included) were pushed."""
        if generated_final < self.overlap:
            return 0
        return generated_final - self.overlap + (self.source.num_frames if self.combine else 0)

    def total_frames(self, extension_frames: int) -> int:
        return extension_frames + (self.source.num_frames if self.combine else 0)


def prepare_extension(kind: str, source_latents: torch.Tensor, start_latent: torch.Tensor,
                      num_context_frames: int, latent_window_size: int, total_sections: int,
                      end_latent: torch.Tensor | None = None, end_strength: float = 1.0) -> VideoExtension:
    """Start the section loop from the encoded source tail (`encode_video_latents`) and the start latent
    (`encode_image_latent` of the source's last frame). `kind`: "f1" (Video F1) or "original"."""
    if kind not in ("f1", "original"):
        raise ValueError(f"unknown extension kind {kind!r}")
    if end_latent is not None and end_strength != 1.0:
        end_latent = end_latent * end_strength
    n_src = source_latents.shape[2]
    return VideoExtension(kind=kind, history=source_latents.float(), start_latent=start_latent.float(),
                          num_context_frames=int(num_context_frames), latent_window_size=int(latent_window_size),
                          total_sections=int(total_sections), end_latent=end_latent,
                          source_latents=n_src, warmup=min(WARMUP_LATENTS, n_src))
