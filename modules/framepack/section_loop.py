"""The one section loop of every generation type (the grid runs it once per cell).

A type differs only by its `SectionBuilder` (image types: image_sections.py; video types: video_runner.py):
the object that holds the history latents, builds each section's clean latents and turns decoded sections
into final frames. This loop does the rest, the same for all: noise from the job's generator, prompt mix,
UniPC sampling inside the optional step cache, VAE decode, closed segments for the final frames, the
checkpoint after every section (latents and RNG state, no pixels: a rerun on the same work folder resumes
and re-decodes what it needs), the growing preview while someone watches it, the events, and at the end the
job's files (outputs.finish_outputs). Unwatched, every frame is encoded exactly once.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from modules.cancel import CancelToken
from modules.framepack import conditioning as cond
from modules.framepack import metadata as meta
from modules.framepack import sections as sec
from modules.framepack import workdir
from modules.framepack.cache import make_step_cache
from modules.framepack.events import DoneEvent, SectionEvent, StageEvent, StepEvent
from modules.framepack.outputs import OutputOptions, finish_outputs
from modules.framepack.params import FPS, GenerationParams
from modules.framepack.plan import JobContext, Prepared, SectionPlan, StepClock
from modules.framepack.sampler import flow_sigmas, make_denoiser, seq_len_for, unipc_steps
from modules.media.segments import encode_segment, join_segments

log = logging.getLogger(__name__)

Frames = Iterable[np.ndarray]  # uint8 H x W x 3 frames, in video order


class SectionBuilder(Protocol):
    """What one generation type adds to the loop. k counts sections in generation order."""

    forward: bool  # sections come out in video order (F1, video types); False: Original, back to front

    def prompt_section(self, k: int) -> int:
        """Index of prep.section_weights (video time) that conditions section k."""

    def clean_inputs(self, k: int) -> sec.CleanInputs:
        """Clean latents and indices of section k, from the history so far."""

    def add(self, k: int, generated: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor]) -> Frames:
        """Append section k's latents to the history, decode, return the frames that became final."""

    def flush(self) -> Frames:
        """Frames still pending after the last section."""

    @property
    def pending(self) -> torch.Tensor | None:
        """Decoded float frames [1, 3, F, H, W] a later section may still change (shown in the preview)."""

    @property
    def frames_so_far(self) -> int:
        """Frames of the output video once the pending ones are final."""

    def history_latents(self) -> torch.Tensor:
        """The latents the job leaves behind (--save-latents)."""

    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(latent tensors, JSON facts) that restore() needs to go on after the last finished section."""

    def restore(self, tensors: dict[str, torch.Tensor], facts: dict[str, Any], next_section: int,
                decode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Continue from a checkpoint (the next section to sample is `next_section`): the latents come back
        as saved, the pending pixels are decoded again from them (bit-identical to the ones they replace)."""


