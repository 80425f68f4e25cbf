"""The one entry point of generation: Engine.generate(params, output options, cancel) -> events.

CONTRACT (callers - CLI, queue worker, grid - rely on exactly this):

    engine = Engine(manager)                       # manager: modules.models.manager.ModelManager
    for event in engine.generate(params, OutputOptions(...), cancel_token):   # OutputOptions: outputs.py
        ...                                        # StageEvent / StepEvent / SectionEvent, last DoneEvent

* check inputs first (clear InputError naming the field, before any model loads),
* raise CancelledError (modules/cancel.py) within one sampler step of cancel_token.cancel(); no final file exists then,
* every finished section checkpoints into OutputOptions.work_dir so a rerun on the same work_dir resumes.

Flow: check inputs -> prepare (bucket, encoders, VAE; video types: video_runner.py) -> the one section loop
(section_loop.py, with the type's SectionBuilder: image_sections.py or video_runner.py) -> the job's files
(outputs.py). A Grid job runs every cell through generate() (grid.py). Latents are (batch, 16, time, height/8, width/8);
pixels are float in [-1, 1], (batch, 3, time, height, width).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modules.cancel import CancelToken
from modules.framepack import conditioning as cond
from modules.framepack import grid
from modules.framepack import metadata as meta
from modules.framepack import prompts
from modules.framepack import sections as sec
from modules.framepack.buckets import find_bucket, resize_and_center_crop
from modules.framepack.events import StageEvent
from modules.framepack.image_sections import ImageSections
from modules.framepack.inputs import check_inputs, load_image_rgb
from modules.framepack.outputs import OutputOptions
from modules.framepack.params import FPS, GenerationParams, GenerationType
from modules.framepack.plan import JobContext, Prepared, SectionPlan, plan_for
from modules.framepack.section_loop import run_sections
from modules.framepack.video_runner import run_video_generation
from modules.media.preview import LatentPreviewer
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
                yield from self._generate_image(params, out, cancel, job)

    def _generate_image(self, params: GenerationParams, out: OutputOptions, cancel: CancelToken,
                        job: JobContext) -> Iterator:
        """Original, Original with Endframe, F1: prepare the inputs, then the one section loop."""
        plan = plan_for(params)
        Path(out.work_dir).mkdir(parents=True, exist_ok=True)
        cancel.raise_if_cancelled()
        yield StageEvent("loading models")
        transformer = self.load_transformer(params, job)
        bh, bw = bucket_for(params)
        yield StageEvent(f"encoding inputs (resolution bucket {bw}x{bh})")  # the snapped size, reported
        prep = self.prepare(params, plan, job)
        cancel.raise_if_cancelled()
        repro = meta.reproduction(params, self._derived(params, plan, prep))
        yield from run_sections(self.manager, params, out, cancel, job, plan=plan, prep=prep,
                                builder=ImageSections(params, plan, prep), transformer=transformer, repro=repro)

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
        return self.manager.using(*models)

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


__all__ = ["Engine", "bucket_for"]
