"""Generate tab: the job form (derived from GenerationParams), presets, Add to Queue, and the live view.

Add to Queue validates and enqueues, then returns; the live view follows the worker through the queue
store with a gr.Timer, so a refreshed page re-attaches to the running job.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from modules.framepack.params import CacheType, GenerationParams, GenerationType, LatentImage, LoraSpec
from modules.models.lora import list_loras as lora_files
from studio.ui import fields as F
from studio.ui.bucket import bucket_text
from studio.ui.form import (GRID_NONE, GRID_PARAMETERS, SCALAR_FIELDS, build_params, form_values,
                            format_errors, parse_keyframe_seconds, params_from_metadata)
from studio.ui.presets import PresetError, PresetStore
from studio.ui.services import JobView, Services, SharedState
from studio.ui.uploads import UploadError, check_image, check_video, file_path

log = logging.getLogger(__name__)
G = GenerationParams
MAX_LORAS = next(m.max_length for m in G.model_fields["loras"].metadata if hasattr(m, "max_length"))

PROMPT_HELP = (
    "Timestamps steer the video over time: `[0s: a cat sits] [2.5s: the cat jumps]`. "
    "Text without a timestamp starts at 0 s. *Number of sections to blend* smooths each change."
)

START_TYPES = {GenerationType.ORIGINAL, GenerationType.ORIGINAL_ENDFRAME, GenerationType.F1, GenerationType.GRID}


def visibility(gen_type: str) -> dict[str, bool]:
    """Which input groups the given type shows."""
    gt = GenerationType(gen_type)
    return {
        "start": gt in START_TYPES,
        "batch": gt in START_TYPES - {GenerationType.GRID},
        "video": gt.is_video,
        "end": gt.uses_end_frame,
        "latent": gt != GenerationType.GRID,
        "keyframes": gt != GenerationType.GRID and not gt.is_video,
        "grid": gt == GenerationType.GRID,
    }


def list_loras(folder: Path) -> list[str]:
    return lora_files(folder)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def live_html(job: JobView | None) -> str:
    if job is None:
        return "<div id='live-status'>No job yet. Fill the form and press <b>Add to Queue</b>.</div>"
    parts = [f"<b>Job {job.id}</b> · {job.type} · <span class='status-{job.status.lower()}'>{job.status}</span>"]
    if job.status == "RUNNING":
        if job.total_sections:
            sec = (job.section or 0) + 1
            parts.append(f"Section {sec}/{job.total_sections}")
        if job.total_steps:
            parts.append(f"Step {job.step or 0}/{job.total_steps}")
            done = ((job.section or 0) * job.total_steps + (job.step or 0)) / max(
                1, (job.total_sections or 1) * job.total_steps)
            parts.append(f"ETA {_fmt_eta(job.eta_seconds)}")
            bar = (f"<div class='fp-bar'><div class='fp-bar-fill' style='width:{100 * done:.0f}%'></div></div>")
        else:
            bar = ""
        if job.stage:
            parts.append(job.stage)
        return f"<div id='live-status'>{' · '.join(parts)}{bar}</div>"
    if job.status == "FAILED" and job.error:
        parts.append(f"<br><span class='fp-error'>{html.escape(job.error.splitlines()[0][:300], quote=False)}</span>")
    if job.status == "COMPLETED" and job.video:
        parts.append(f"Output: {job.video.name}")
    return f"<div id='live-status'>{' · '.join(parts)}</div>"


def followed_job(services: Services) -> JobView | None:
    """The running job, else the newest job: what the live view shows (same answer after a page refresh)."""
    jobs = services.queue.list()
    running = [j for j in jobs if j.status == "RUNNING"]
    if running:
        return running[0]
    return max(jobs, key=lambda j: j.created or 0.0, default=None)


def build(services: Services, shared: SharedState) -> None:
    presets = PresetStore(services.presets_dir)
    default_type = F.default(G, "generation_type")
    vis = visibility(default_type)
    c: dict[str, Any] = {}  # GenerationParams field -> component

    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            c["generation_type"] = gr.Dropdown([t.value for t in GenerationType], value=default_type,
                                               label="Generation Type", elem_id="generation_type")
            with gr.Row():
                with gr.Column(visible=vis["start"], min_width=200) as start_group:
                    start_file = gr.File(label="Start Frame (optional)", file_types=["image"],
                                         elem_id="start_image", height=120)
                    start_preview = gr.Image(label="Start frame preview", interactive=False, height=160,
                                             type="filepath",
                                             show_label=False, elem_id="start_preview")
                with gr.Column(visible=vis["video"], min_width=200) as video_group:
                    video_file = gr.File(label="Video Input", file_types=["video"], elem_id="input_video",
                                         height=120)
                    video_preview = gr.Video(label="Video preview", interactive=False, height=160,
                                             show_label=False, elem_id="video_preview")
                with gr.Column(visible=vis["end"], min_width=200) as end_group:
                    end_file = gr.File(label="End Frame (optional)", file_types=["image"], elem_id="end_image",
                                       height=120)
                    end_preview = gr.Image(label="End frame preview", interactive=False, height=160, type="filepath",
                                           show_label=False, elem_id="end_preview")
            upload_msg = gr.Markdown("", elem_id="upload_msg")
            with gr.Group(visible=vis["end"]) as end_opts:
                c["end_frame_strength"] = F.slider(G, "end_frame_strength", "End Frame Influence")
                c["end_frame_embedding_blend"] = F.slider(G, "end_frame_embedding_blend", "End frame embedding blend")
            with gr.Group(visible=vis["video"]) as video_opts:
                c["num_context_frames"] = F.slider(G, "num_context_frames",
                                                   "Number of Context Frames (Adherence to Video)")
                c["combine_with_source"] = F.checkbox(G, "combine_with_source", "Combine with source video")
            c["latent_image"] = F.dropdown_enum(G, "latent_image", LatentImage, "Latent Image", visible=vis["latent"])
            with gr.Accordion("Batch: one job per start image", open=False, visible=vis["batch"]) as batch_group:
                batch_files = gr.File(label="Start images (batch)", file_count="multiple", file_types=["image"],
                                      elem_id="batch_images")
            with gr.Accordion("Section keyframes", open=False, visible=vis["keyframes"]) as keyframe_group:
                keyframe_files = gr.File(label="Keyframe images", file_count="multiple", file_types=["image"],
                                         elem_id="keyframe_images")
                keyframe_secs = gr.Textbox(label="Keyframe times (seconds, comma-separated, in upload order)",
                                           placeholder="2, 4.5", elem_id="keyframe_seconds")
            with gr.Group(visible=vis["grid"]) as grid_group:
                gr.Markdown("**Grid**: every combination of the X and Y values runs as one cell of a grid video.")
                c["grid_model"] = gr.Radio(["Original", "F1"], value=F.default(G, "grid_model"), label="Grid model",
                                           elem_id="grid_model")
                with gr.Row():
                    grid_x_param = gr.Dropdown(list(GRID_PARAMETERS), value="steps", label="X axis parameter",
                                               elem_id="grid_x_param")
                    grid_x_values = gr.Textbox(label="X values (comma-separated; prompts one per line)",
                                               elem_id="grid_x_values", lines=1)
                with gr.Row():
                    grid_y_param = gr.Dropdown([GRID_NONE, *GRID_PARAMETERS], value=GRID_NONE,
                                               label="Y axis parameter", elem_id="grid_y_param")
                    grid_y_values = gr.Textbox(label="Y values", elem_id="grid_y_values", lines=1)

            c["prompt"] = gr.Textbox(F.default(G, "prompt"), label="Prompt", lines=3, elem_id="prompt",
                                     info=G.model_fields["prompt"].description)
            gr.Markdown(PROMPT_HELP, elem_id="prompt_help")
            c["negative_prompt"] = gr.Textbox(F.default(G, "negative_prompt"), label="Negative Prompt", lines=1,
                                              elem_id="negative_prompt")
            c["blend_sections"] = F.slider(G, "blend_sections", "Number of sections to blend between prompts")

            with gr.Row():
                c["steps"] = F.slider(G, "steps", "Steps")
                c["total_seconds"] = F.slider(G, "total_seconds", "Video Length (Seconds)", step=0.1)
            with gr.Row():
                c["width"] = F.slider(G, "width", "Width", step=16)
                c["height"] = F.slider(G, "height", "Height", step=16)
            bucket_md = gr.Markdown(bucket_text(F.default(G, "width"), F.default(G, "height")), elem_id="bucket")
            with gr.Row():
                c["seed"] = F.number(G, "seed", "Seed")
                randomize = gr.Checkbox(value=False, label="Randomize", elem_id="randomize",
                                        info="A new random seed for each job")

            with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                c["cache_type"] = gr.Radio([t.value for t in CacheType], value=F.default(G, "cache_type"),
                                           label="Step cache", elem_id="cache_type",
                                           info="TeaCache / MagCache skip transformer calls; may soften fine details")
                with gr.Group(visible=F.default(G, "cache_type") == CacheType.TEACACHE.value) as tea_group:
                    tea_steps = gr.Number(value=F.default(G, "steps"), label="TeaCache steps (= Steps)",
                                          interactive=False, elem_id="teacache_steps")
                    c["teacache_threshold"] = F.slider(G, "teacache_threshold", "TeaCache rel_l1_thresh")
                with gr.Group(visible=F.default(G, "cache_type") == CacheType.MAGCACHE.value) as mag_group:
                    c["magcache_threshold"] = F.slider(G, "magcache_threshold", "MagCache threshold")
                    c["magcache_max_consecutive_skips"] = F.slider(G, "magcache_max_consecutive_skips",
                                                                   "MagCache max consecutive skips")
                    c["magcache_retention_ratio"] = F.slider(G, "magcache_retention_ratio", "MagCache retention ratio")
                c["distilled_cfg"] = F.slider(G, "distilled_cfg", "Distilled CFG Scale", step=0.1)
                with gr.Row():
                    c["cfg"] = F.slider(G, "cfg", "CFG Scale", step=0.05)
                    c["cfg_rescale"] = F.slider(G, "cfg_rescale", "CFG Re-Scale")
                c["latent_window_size"] = F.slider(G, "latent_window_size", "Latent Window Size")

            with gr.Accordion("LoRAs & Metadata", open=False, elem_id="loras_acc"):
                with gr.Row():
                    lora_select = gr.Dropdown(list_loras(services.lora_dir), multiselect=True, value=[],
                                              label="Select LoRAs to Load", elem_id="lora_select", scale=4)
                    lora_refresh = gr.Button("🔄 Refresh", elem_id="lora_refresh", scale=1, size="sm")
                lo, hi = F.bounds(LoraSpec, "weight")
                lora_default = F.default(LoraSpec, "weight")
                lora_sliders = [gr.Slider(lo, hi, value=lora_default, step=0.01, visible=False,
                                          label=f"LoRA {i + 1}", elem_id=f"lora_weight_{i}")
                                for i in range(MAX_LORAS)]
                metadata_file = gr.File(label="Upload Metadata JSON", file_types=[".json"], elem_id="metadata_json")

            with gr.Accordion("Presets", open=False, elem_id="presets_acc"):
                with gr.Row():
                    preset_select = gr.Dropdown(presets.names(default_type), label="Preset", elem_id="preset_select",
                                                allow_custom_value=False)
                    preset_name = gr.Textbox(label="Preset name", elem_id="preset_name")
                with gr.Row():
                    preset_load = gr.Button("Load", elem_id="preset_load", size="sm")
                    preset_save = gr.Button("💾 Save", elem_id="preset_save", size="sm")
                    preset_delete = gr.Button("🗑️ Delete", elem_id="preset_delete", size="sm", variant="stop")
                preset_msg = gr.Markdown("", elem_id="preset_msg")

            with gr.Row():
                add_btn = gr.Button("Add to Queue", variant="primary", elem_id="add_to_queue", scale=3)
            form_msg = gr.Markdown("", elem_id="form_msg")

        with gr.Column(scale=2, elem_id="live_col"):
            gr.Markdown("### Current job")
            live_status = gr.HTML(live_html(None), elem_id="live_html")
            live_preview = gr.Image(label="Latest preview", interactive=False, height=256, elem_id="live_preview")
            live_video = gr.Video(label="Video so far", interactive=False, autoplay=True, loop=True, height=256,
                                  elem_id="live_video")
            live_job = gr.Textbox(label="Followed job", interactive=False, elem_id="live_job_id")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="live_cancel")
            live_timer = gr.Timer(1.0)
            shown = gr.State({"image": None, "video": None})

    # ---- visibility ----
    groups = [start_group, video_group, end_group, end_opts, video_opts, c["latent_image"], batch_group,
              keyframe_group, grid_group]

    def on_type(gen_type: str):
        v = visibility(gen_type)
        flags = [v["start"], v["video"], v["end"], v["end"], v["video"], v["latent"], v["batch"], v["keyframes"],
                 v["grid"]]
        return [gr.update(visible=f) for f in flags] + [gr.update(choices=presets.names(gen_type), value=None)]

    c["generation_type"].change(on_type, c["generation_type"], groups + [preset_select], api_visibility="private")

    def on_cache(kind: str):
        return gr.update(visible=kind == CacheType.TEACACHE.value), gr.update(visible=kind == CacheType.MAGCACHE.value)

    c["cache_type"].change(on_cache, c["cache_type"], [tea_group, mag_group], api_visibility="private")
    c["steps"].change(lambda s: s, c["steps"], tea_steps, api_visibility="private", show_progress="hidden")
    def on_bucket(width, height, image):
        return bucket_text(width, height, Path(image) if image else None)

    # The bucket follows the requested size and, when there is one, the start frame's aspect ratio.
    for comp in (c["width"], c["height"], start_preview):
        comp.change(on_bucket, [c["width"], c["height"], start_preview], bucket_md, api_visibility="private",
                    show_progress="hidden")

    # ---- uploads: checked by content as soon as they arrive ----
    def on_image(value, label):
        path = file_path(value)
        if path is None:
            return None, ""
        try:
            check_image(path, label)
        except UploadError as exc:
            gr.Warning(str(exc))
            return None, f"⚠️ {exc}"
        return str(path), ""

    def on_video(value):
        path = file_path(value)
        if path is None:
            return None, ""
        try:
            check_video(path, "Video Input")
        except UploadError as exc:
            gr.Warning(str(exc))
            return None, f"⚠️ {exc}"
        return str(path), ""

    start_file.change(lambda v: on_image(v, "Start Frame"), start_file, [start_preview, upload_msg],
                      api_visibility="private")
    end_file.change(lambda v: on_image(v, "End Frame"), end_file, [end_preview, upload_msg], api_visibility="private")
    video_file.change(on_video, video_file, [video_preview, upload_msg], api_visibility="private")

    # ---- LoRAs ----
    def on_lora_select(names: list[str] | None):
        names = list(names or [])[:MAX_LORAS]
        return [gr.update(visible=i < len(names), label=f"Weight: {names[i]}" if i < len(names) else f"LoRA {i + 1}")
                for i in range(MAX_LORAS)]

    lora_select.change(on_lora_select, lora_select, lora_sliders, api_visibility="private")
    lora_refresh.click(lambda cur: gr.update(choices=list_loras(services.lora_dir),
                                             value=[n for n in (cur or []) if n in list_loras(services.lora_dir)]),
                       lora_select, lora_select, api_visibility="private")

    # ---- form -> params ----
    form_inputs = {*c.values(), start_file, end_file, video_file, keyframe_files, keyframe_secs, grid_x_param,
                   grid_x_values, grid_y_param, grid_y_values, randomize, lora_select, batch_files, *lora_sliders}

    def collect(data: dict) -> tuple[list[GenerationParams], list[str]]:
        values = {name: data[comp] for name, comp in c.items()}
        gen_type = GenerationType(values["generation_type"])
        v = visibility(gen_type.value)
        errors: list[str] = []
        try:
            start = file_path(data[start_file]) if v["start"] else None
            if start:
                check_image(start, "Start Frame")
            end = file_path(data[end_file]) if v["end"] else None
            if end:
                check_image(end, "End Frame")
            video = file_path(data[video_file]) if v["video"] else None
            if video:
                check_video(video, "Video Input")
            keyframes: list[tuple[Path, float]] = []
            kf_paths = [file_path(x) for x in (data[keyframe_files] or [])] if v["keyframes"] else []
            if kf_paths:
                secs = parse_keyframe_seconds(data[keyframe_secs], len(kf_paths))
                for p, s in zip(kf_paths, secs):
                    keyframes.append((check_image(p, "Keyframe"), s))
            batch = [file_path(x) for x in (data[batch_files] or [])] if v["batch"] else []
            for p in batch:
                check_image(p, "Batch image")
        except (UploadError, ValueError) as exc:
            return [], [str(exc)]
        names = list(data[lora_select] or [])[:MAX_LORAS]
        loras = [(n, float(data[lora_sliders[i]])) for i, n in enumerate(names)]
        settings = services.settings.current
        system_prompt = settings.system_prompt_template if settings.override_system_prompt else None
        starts = batch or [start]
        out: list[GenerationParams] = []
        for s in starts:
            try:
                out.append(build_params(
                    values, start_image=s, end_image=end, input_video=video, keyframes=keyframes, loras=loras,
                    grid_x=(data[grid_x_param], data[grid_x_values]), grid_y=(data[grid_y_param], data[grid_y_values]),
                    randomize_seed=bool(data[randomize]), system_prompt=system_prompt or None))
            except ValidationError as exc:
                return [], format_errors(exc)
            except ValueError as exc:
                return [], [str(exc)]
        return out, errors

    def on_add(data: dict):
        params_list, errors = collect(data)
        if errors:
            msg = "**Not added:**\n" + "\n".join(f"- {e}" for e in errors)
            gr.Warning("Not added: " + "; ".join(errors)[:300])
            return msg, gr.update()
        ids = [services.queue.add(p) for p in params_list]
        seed = params_list[-1].seed
        text = f"✅ Added job {', '.join(ids)} to the queue."
        gr.Info(text)
        return text, gr.update(value=seed)

    add_btn.click(on_add, form_inputs, [form_msg, c["seed"]], api_visibility="private")

    # ---- metadata JSON / "Load parameters back into Generate" ----
    ordered = list(c.keys())

    def fill_from(params: GenerationParams) -> list[Any]:
        vals = form_values(params)
        out = [gr.update(value=vals[name]) for name in ordered]
        names = [lo.name for lo in params.loras][:MAX_LORAS]
        known = list_loras(services.lora_dir)
        out.append(gr.update(choices=sorted(set(known) | set(names)), value=names))
        for i in range(MAX_LORAS):
            if i < len(names):
                out.append(gr.update(visible=True, value=params.loras[i].weight, label=f"Weight: {names[i]}"))
            else:
                out.append(gr.update(visible=False))
        gx, gy = params.grid_x, params.grid_y
        out += [gr.update(value=gx.parameter) if gx else gr.update(),
                gr.update(value=_axis_text(gx)) if gx else gr.update(),
                gr.update(value=gy.parameter if gy else GRID_NONE),
                gr.update(value=_axis_text(gy) if gy else "")]
        return out

    fill_outputs = [c[n] for n in ordered] + [lora_select, *lora_sliders, grid_x_param, grid_x_values,
                                               grid_y_param, grid_y_values]

    def on_metadata(value):
        # The upload box is emptied again each time, so the next file can be dropped straight in.
        path = file_path(value)
        if path is None:
            return [gr.update() for _ in fill_outputs] + ["", None]
        try:
            params, notes = params_from_metadata(path.read_text(encoding="utf-8", errors="replace"))
        except ValueError as exc:
            gr.Warning(str(exc)[:300])
            return [gr.update() for _ in fill_outputs] + [f"⚠️ {exc}", None]
        note = "Loaded parameters from metadata." + (f" ({'; '.join(notes)})" if notes else "")
        return fill_from(params) + [note, None]

    metadata_file.upload(on_metadata, metadata_file, fill_outputs + [form_msg, metadata_file],
                         api_visibility="private")

    if shared.load_params is not None:
        def on_load_params(text: str):
            if not text:
                return [gr.update() for _ in fill_outputs] + [gr.update()]
            try:
                params, notes = params_from_metadata(text.split("\n", 1)[1] if text.startswith("#") else text)
            except ValueError as exc:
                return [gr.update() for _ in fill_outputs] + [f"⚠️ {exc}"]
            return fill_from(params) + ["Loaded parameters from Outputs." + (f" ({'; '.join(notes)})" if notes else "")]

        shared.load_params.change(on_load_params, shared.load_params, fill_outputs + [form_msg],
                                  api_visibility="private")

    # ---- presets ----
    def preset_values(data: dict) -> dict[str, Any]:
        vals = {name: data[comp] for name, comp in c.items()}
        vals["loras"] = [{"name": n, "weight": float(data[lora_sliders[i]])}
                         for i, n in enumerate(list(data[lora_select] or [])[:MAX_LORAS])]
        return vals

    def on_preset_save(data: dict):
        gen_type = data[c["generation_type"]]
        try:
            name = presets.save(gen_type, data[preset_name], preset_values(data))
        except PresetError as exc:
            return gr.update(), f"⚠️ {exc}"
        return gr.update(choices=presets.names(gen_type), value=name), f"Saved preset **{name}** for {gen_type}."

    preset_save.click(on_preset_save, {*c.values(), preset_name, lora_select, *lora_sliders},
                      [preset_select, preset_msg], api_visibility="private")

    def on_preset_load(gen_type: str, name: str | None):
        if not name:
            return [gr.update() for _ in fill_outputs] + ["⚠️ Choose a preset first."]
        try:
            vals = presets.load(gen_type, name)
            base = {k: v for k, v in vals.items() if k in SCALAR_FIELDS or k == "loras"}
            base["generation_type"] = gen_type
            params, notes = params_from_metadata(json.dumps(_drop_inputs(base)))
        except (PresetError, ValueError) as exc:
            return [gr.update() for _ in fill_outputs] + [f"⚠️ {exc}"]
        return fill_from(params) + [f"Loaded preset **{name}**."]

    preset_load.click(on_preset_load, [c["generation_type"], preset_select], fill_outputs + [preset_msg],
                      api_visibility="private")

    def on_preset_delete(gen_type: str, name: str | None):
        if not name:
            return gr.update(), "⚠️ Choose a preset first."
        presets.delete(gen_type, name)
        return gr.update(choices=presets.names(gen_type), value=None), f"Deleted preset **{name}**."

    preset_delete.click(on_preset_delete, [c["generation_type"], preset_select], [preset_select, preset_msg],
                        api_visibility="private")

    # ---- live view ----
    def on_tick(state: dict):
        job = followed_job(services)
        img_upd, vid_upd = gr.update(), gr.update()
        state = dict(state or {})
        if job is not None:
            img = _stamp(job.preview_image)
            if img != state.get("image"):
                state["image"] = img
                img_upd = gr.update(value=str(job.preview_image) if img else None)
            final = job.video if job.status == "COMPLETED" else None
            vid_path = final or job.preview_video
            vid = _stamp(vid_path)
            if vid != state.get("video"):
                state["video"] = vid
                vid_upd = gr.update(value=str(vid_path) if vid else None)
        return live_html(job), img_upd, vid_upd, (job.id if job else ""), state

    live_timer.tick(on_tick, shown, [live_status, live_preview, live_video, live_job, shown],
                    api_visibility="private", show_progress="hidden")

    def on_cancel(job_id: str):
        if not job_id:
            return "No job to cancel."
        job = services.queue.get(job_id)
        if job is None or job.status not in ("PENDING", "RUNNING"):
            gr.Info("That job is not running.")
            return live_html(job)
        services.queue.cancel(job_id)
        gr.Info(f"Cancelling job {job_id}")
        return live_html(services.queue.get(job_id))

    cancel_btn.click(on_cancel, live_job, live_status, api_visibility="private")


def _drop_inputs(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in ("start_image", "end_image", "input_video", "keyframes")}


def _axis_text(axis) -> str:
    if axis is None:
        return ""
    sep = "\n" if axis.parameter == "prompt" else ", "
    return sep.join(str(v) for v in axis.values)


def _stamp(path: Path | None) -> tuple[str, float] | None:
    """(path, mtime): the live view re-sends a file only when it changed."""
    if path is None:
        return None
    try:
        return (str(path), Path(path).stat().st_mtime)
    except OSError:
        return None