def run_sections(manager: Any, params: GenerationParams, out: OutputOptions, cancel: CancelToken,
                 job: JobContext, *, plan: SectionPlan, prep: Prepared, builder: SectionBuilder,
                 transformer: Any, repro: dict[str, Any],
                 latents_metadata: dict[str, str] | None = None) -> Iterator:
    """Sample, decode, write and checkpoint every section, then the job's files; ends with a DoneEvent.

    manager: the modules/models/manager.py ModelManager (device, dtype, VAE, memory policy).
    """
    work = Path(out.work_dir)
    fingerprint = meta.comment_text(repro)
    cache = make_step_cache(params)
    lws, n = plan.latent_window_size, plan.sections
    h8, w8 = prep.height // 8, prep.width // 8
    sigmas = flow_sigmas(params.steps, seq_len_for(lws, prep.height, prep.width))
    tr = job.trace
    if tr is not None:
        tr.update(prepared=prep, sigmas=sigmas, plan=plan)

    vae = manager.shared().vae
    decode = lambda z: cond.vae_decode(z, vae)  # noqa: E731
    gen = torch.Generator("cpu").manual_seed(params.seed)
    segments: dict[int, str] = {}
    computed_log: list[list[bool]] = []
    first = 0
    ckpt = workdir.load_checkpoint(work, fingerprint)
    if ckpt is not None:
        state, tensors = ckpt
        first = int(state["section_done"]) + 1
        gen.set_state(tensors["rng"])
        segments = {int(i): s for i, s in state["segments"].items()}
        computed_log = state["computed_log"]
        with job.timer("vae_decode"), manager.using(vae):
            builder.restore(tensors, state, first, decode)
        log.info("resuming %s at section %d of %d", work, first, n)
        yield StageEvent(f"resuming at section {first + 1} of {n}")
    else:
        workdir.clear_work(work)

    preview_scale = max(1, 128 // h8)  # previews of small buckets are scaled up to stay visible
    clock = StepClock(n, len(sigmas) - 1, first)  # the ETA: measured steps, then whole sections
    budget = PreviewBudget(job)
    for k in range(first, n):
        section_start = time.perf_counter()
        noise = torch.randn((1, 16, lws, h8, w8), generator=gen)
        ci = builder.clean_inputs(k)
        pos = cond.mix_embeddings(prep.prompt_embs, prep.section_weights[builder.prompt_section(k)])
        denoise = make_denoiser(velocity_fn(manager, transformer, prep, pos, ci, params, job), params.cfg,
                                params.cfg_rescale)
        manager.before_section(transformer, tokens=section_tokens(ci, h8, w8))
        previewer = (lambda m: prep.previewer(m, scale=preview_scale)) if prep.previewer else None
        generated = yield from sample_section(transformer, denoise, noise, sigmas, cache, clock, k, n, cancel,
                                              previewer)
        if cache is not None:
            computed_log.append(list(cache.computed_log[-1]))
        if tr is not None:
            tr[f"section{k:02d}.noise"] = noise
            tr[f"section{k:02d}.indices"] = ci.indices
            tr[f"section{k:02d}.clean_inputs"] = ci
            tr[f"section{k:02d}.generated_latents"] = generated
        with job.timer("vae_decode"), manager.using(vae):
            frames = builder.add(k, generated, decode)
        segment = _encode_final(work, f"seg_{k:04d}.mp4", frames, out.crf, job, k)
        if segment is not None:
            segments[k] = segment
        tensors, facts = builder.checkpoint()
        workdir.save_checkpoint(work, fingerprint, k, {"rng": gen.get_state(), **tensors},
                                {**facts, "segments": {str(i): s for i, s in segments.items()},
                                 "computed_log": computed_log})
        preview = None
        if k < n - 1 and out.preview_wanted is not None and out.preview_wanted() and budget.allows():
            with job.timer("preview"):
                preview = write_preview(work, builder, segments, out.crf, job)
        clock.section_done(time.perf_counter() - section_start)
        yield SectionEvent(k, n, builder.frames_so_far, preview)

    cancel.raise_if_cancelled()
    yield StageEvent("writing video")
    tail = _encode_final(work, "seg_end.mp4", builder.flush(), out.crf, job, -1)
    if tail is not None:
        segments[-1] = tail
    if tr is not None:
        chunks = video_order(builder.forward, tr.pop("final_chunks"))
        tr["frames"] = np.concatenate([c for c in chunks if len(c)], axis=0)
    paths = [work / s for s in video_order(builder.forward, segments)]
    yield DoneEvent(finish_outputs(job, params, out, repro, paths, builder.history_latents(), computed_log,
                                   latents_metadata=latents_metadata))


def _encode_final(work: Path, name: str, frames: Frames, crf: int, job: JobContext, k: int) -> str | None:
    """Encode the final frames as the closed segment `name`; None when there are none yet."""
    it = iter(frames)
    head = next(it, None)
    if job.trace is not None:  # tests compare the frames written, per section
        chunk = np.stack([head, *it]) if head is not None else np.zeros((0, 1, 1, 3), np.uint8)
        job.trace.setdefault("final_chunks", {})[k] = chunk
        it = iter(chunk[1:])
    if head is None:
        return None
    with job.timer("video_encode"):
        encode_segment(work / name, _counted(itertools.chain([head], it), job), FPS, crf)
    return name


def _counted(frames: Iterator[np.ndarray], job: JobContext) -> Iterator[np.ndarray]:
    for frame in frames:
        job.frames_encoded += 1
        yield frame


class PreviewBudget:
    """Keeps the growing preview to about 2 % of the job's time: a preview is built only while the time
    spent on previews so far, plus the last one's cost, stays within that share of the time since the start."""

    SHARE = 0.02

    def __init__(self, job: JobContext) -> None:
        self.job = job

    def allows(self) -> bool:
        spent = self.job.timings.preview
        elapsed = time.perf_counter() - self.job.started
        return spent == 0.0 or spent * (1 + 1 / max(self.job.previews, 1)) <= self.SHARE * elapsed


def video_order(forward: bool, per_section: dict[int, Any]) -> list[Any]:
    """Values of a per-section dict (key -1 = the frames after the last section) in video-time order."""
    keys = sorted(k for k in per_section if k >= 0)
    body = [per_section[k] for k in (keys if forward else reversed(keys))]
    tail = [per_section[-1]] if -1 in per_section else []
    return body + tail if forward else tail + body


def write_preview(work: Path, builder: SectionBuilder, segments: dict[int, str], crf: int,
                  job: JobContext) -> Path | None:
    """The growing preview: the final segments plus the pending frames, joined by stream copy."""
    job.previews += 1
    try:
        segs = dict(segments)
        pending = builder.pending
        if pending is not None and pending.shape[2] > 0:
            encode_segment(work / workdir.PENDING_NAME, cond.pixels_to_uint8(pending), FPS, crf)
            job.frames_encoded += pending.shape[2]
            segs[-1] = workdir.PENDING_NAME
        order = video_order(builder.forward, segs)
        if not order:
            return None
        join_segments([work / s for s in order], work / workdir.PREVIEW_NAME, FPS)
        return work / workdir.PREVIEW_NAME
    except Exception:  # the preview is a convenience; never fail the job for it
        log.exception("preview video failed")
        return None


# ------------------------------------------------------------------------------------------------ sampling


def velocity_fn(manager: Any, transformer: Any, prep: Prepared, pos: cond.PromptEmbedding, ci: sec.CleanInputs,
                params: GenerationParams, job: JobContext) -> Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]:
    """The transformer as the sampler sees it: (x, sigma, positive) -> velocity, on the CPU in float32."""
    dev, dt = manager.device, manager.dtype

    def to(t: torch.Tensor) -> torch.Tensor:
        return t.to(dev, dt)

    def on_device(e: cond.PromptEmbedding) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return to(e.llama_vec), e.llama_mask.to(dev), to(e.clip_pooled)

    common = dict(
        image_embeds=to(prep.image_embeds), indices_latents=ci.indices.latent.to(dev),
        guidance=torch.tensor([params.distilled_cfg * 1000.0]).to(dev, dt),
        latents_clean=to(ci.clean), indices_latents_clean=ci.indices.clean.to(dev),
        latents_history_2x=to(ci.clean_2x), indices_latents_history_2x=ci.indices.clean_2x.to(dev),
        latents_history_4x=to(ci.clean_4x), indices_latents_history_4x=ci.indices.clean_4x.to(dev),
        return_dict=False)
    # The negative goes to the device on first use only: at cfg 1 the sampler never asks for it.
    embs = {True: on_device(pos)}
    last: list[Any] = [None, None, None]  # (x, sigma, device inputs): CFG's two calls per step share them

    def velocity(x: torch.Tensor, sigma: torch.Tensor, positive: bool) -> torch.Tensor:
        if positive not in embs:
            embs[positive] = on_device(prep.negative if prep.negative is not None else pos.zeros_like())
        vec, mask, pooled = embs[positive]
        with job.timer("transformer"):
            if last[0] is not x or last[1] is not sigma:
                last[:] = [x, sigma, (x.to(dev, dt), (sigma.float() * 1000).to(dev, dt))]
            x_dev, ts = last[2]
            v = transformer(hidden_states=x_dev, timestep=ts,
                            encoder_hidden_states=vec, encoder_attention_mask=mask,
                            pooled_projections=pooled, **common)[0]
        return v.float().cpu() if dev.type != "cpu" else v.float()

    return velocity


def sample_section(transformer: Any, denoise: Any, noise: torch.Tensor, sigmas: torch.Tensor, cache: Any,
                   clock: StepClock, section: int, sections: int, cancel: CancelToken,
                   preview: Callable[[torch.Tensor], np.ndarray] | None = None) -> Iterator:
    """UniPC over one section (inside the step cache when there is one), a StepEvent per step.

    `generated = yield from sample_section(...)`; cancel is checked before every step.
    preview: latents -> image for the StepEvent, or None.
    """
    steps = len(sigmas) - 1
    if cache is not None:
        cache.start_section(steps)
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
            eta = clock.tick(time.perf_counter() - t0)
            yield StepEvent(section, sections, i + 1, steps, eta, preview(generated) if preview else None)
    assert generated is not None
    return generated


def section_tokens(ci: sec.CleanInputs, h8: int, w8: int) -> int:
    """Image tokens of one transformer call: noisy + 1x clean (2x2 patches), 2x and 4x history."""
    per_frame = (h8 // 2) * (w8 // 2)
    return ((len(ci.indices.latent) + ci.clean.shape[2]) * per_frame
            + per_frame // 4 + 4 * per_frame // 64)
