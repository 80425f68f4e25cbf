"""The one entry point of generation: Engine.generate(params, output options, cancel) -> events.

CONTRACT (callers - CLI, queue worker, grid - rely on exactly this):

    engine = Engine(manager)                       # manager: modules.models.manager.ModelManager
    for event in engine.generate(params, OutputOptions(...), cancel_token):   # OutputOptions: outputs.py
        ...                                        # StageEvent / StepEvent / SectionEvent, last DoneEvent

* check inputs first (clear InputError naming the field, before any model loads),
* raise CancelledError (modules/cancel.py) within one sampler step of cancel_token.cancel(); no final file exists then,
* every finished section checkpoints into OutputOptions.work_dir so a rerun on the same work_dir resumes.

Flow: check inputs -> prepare (bucket, encoders, VAE) -> per-section loop (noise, clean latents, UniPC,
history, decode with overlap cross-fade, final frames encoded as closed segments, checkpoint) -> join the
segments by stream copy -> thumbnail, sidecar, latents. Latents are (batch, 16, time, height/8, width/8);
pixels are float in [-1, 1], (batch, 3, time, height, width).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modules.cancel import CancelledError, CancelToken
from modules.framepack import conditioning as cond
from modules.framepack import grid
from modules.framepack import metadata as meta
from modules.framepack import prompts
from modules.framepack import sections as sec
from modules.framepack import workdir
from modules.framepack.buckets import find_bucket, resize_and_center_crop
from modules.framepack.cache import make_step_cache
from modules.framepack.events import DoneEvent, GenerationResult, SectionEvent, StageEvent, StepEvent
from modules.framepack.inputs import InputError, check_inputs, load_image_rgb
from modules.framepack.outputs import OutputOptions, finish_outputs
from modules.framepack.params import FPS, GenerationParams, GenerationType
from modules.framepack.plan import JobContext, Prepared, SectionPlan, StepClock, plan_for
from modules.framepack.sampler import flow_sigmas, make_denoiser, seq_len_for, unipc_steps
from modules.framepack.video_runner import run_video_generation
from modules.media.preview import LatentPreviewer
from modules.media.segments import encode_segment, join_segments
from modules.memory.rss import RSSMonitor
from modules.models.determinism import apply_determinism

log = logging.getLogger(__name__)


def bucket_for(params: GenerationParams) -> tuple[int, int]:
    """(height, width) of the resolution bucket the job will use (start image aspect, else the request)."""
    hw = None
    if params.start_image is not None and Path(params.start_image).is_file():
        with Image.open(params.start_image) as im:
            hw = (im.height, im.width)
    return find_bucket(params.width, params.height, hw)


class Engine:
    """Shared across jobs (it holds only the model manager); each generate() call has its own JobContext."""

    def __init__(self, manager) -> None:
        self.manager = manager

    # ---------------------------------------------------------------------------------------------- public
    def generate(self, params: GenerationParams, out: OutputOptions, cancel: CancelToken | None = None,
                 trace: dict[str, Any] | None = None) -> Iterator:
        """The job's events; `trace` (tests): a dict that receives the intermediate tensors."""
        cancel = cancel or CancelToken()
        if params.generation_type == GenerationType.GRID:
            yield from grid.run_grid(self, params, out, cancel)  # each cell is a generate() call of its own
            return
        check_inputs(params)
        apply_determinism(self.manager.config.deterministic)
        # Peak RSS of this job alone (the process-wide peak only grows across a server's jobs).
        with RSSMonitor() as monitor:
            job = JobContext(self.manager.device, rss_monitor=monitor, trace=trace)
            if params.generation_type.is_video:
                yield from run_video_generation(self, params, out, cancel, job)
            else:
                yield from self._generate(params, out, cancel, job)

    # ---------------------------------------------------------------------------------------------- prepare
    def load_transformer(self, params: GenerationParams, job: JobContext) -> Any:
        """The job's transformer kind, carrying exactly the job's LoRAs (none removes the previous job's)."""
        with job.timer("loading"):
            transformer = self.manager.transformer(params.transformer_kind)
            self.manager.apply_loras(list(params.loras))
        return transformer

    def prepare(self, params: GenerationParams, plan: SectionPlan, job: JobContext) -> Prepared:
        """Bucket, start/end/keyframe latents, image embedding and prompt embeddings."""
        height, width = bucket_for(params)
        with job.timer("loading"):
            m = self.manager.shared()
        if params.start_image is not None:
            start = resize_and_center_crop(load_image_rgb(params.start_image), width, height)
        else:
            start = cond.latent_image(params.latent_image, height, width, params.seed)
        with job.timer("vae_encode"), self.using(m.vae):
            start_latent = cond.vae_encode(cond.image_to_tensor(start), m.vae).cpu()
            end_latent = None
            end_img = None
            if params.end_image is not None and params.generation_type.uses_end_frame:
                end_img = resize_and_center_crop(load_image_rgb(params.end_image), width, height)
                end_latent = cond.vae_encode(cond.image_to_tensor(end_img), m.vae).cpu()
            keyframes: dict[int, torch.Tensor] = {}
            for kf in sorted(params.keyframes, key=lambda k: k.seconds):
                v = sec.section_for_time(kf.seconds, plan.sections, plan.latent_window_size)
                img = resize_and_center_crop(load_image_rgb(kf.image), width, height)
                keyframes[v] = cond.vae_encode(cond.image_to_tensor(img), m.vae).cpu()
        image_embeds, embs, weights, negative = self.encode_conditioning(params, plan, m, start, end_img, job)
        return Prepared(height, width, start, start_latent, end_latent, image_embeds, embs, weights, negative,
                        keyframes, LatentPreviewer.fit(start_latent, start))

    def using(self, *models: Any):
        """Context manager: these encoders/VAE are on the device for the block (the manager's memory policy)."""
        return self.manager.using(*models) if hasattr(self.manager, "using") else nullcontext()

    def encode_conditioning(self, params: GenerationParams, plan: SectionPlan, m: Any, image: np.ndarray,
                            end_img: np.ndarray | None, job: JobContext
                            ) -> tuple[torch.Tensor, list[cond.PromptEmbedding], list[dict[int, float]],
                                       cond.PromptEmbedding | None]:
        """SigLIP embedding of `image` (blended toward the end frame), the prompt schedule and its embeddings.

        Returns (image_embeds, prompt embeddings, per-section weights, negative embedding or None at cfg 1).
        """
        with job.timer("image_encoder"), self.using(m.image_encoder):
            image_embeds = cond.encode_image_siglip(image, m.feature_extractor, m.image_encoder)
            if end_img is not None and params.end_frame_embedding_blend > 0:
                b = params.end_frame_embedding_blend
                end_embeds = cond.encode_image_siglip(end_img, m.feature_extractor, m.image_encoder)
                image_embeds = (1 - b) * image_embeds + b * end_embeds
        texts, weights = self.prompt_schedule(params, plan)
        with job.timer("text_encoders"), self.using(m.text_encoder, m.text_encoder_2):
            embs = [cond.encode_prompt(t, m.tokenizer, m.text_encoder, m.tokenizer_2, m.text_encoder_2,
                                       params.system_prompt) for t in texts]
            negative = None
            if params.cfg != 1.0:
                negative = cond.encode_prompt(params.negative_prompt, m.tokenizer, m.text_encoder, m.tokenizer_2,
                                              m.text_encoder_2, params.system_prompt)
        return image_embeds, embs, weights, negative

    def prompt_schedule(self, params: GenerationParams, plan: SectionPlan) -> tuple[list[str], list[dict[int, float]]]:
        """Distinct prompt texts and per-section (video-time) weights over them."""
        segments = prompts.parse_timestamped_prompt(params.prompt)
        starts = sec.section_start_seconds(plan.sections, plan.latent_window_size)
        return [s.text for s in segments], prompts.section_prompt_weights(segments, starts, params.blend_sections)

    # ---------------------------------------------------------------------------------------------- sampling
    def velocity_fn(self, transformer, prep: Prepared, pos: cond.PromptEmbedding, ci: sec.CleanInputs,
                    params: GenerationParams, job: JobContext):
        dev, dt = self.manager.device, self.manager.dtype

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

    # ---------------------------------------------------------------------------------------------- main loop
    def _generate(self, params: GenerationParams, out: OutputOptions, cancel: CancelToken,
                  job: JobContext) -> Iterator:
        t_start = time.perf_counter()
        plan = plan_for(params)
        lws = plan.latent_window_size
        work = Path(out.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        cancel.raise_if_cancelled()

        yield StageEvent("loading models")
        transformer = self.load_transformer(params, job)
        bh, bw = bucket_for(params)
        yield StageEvent(f"encoding inputs (resolution bucket {bw}x{bh})")  # the snapped size, reported
        prep = self.prepare(params, plan, job)
        cancel.raise_if_cancelled()
        derived = self._derived(params, plan, prep)
        repro = meta.reproduction(params, derived)
        fingerprint = meta.comment_text(repro)

        cache = make_step_cache(params)
        sigmas = flow_sigmas(params.steps, seq_len_for(lws, prep.height, prep.width))
        tr = job.trace
        if tr is not None:
            tr.update(prepared=prep, sigmas=sigmas, plan=plan)
        overlap = sec.overlap_frames(lws)
        h8, w8 = prep.height // 8, prep.width // 8

        # State (fresh or resumed).
        gen = torch.Generator("cpu").manual_seed(params.seed)
        if plan.forward:
            history: Any = sec.F1History(prep.start_latent)
        else:
            history = sec.OriginalHistory(prep.start_latent)
            if prep.end_latent is not None:
                history.place_end(prep.end_latent, params.end_frame_strength)
        assembler = sec.PixelAssembler(prepend=not plan.forward, overlap=overlap)
        segments: dict[int, str] = {}
        computed_log: list[list[bool]] = []
        first_section = 0
        ckpt = workdir.load_checkpoint(work, fingerprint)
        if ckpt is not None:
            state, tensors = ckpt
            history.buffer, history.total = tensors["history"], int(state["history_total"])
            gen.set_state(tensors["rng"])
            assembler.pending = tensors.get("pending")
            assembler.frames_total = int(state["frames_total"])
            segments = {int(k): v for k, v in state["segments"].items()}
            computed_log = state["computed_log"]
            first_section = int(state["section_done"]) + 1
            log.info("resuming %s at section %d of %d", work, first_section, plan.sections)
            yield StageEvent(f"resuming at section {first_section + 1} of {plan.sections}")
        else:
            workdir.clear_work(work)

        clock = StepClock(plan.sections * params.steps, first_section * params.steps)
        for k in range(first_section, plan.sections):
            v = plan.video_index(k)
            noise = torch.randn((1, 16, lws, h8, w8), generator=gen)
            is_last = k == plan.sections - 1
            keyframe = prep.keyframe_latents.get(v)
            if plan.forward:
                post = keyframe
                if is_last and prep.end_latent is not None:
                    post = prep.end_latent if params.end_frame_strength == 1.0 \
                        else prep.end_latent * params.end_frame_strength
                ci = history.clean_inputs(lws, post=post)
            else:
                ci = history.clean_inputs(plan.paddings[k], lws, post_override=keyframe)
            pos = cond.mix_embeddings(prep.prompt_embs, prep.section_weights[v])
            denoise = make_denoiser(self.velocity_fn(transformer, prep, pos, ci, params, job), params.cfg,
                                    params.cfg_rescale)
            if hasattr(self.manager, "before_section"):
                self.manager.before_section(transformer, tokens=self.section_tokens(ci, h8, w8))
            scale = max(1, 128 // h8)
            generated = yield from self.sample_section(
                transformer, denoise, noise, sigmas, cache, clock, k, plan.sections, cancel,
                (lambda m: prep.previewer(m, scale=scale)) if prep.previewer else None)
            if tr is not None:
                tr[f"section{k:02d}.noise"] = noise
                tr[f"section{k:02d}.indices"] = ci.indices
                tr[f"section{k:02d}.clean_inputs"] = ci
                tr[f"section{k:02d}.generated_latents"] = generated
            if cache is not None:
                computed_log.append(list(cache.computed_log[-1]))
            history.add(generated, is_last) if not plan.forward else history.add(generated)
            # Decode the newest latents and cross-fade them into the video.
            if plan.forward:
                window = history.decode_window(lws, first=k == 0)
            else:
                window = history.decode_window(lws, first=k == 0, is_last=is_last)
            vae = self.manager.shared().vae
            with job.timer("vae_decode"), self.using(vae):
                pixels = cond.vae_decode(window, vae)
            final = assembler.add(pixels)
            if tr is not None:
                tr.setdefault("final_chunks", {})[k] = cond.pixels_to_uint8(final)
            if final.shape[2] > 0:
                segments[k] = f"seg_{k:04d}.mp4"
                with job.timer("video_encode"):
                    encode_segment(work / segments[k], cond.pixels_to_uint8(final), FPS, out.crf)
            self._save_checkpoint(work, fingerprint, k, history, gen, assembler, segments, computed_log)
            preview = self._write_preview(work, plan, segments, assembler, out.crf)
            yield SectionEvent(k, plan.sections, assembler.frames_total, preview)

        cancel.raise_if_cancelled()
        yield StageEvent("writing video")
        result = self._finish(params, out, plan, prep, repro, history, assembler, segments, computed_log,
                              t_start, job)
        yield DoneEvent(result)

    def sample_section(self, transformer: Any, denoise: Any, noise: torch.Tensor, sigmas: torch.Tensor,
                       cache: Any, clock: StepClock, section: int, sections: int, cancel: CancelToken,
                       preview: Any = None) -> Iterator:
        """UniPC over one section (inside the step cache when there is one), a StepEvent per step.

        `generated = yield from engine.sample_section(...)`; cancel is checked before every step.
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

    @staticmethod
    def section_tokens(ci: sec.CleanInputs, h8: int, w8: int) -> int:
        """Image tokens of one transformer call: noisy + 1x clean (2x2 patches), 2x and 4x history."""
        per_frame = (h8 // 2) * (w8 // 2)
        return ((len(ci.indices.latent) + ci.clean.shape[2]) * per_frame
                + per_frame // 4 + 4 * per_frame // 64)

    # ---------------------------------------------------------------------------------------------- outputs
    def _derived(self, params: GenerationParams, plan: SectionPlan, prep: Prepared) -> dict[str, Any]:
        latent_frames = sec.total_latent_frames(plan.sections, plan.latent_window_size)
        return {"bucket_width": prep.width, "bucket_height": prep.height, "sections": plan.sections,
                "latent_frames": latent_frames, "frames": sec.pixel_frames(latent_frames), "fps": FPS,
                **self.runtime_facts(plan, prep)}

    def runtime_facts(self, plan: SectionPlan, prep: Prepared) -> dict[str, Any]:
        """Derived metadata fields every type records: transformer, model set, device, dtype, prompt segments."""
        return {"transformer": plan.kind.value, "model_set": self.manager.config.model_set.value,
                "device": self.manager.device.type, "dtype": str(self.manager.dtype).replace("torch.", ""),
                "prompt_segments": len(prep.prompt_embs)}

    def video_order(self, plan: SectionPlan, segments: dict[int, Any]) -> list[Any]:
        """Values of a per-section dict (key -1 = the trailing flush) in video-time order."""
        keys = sorted(k for k in segments if k >= 0)
        body = [segments[k] for k in (keys if plan.forward else reversed(keys))]
        tail = [segments[-1]] if -1 in segments else []
        return body + tail if plan.forward else tail + body

    def _write_preview(self, work: Path, plan: SectionPlan, segments: dict[int, str],
                       assembler: sec.PixelAssembler, crf: int) -> Path | None:
        """The growing preview: final segments plus the pending frames, joined by stream copy."""
        try:
            segs = dict(segments)
            if assembler.pending is not None and assembler.pending.shape[2] > 0:
                encode_segment(work / workdir.PENDING_NAME, cond.pixels_to_uint8(assembler.pending), FPS, crf)
                segs[-1] = workdir.PENDING_NAME
            order = self.video_order(plan, segs)
            if not order:
                return None
            join_segments([work / s for s in order], work / workdir.PREVIEW_NAME, FPS)
            return work / workdir.PREVIEW_NAME
        except Exception:  # the preview is a convenience; never fail the job for it
            log.exception("preview video failed")
            return None

    def _finish(self, params: GenerationParams, out: OutputOptions, plan: SectionPlan, prep: Prepared,
                repro: dict[str, Any], history: Any, assembler: sec.PixelAssembler, segments: dict[int, str],
                computed_log: list[list[bool]], t_start: float, job: JobContext) -> GenerationResult:
        work = Path(out.work_dir)
        rest = assembler.flush()
        if job.trace is not None:
            chunks = {**job.trace.get("final_chunks", {}), -1: cond.pixels_to_uint8(rest)}
            order = self.video_order(plan, chunks)
            job.trace["frames"] = np.concatenate([c for c in order if len(c)], axis=0)
        if rest.shape[2] > 0:
            segments = {**segments, -1: "seg_end.mp4"}
            with job.timer("video_encode"):
                encode_segment(work / "seg_end.mp4", cond.pixels_to_uint8(rest), FPS, out.crf)
        return finish_outputs(job, params, out, repro, [work / s for s in self.video_order(plan, segments)],
                              history.real(), computed_log, t_start)

    # ---------------------------------------------------------------------------------------------- resume
    def _save_checkpoint(self, work: Path, fingerprint: str, k: int, history: Any, gen: torch.Generator,
                         assembler: sec.PixelAssembler, segments: dict[int, str],
                         computed_log: list[list[bool]]) -> None:
        tensors = {"history": history.buffer.contiguous(), "rng": gen.get_state()}
        if assembler.pending is not None:
            tensors["pending"] = assembler.pending.contiguous()
        workdir.save_checkpoint(work, fingerprint, k, tensors, {
            "history_total": history.total, "frames_total": assembler.frames_total,
            "segments": {str(i): s for i, s in segments.items()}, "computed_log": computed_log})


__all__ = ["Engine", "bucket_for"]
