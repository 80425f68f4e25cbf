"""The video types (Video, Video with Endframe, Video F1): their preparation and their SectionBuilder.

The source is probed and decoded (bucket crop, 30 fps) before any model loads, so a bad file fails early;
then its tail is VAE-encoded and the one section loop (section_loop.py) samples the sections forward in
time with VideoSections, whose state lives in modules/framepack/video_source.py. With "Combine with source
video" the first segment streams the source in front of the generated frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modules.cancel import CancelToken
from modules.framepack import metadata as meta
from modules.framepack import sections as sec
from modules.framepack import video_source as vs
from modules.framepack.buckets import find_bucket, resize_and_center_crop
from modules.framepack.events import StageEvent
from modules.framepack.inputs import InputError, load_image_rgb
from modules.framepack.outputs import OutputOptions
from modules.framepack.params import FPS, GenerationParams, GenerationType
from modules.framepack.plan import JobContext, Prepared, SectionPlan
from modules.framepack.section_loop import run_sections
from modules.media.preview import LatentPreviewer
from modules.media.video_io import VideoError
from modules.models.registry import TransformerKind

log = logging.getLogger(__name__)


def video_bucket(params: GenerationParams, info) -> tuple[int, int]:
    """(height, width): the bucket nearest the requested size, in the source video's aspect ratio."""
    return find_bucket(params.width, params.height, (info.height, info.width))


def _load_source(params: GenerationParams) -> tuple[vs.SourceVideo, tuple[int, int]]:
    try:
        info = vs.check_source_video(params.input_video)
        hw = video_bucket(params, info)
        src = vs.load_source_video(params.input_video, hw, max_frames=vs.tail_frames_for(params.num_context_frames))
    except VideoError as exc:
        raise InputError({"input_video": str(exc)}) from exc
    return src, hw


def _end_image(params: GenerationParams, height: int, width: int) -> np.ndarray | None:
    """The end frame: required by Video with Endframe, an option of Video F1, ignored by Video."""
    if params.end_image is None or params.generation_type == GenerationType.VIDEO:
        return None
    return resize_and_center_crop(load_image_rgb(params.end_image), width, height)


def run_video_generation(engine: Any, params: GenerationParams, out: OutputOptions, cancel: CancelToken,
                         job: JobContext) -> Iterator:
    """Prepare a video-type job, then the one section loop. engine: the modules/framepack/engine.py Engine."""
    kind = params.transformer_kind
    lws = params.latent_window_size
    n = sec.section_count(params.total_seconds, lws)
    plan = SectionPlan(kind, n, lws, [])

    source, (height, width) = _load_source(params)  # decodes the whole file once: before any model
    Path(out.work_dir).mkdir(parents=True, exist_ok=True)
    cancel.raise_if_cancelled()

    yield StageEvent("loading models")
    transformer = engine.load_transformer(params, job)
    with job.timer("loading"):
        m = engine.manager.shared()

    yield StageEvent("encoding source video")
    with job.timer("vae_encode"), engine.using(m.vae):
        src_latents = vs.encode_video_latents(m.vae, source.frames)
        start_latent = vs.encode_image_latent(m.vae, source.last_frame)
        end_img = _end_image(params, height, width)
        end_latent = vs.encode_image_latent(m.vae, end_img) if end_img is not None else None
    image_embeds, embs, weights, negative = engine.encode_conditioning(params, plan, m, source.last_frame, end_img,
                                                                       job)
    prep = Prepared(height, width, source.last_frame, start_latent, end_latent, image_embeds, embs, weights,
                    negative, {}, LatentPreviewer.fit(start_latent, source.last_frame))
    cancel.raise_if_cancelled()

    ext = vs.prepare_extension("f1" if kind == TransformerKind.F1 else "original", src_latents, start_latent,
                               params.num_context_frames, lws, n, end_latent, params.end_frame_strength)
    builder = VideoSections(ext, vs.ExtensionOutput(source, ext.overlap, params.combine_with_source))
    repro = meta.reproduction(params, _derived(engine, params, plan, prep, source, builder))
    if job.trace is not None:
        job.trace.update(source=source, source_latents=src_latents, video_extension=ext)
    yield from run_sections(engine.manager, params, out, cancel, job, plan=plan, prep=prep, builder=builder,
                            transformer=transformer, repro=repro,
                            latents_metadata={"source_latents": str(ext.source_latents)})


class VideoSections:
    """The SectionBuilder of the video types: the source tail's latents, then the generated sections, forward."""

    forward = True

    def __init__(self, ext: vs.VideoExtension, writer: vs.ExtensionOutput) -> None:
        self.ext, self.writer = ext, writer

    def prompt_section(self, k: int) -> int:
        return k

    def clean_inputs(self, k: int) -> sec.CleanInputs:
        return self.ext.section_inputs(k).to_clean_inputs()

    def add(self, k: int, generated: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor]
            ) -> Iterator[np.ndarray]:
        self.ext.append(generated)
        return self.writer.push(self.ext.decode_step(decode))

    def flush(self) -> list[np.ndarray]:
        return []  # the last section's frames are all final

    @property
    def pending(self) -> torch.Tensor | None:
        return self.ext.pixels

    @property
    def frames_so_far(self) -> int:
        return self.writer.frames_for(self.ext.frames_done)

    def history_latents(self) -> torch.Tensor:
        return self.ext.history

    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"history": self.ext.history.contiguous()}, {"frames_done": self.ext.frames_done}

    def restore(self, tensors: dict[str, torch.Tensor], facts: dict[str, Any], next_section: int,
                decode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.ext.history = tensors["history"]
        self.ext.sections_done, self.ext.frames_done = next_section, int(facts["frames_done"])
        self.ext.resume_pixels(decode)
        self.writer.skip_head()  # the source and the overlap frames are in the first segment already


def _derived(engine: Any, params: GenerationParams, plan: SectionPlan, prep: Prepared, source: vs.SourceVideo,
             builder: VideoSections) -> dict[str, Any]:
    ext, writer = builder.ext, builder.writer
    return {"bucket_width": prep.width, "bucket_height": prep.height, "sections": plan.sections,
            "latent_frames": ext.total_sections * ext.latent_window_size,
            "frames": writer.total_frames(ext.extension_frames), "fps": FPS,
            "extension_frames": ext.extension_frames, "source_frames": source.num_frames,
            "source_fps": round(source.source_fps, 3), "source_latents": ext.source_latents,
            "overlap_frames": ext.overlap, **engine.runtime_facts(plan, prep)}
