"""The section loop of the Video, Video with Endframe and Video F1 types (called by Engine.generate).

It reuses the engine's pieces (model manager, prompt schedule, denoiser, step cache, sampler, metadata,
segments) and the video-specific state of modules/framepack/video_source.py. Order of work: the source is
probed and decoded (bucket crop, 30 fps) before any model loads, so a bad file fails early; then the tail is
VAE-encoded, the sections are sampled forward in time, final frames are encoded as closed segments (with
"Combine with source video" the first segment streams the source in front), and the segments are joined.
Each finished section checkpoints into the work folder; a rerun on the same folder resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modules.cancel import CancelToken
from modules.framepack import conditioning as cond
from modules.framepack import metadata as meta
from modules.framepack import sections as sec
from modules.framepack import video_source as vs
from modules.framepack import workdir
from modules.framepack.buckets import find_bucket, resize_and_center_crop
from modules.framepack.cache import make_step_cache
from modules.framepack.events import DoneEvent, SectionEvent, StageEvent
from modules.framepack.inputs import InputError, load_image_rgb
from modules.framepack.outputs import OutputOptions, finish_outputs
from modules.framepack.params import FPS, GenerationParams, GenerationType
from modules.framepack.plan import JobContext, Prepared, SectionPlan, StepClock
from modules.framepack.sampler import flow_sigmas, make_denoiser, seq_len_for
from modules.media.preview import LatentPreviewer
from modules.media.segments import encode_segment, join_segments
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
    """engine: the modules/framepack/engine.py Engine whose pieces this loop reuses."""
    t_start = time.perf_counter()
    kind = params.transformer_kind
    lws = params.latent_window_size
    n = sec.section_count(params.total_seconds, lws)
    plan = SectionPlan(kind, n, lws, [])

    source, (height, width) = _load_source(params)  # decodes the whole file once: before any model
    work = Path(out.work_dir)
    work.mkdir(parents=True, exist_ok=True)
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
    writer = vs.ExtensionOutput(source, ext.overlap, params.combine_with_source)
    derived = _derived(engine, params, plan, prep, source, ext, writer)
    repro = meta.reproduction(params, derived)
    fingerprint = meta.comment_text(repro)
    cache = make_step_cache(params)
    sigmas = flow_sigmas(params.steps, seq_len_for(lws, height, width))
    tr = job.trace
    if tr is not None:
        tr.update(prepared=prep, sigmas=sigmas, plan=plan, source=source, source_latents=src_latents,
                  video_extension=ext)

    gen = torch.Generator("cpu").manual_seed(params.seed)
    segments: dict[int, str] = {}
    computed_log: list[list[bool]] = []
    first = 0
    ckpt = workdir.load_checkpoint(work, fingerprint)
    if ckpt is not None:
        state, tensors = ckpt
        ext.history, ext.pixels = tensors["history"], tensors.get("pending")
        ext.sections_done, ext.frames_done = int(state["section_done"]) + 1, int(state["frames_done"])
        writer.skip_head()
        gen.set_state(tensors["rng"])
        segments = {int(k): v for k, v in state["segments"].items()}
        computed_log = state["computed_log"]
        first = ext.sections_done
        yield StageEvent(f"resuming at section {first + 1} of {n}")
    else:
        workdir.clear_work(work)

    h8, w8 = height // 8, width // 8
    clock = StepClock(n * params.steps, first * params.steps)
    for k in range(first, n):
        noise = torch.randn((1, 16, lws, h8, w8), generator=gen)
        ci = ext.section_inputs(k).to_clean_inputs()
        if hasattr(engine.manager, "before_section"):  # CUDA: re-plan resident blocks for this section's tokens
            engine.manager.before_section(transformer, tokens=engine.section_tokens(ci, h8, w8))
        pos = cond.mix_embeddings(prep.prompt_embs, prep.section_weights[k])
        denoise = make_denoiser(engine.velocity_fn(transformer, prep, pos, ci, params, job), params.cfg,
                                params.cfg_rescale)
        generated = yield from engine.sample_section(transformer, denoise, noise, sigmas, cache, clock, k, n, cancel,
                                                     prep.previewer)
        if cache is not None:
            computed_log.append(list(cache.computed_log[-1]))
        if tr is not None:
            tr[f"section{k:02d}.noise"] = noise
            tr[f"section{k:02d}.clean_inputs"] = ci
            tr[f"section{k:02d}.generated_latents"] = generated
        ext.append(generated)
        with job.timer("vae_decode"), engine.using(m.vae):
            final = ext.decode_step(lambda z: cond.vae_decode(z, m.vae))
        frames = writer.push(final)
        first_frame = next(frames, None)
        if first_frame is not None:
            segments[k] = f"seg_{k:04d}.mp4"
            with job.timer("video_encode"):
                encode_segment(work / segments[k], _chain(first_frame, frames), FPS, out.crf)
        _save_checkpoint(work, fingerprint, k, ext, gen, segments, computed_log)
        preview = _write_preview(work, segments, ext, out.crf)
        yield SectionEvent(k, n, writer.frames_for(ext.frames_done), preview)

    cancel.raise_if_cancelled()
    yield StageEvent("writing video")
    work_segments = [work / segments[k] for k in sorted(segments)]
    result = finish_outputs(job, params, out, repro, work_segments, ext.history, computed_log, t_start,
                            latents_metadata={"source_latents": str(ext.source_latents)})
    yield DoneEvent(result)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _derived(engine, params: GenerationParams, plan, prep, source: vs.SourceVideo, ext: vs.VideoExtension,
             writer: vs.ExtensionOutput) -> dict[str, Any]:
    return {"bucket_width": prep.width, "bucket_height": prep.height, "sections": plan.sections,
            "latent_frames": ext.total_sections * ext.latent_window_size,
            "frames": writer.total_frames(ext.extension_frames), "fps": FPS,
            "extension_frames": ext.extension_frames, "source_frames": source.num_frames,
            "source_fps": round(source.source_fps, 3), "source_latents": ext.source_latents,
            "overlap_frames": ext.overlap, **engine.runtime_facts(plan, prep)}


# ------------------------------------------------------------------------------------- files and resume


def _write_preview(work: Path, segments: dict[int, str], ext: vs.VideoExtension, crf: int) -> Path | None:
    """The growing preview: the final segments plus the not yet final frames."""
    try:
        order = [work / segments[k] for k in sorted(segments)]
        if ext.pixels is not None and ext.pixels.shape[2] > 0:
            encode_segment(work / workdir.PENDING_NAME, cond.pixels_to_uint8(ext.pixels), FPS, crf)
            order.append(work / workdir.PENDING_NAME)
        if not order:
            return None
        join_segments(order, work / workdir.PREVIEW_NAME, FPS)
        return work / workdir.PREVIEW_NAME
    except Exception:  # a convenience: never fail the job for it
        log.exception("preview video failed")
        return None


def _save_checkpoint(work: Path, fingerprint: str, k: int, ext: vs.VideoExtension, gen: torch.Generator,
                     segments: dict[int, str], computed_log: list[list[bool]]) -> None:
    tensors = {"history": ext.history.contiguous(), "rng": gen.get_state()}
    if ext.pixels is not None:
        tensors["pending"] = ext.pixels.contiguous()
    workdir.save_checkpoint(work, fingerprint, k, tensors, {
        "frames_done": ext.frames_done, "segments": {str(i): s for i, s in segments.items()},
        "computed_log": computed_log})
