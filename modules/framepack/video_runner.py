"""The section loop of the Video, Video with Endframe and Video F1 types (called by Engine.generate).

It reuses the engine's pieces (model manager, prompt schedule, denoiser, step cache, sampler, metadata,
segments) and the video-specific state of modules/framepack/video_source.py. Order of work: the source is
probed and decoded (bucket crop, 30 fps) before any model loads, so a bad file fails early; then the tail is
VAE-encoded, the sections are sampled forward in time, final frames are encoded as closed segments (with
"Combine with source video" the first segment streams the source in front), and the segments are joined.
Each finished section checkpoints into the work folder; a rerun on the same folder resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from modules.framepack import conditioning as cond
from modules.framepack import metadata as meta
from modules.framepack import sections as sec
from modules.framepack import video_source as vs
from modules.framepack.buckets import find_bucket, resize_and_center_crop
from modules.framepack.events import CancelToken, DoneEvent, GenerationResult, SectionEvent, StageEvent, StepEvent
from modules.framepack.inputs import InputError, load_image_rgb
from modules.framepack.naming import default_stem, unique_stem
from modules.framepack.params import FPS, GenerationParams, GenerationType
from modules.framepack.sampler import flow_sigmas, make_denoiser, seq_len_for, unipc_steps
from modules.media.preview import LatentPreviewer
from modules.media.segments import encode_segment, join_segments
from modules.media.video_io import VideoError, atomic_output, iter_frames
from modules.models.registry import TransformerKind

log = logging.getLogger(__name__)

CHECKPOINT_JSON = "checkpoint.json"
PREVIEW_NAME = "preview.mp4"


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


def run_video_generation(engine, params: GenerationParams, out, cancel: CancelToken | None = None) -> Iterator:
    from modules.framepack.engine import Prepared, SectionPlan, Timings

    cancel = cancel or CancelToken()
    t_start = time.perf_counter()
    engine.timings = Timings()
    kind = params.transformer_kind
    lws = params.latent_window_size
    n = sec.section_count(params.total_seconds, lws)
    plan = SectionPlan(kind, n, lws, [])

    source, (height, width) = _load_source(params)  # decodes the whole file once: before any model
    work = Path(out.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cancel.raise_if_cancelled()

    yield StageEvent("loading models")
    with engine._timer("loading"):
        transformer = engine.manager.transformer(kind)
        engine.manager.apply_loras(list(params.loras))
        m = engine.manager.shared()

    yield StageEvent("encoding source video")
    with engine._timer("vae_encode"):
        src_latents = vs.encode_video_latents(m.vae, source.frames)
        start_latent = vs.encode_image_latent(m.vae, source.last_frame)
        end_img = _end_image(params, height, width)
        end_latent = vs.encode_image_latent(m.vae, end_img) if end_img is not None else None
    with engine._timer("image_encoder"):
        image_embeds = cond.encode_image_siglip(source.last_frame, m.feature_extractor, m.image_encoder)
        if end_img is not None and params.end_frame_embedding_blend > 0:
            b = params.end_frame_embedding_blend
            end_embeds = cond.encode_image_siglip(end_img, m.feature_extractor, m.image_encoder)
            image_embeds = (1 - b) * image_embeds + b * end_embeds
    texts, weights = engine._prompt_schedule(params, plan)
    with engine._timer("text_encoders"):
        embs = [cond.encode_prompt(t, m.tokenizer, m.text_encoder, m.tokenizer_2, m.text_encoder_2,
                                   params.system_prompt) for t in texts]
        negative = None
        if params.cfg != 1.0:
            negative = cond.encode_prompt(params.negative_prompt, m.tokenizer, m.text_encoder, m.tokenizer_2,
                                          m.text_encoder_2, params.system_prompt)
    prep = Prepared(height, width, source.last_frame, start_latent, end_latent, image_embeds, embs, weights,
                    negative, {}, LatentPreviewer.fit(start_latent, source.last_frame))
    cancel.raise_if_cancelled()

    ext = vs.prepare_extension("f1" if kind == TransformerKind.F1 else "original", src_latents, start_latent,
                               params.num_context_frames, lws, n, end_latent, params.end_frame_strength)
    writer = vs.ExtensionOutput(source, ext.overlap, params.combine_with_source)
    derived = _derived(engine, params, plan, prep, source, ext, writer)
    repro = meta.reproduction(params, derived)
    fingerprint = meta.comment_text(repro)
    cache = engine._make_cache(params)
    sigmas = flow_sigmas(params.steps, seq_len_for(lws, height, width))
    tr = engine.trace
    if tr is not None:
        tr.update(prepared=prep, sigmas=sigmas, plan=plan, source=source, source_latents=src_latents,
                  video_extension=ext)

    gen = torch.Generator("cpu").manual_seed(params.seed)
    segments: dict[int, str] = {}
    computed_log: list[list[bool]] = []
    first = 0
    ckpt = _load_checkpoint(work, fingerprint)
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
        _clear_work(work)

    h8, w8 = height // 8, width // 8
    total_steps, steps_done = n * params.steps, first * params.steps
    step_times: list[float] = []
    for k in range(first, n):
        noise = torch.randn((1, 16, lws, h8, w8), generator=gen)
        ci = ext.section_inputs(k).to_clean_inputs()
        pos = cond.mix_embeddings(prep.prompt_embs, prep.section_weights[k])
        denoise = make_denoiser(engine._velocity_fn(transformer, prep, pos, ci, params), params.cfg,
                                params.cfg_rescale)
        if cache is not None:
            cache.start_section(params.steps)
        generated = None
        with cache.attach(transformer) if cache is not None else nullcontext():
            it = unipc_steps(denoise, noise, sigmas)
            while True:
                cancel.raise_if_cancelled()
                t0 = time.perf_counter()
                try:
                    i, _x, generated = next(it)
                except StopIteration:
                    break
                step_times.append(time.perf_counter() - t0)
                steps_done += 1
                avg = sum(step_times[-8:]) / len(step_times[-8:])
                yield StepEvent(k, n, i + 1, params.steps, avg * (total_steps - steps_done),
                                prep.previewer(generated) if prep.previewer else None)
        assert generated is not None
        if cache is not None:
            computed_log.append(list(cache.computed_log[-1]))
        if tr is not None:
            tr[f"section{k:02d}.noise"] = noise
            tr[f"section{k:02d}.clean_inputs"] = ci
            tr[f"section{k:02d}.generated_latents"] = generated
        ext.append(generated)
        with engine._timer("vae_decode"):
            final = ext.decode_step(lambda z: cond.vae_decode(z, m.vae))
        frames = writer.push(final)
        first_frame = next(frames, None)
        if first_frame is not None:
            segments[k] = f"seg_{k:04d}.mp4"
            with engine._timer("video_encode"):
                encode_segment(work / segments[k], _chain(first_frame, frames), FPS, out.crf)
        _save_checkpoint(work, fingerprint, k, ext, gen, segments, computed_log)
        preview = _write_preview(work, segments, ext, out.crf)
        yield SectionEvent(k, n, writer.frames_for(ext.frames_done), preview)

    cancel.raise_if_cancelled()
    yield StageEvent("writing video")
    result = _finish(engine, params, out, repro, ext, segments, computed_log, t_start)
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
            "overlap_frames": ext.overlap, "transformer": plan.kind.value,
            "model_set": engine.manager.config.model_set.value, "device": engine.manager.device.type,
            "dtype": str(engine.manager.dtype).replace("torch.", ""), "prompt_segments": len(prep.prompt_embs)}


# ------------------------------------------------------------------------------------- files and resume


def _write_preview(work: Path, segments: dict[int, str], ext: vs.VideoExtension, crf: int) -> Path | None:
    """The growing preview: the final segments plus the not yet final frames."""
    try:
        order = [work / segments[k] for k in sorted(segments)]
        if ext.pixels is not None and ext.pixels.shape[2] > 0:
            encode_segment(work / "pending.mp4", cond.pixels_to_uint8(ext.pixels), FPS, crf)
            order.append(work / "pending.mp4")
        if not order:
            return None
        join_segments(order, work / PREVIEW_NAME, FPS)
        return work / PREVIEW_NAME
    except Exception:  # a convenience: never fail the job for it
        log.exception("preview video failed")
        return None


def _save_checkpoint(work: Path, fingerprint: str, k: int, ext: vs.VideoExtension, gen: torch.Generator,
                     segments: dict[int, str], computed_log: list[list[bool]]) -> None:
    tensors = {"history": ext.history.contiguous(), "rng": gen.get_state()}
    if ext.pixels is not None:
        tensors["pending"] = ext.pixels.contiguous()
    name = f"ckpt_{k:04d}.safetensors"
    with atomic_output(work / name) as tmp:
        save_file(tensors, str(tmp))
    state = {"fingerprint": fingerprint, "section_done": k, "tensors": name, "frames_done": ext.frames_done,
             "segments": {str(i): s for i, s in segments.items()}, "computed_log": computed_log}
    with atomic_output(work / CHECKPOINT_JSON) as tmp:
        tmp.write_text(json.dumps(state), encoding="utf-8")
    for old in work.glob("ckpt_*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _load_checkpoint(work: Path, fingerprint: str) -> tuple[dict, dict] | None:
    path = work / CHECKPOINT_JSON
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("fingerprint") != fingerprint:
            log.info("checkpoint in %s belongs to other parameters; starting fresh", work)
            return None
        if not all((work / s).is_file() for s in state["segments"].values()):
            return None
        return state, load_file(str(work / state["tensors"]))
    except (OSError, ValueError, KeyError):
        log.warning("unreadable checkpoint in %s; starting fresh", work)
        return None


def _clear_work(work: Path) -> None:
    for p in list(work.glob("seg_*.mp4")) + list(work.glob("ckpt_*.safetensors")) + \
            [work / CHECKPOINT_JSON, work / "pending.mp4", work / PREVIEW_NAME]:
        p.unlink(missing_ok=True)


def _finish(engine, params: GenerationParams, out, repro: dict[str, Any], ext: vs.VideoExtension,
            segments: dict[int, str], computed_log: list[list[bool]], t_start: float) -> GenerationResult:
    work = Path(out.work_dir)
    output_dir = Path(out.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = unique_stem(output_dir, out.name or default_stem(params.seed))
    video = output_dir / f"{stem}.mp4"
    with engine._timer("video_encode"):
        frames = join_segments([work / segments[k] for k in sorted(segments)], video, FPS,
                               comment=meta.comment_text(repro))
    thumb = output_dir / f"{stem}.png"
    with atomic_output(thumb) as tmp:
        Image.fromarray(next(iter_frames(video))).save(tmp, format="PNG")
    extra: list[Path] = []
    if out.save_latents:
        lat_path = output_dir / f"{stem}.latents.safetensors"
        with atomic_output(lat_path) as tmp:
            save_file({"history_latents": ext.history.contiguous()}, str(tmp),
                      metadata={"fps": str(FPS), "source_latents": str(ext.source_latents),
                                "params": json.dumps(repro["params"])})
        extra.append(lat_path)
    if engine.trace is not None:
        engine.trace["history_latents"] = ext.history.clone()
    skipped = sum(1 for s in computed_log for c in s if not c)
    run = {"wall_seconds": round(time.perf_counter() - t_start, 3), "timings": engine.timings.as_dict(),
           "skipped_steps": skipped, "computed_steps": [[int(c) for c in s] for s in computed_log],
           "cache": params.cache_type.value if computed_log else "None",
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "video": video.name}
    sidecar_path = None
    if out.save_metadata:
        mdir = Path(out.metadata_dir) if out.metadata_dir else output_dir
        mdir.mkdir(parents=True, exist_ok=True)
        sidecar_path = meta.write_sidecar(mdir / f"{stem}.json", meta.sidecar(repro, run))
    engine._cleanup_work(work, out.cleanup_videos)
    d = repro["derived"]
    return GenerationResult(video=video, metadata=sidecar_path, thumbnail=thumb, frames=frames, fps=FPS,
                            width=d["bucket_width"], height=d["bucket_height"], seed=params.seed,
                            skipped_steps=skipped, extra_files=extra,
                            info={"derived": d, "run": run, "peak_rss_mb": meta.peak_rss_mb()})
