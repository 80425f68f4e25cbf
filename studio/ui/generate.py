"""Generate tab: the job form (derived from GenerationParams), presets, Add to Queue, and the live view.

Add to Queue validates and enqueues, then returns; the live view follows the worker through the queue
store with a gr.Timer, so a refreshed page re-attaches to the running job.

Reading order: one function per panel builds its controls and returns them (`_inputs_panel`, `_prompt_panel`,
`_settings_panel`, `_lora_panel`, `_presets_panel`, `_queue_buttons`, `_live_panel`); `build` lays them out and
the `_wire_*` functions connect their events. Other tabs fill the form through the `FormFiller` build returns.
"""

from __future__ import annotations

import html
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr
from gradio.blocks import Block
from gradio.components import Component
from pydantic import ValidationError

from modules.errors import format_errors
from modules.framepack.params import CacheType, GenerationParams, GenerationType, LatentImage, LoraSpec
from modules.models.lora_files import LoraContext, scan_loras
from studio.jobs.batch import MAX_NAME, AddOptions
from studio.jobs.model import JobStatus, JobSummary, JobValidationError
from studio.jobs.storage import StorageFullError
from studio.ui import fields as F
from studio.ui import prompt_helpers
from studio.ui.bucket import bucket_text
from studio.ui.form import (GRID_NONE, GRID_PARAMETERS, SCALAR_FIELDS, build_params, form_values,
                            parse_keyframe_seconds, params_from_metadata)
from studio.ui.presets import PresetError, PresetStore
from studio.ui.services import Services
from studio.ui.uploads import UploadError, check_image, check_video, file_path

if TYPE_CHECKING:
    from studio.jobs.service import QueueService
    from studio.settings import Settings

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
        "batch": gt in START_TYPES - {GenerationType.GRID} or gt.is_video,  # start images, or source videos
        "video": gt.is_video,
        "end": gt.uses_end_frame,
        "latent": gt != GenerationType.GRID,
        "keyframes": gt != GenerationType.GRID and not gt.is_video,
        "grid": gt == GenerationType.GRID,
    }


def lora_choices(context: LoraContext) -> tuple[list[str], str]:
    """The LoRAs offered (each file's header checked against the selected model set's transformer, so a junk or
    wrong-shape file cannot be selected) and a note naming every file left out, with why."""
    files = scan_loras(context)
    note = "\n".join(f"- ⚠️ Not offered: {f.problem}" for f in files if f.problem)  # one line per file
    return [f.name for f in files if f.problem is None], note


# ---- live view (pure) -----------------------------------------------------------------------------------------
def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def live_html(job: JobSummary | None) -> str:
    """The live view's status line for the queue's own job record."""
    if job is None:
        return "<div id='live-status'>No job yet. Fill the form and press <b>Add to Queue</b>.</div>"
    status = job.status.value
    parts = [f"<b>Job {job.id}</b> · {job.generation_type} · <span class='status-{status.lower()}'>{status}</span>"]
    if job.status is JobStatus.RUNNING:
        p = job.progress
        bar = ""
        if p is not None and p.total_sections:
            parts.append(f"Section {(p.section or 0) + 1}/{p.total_sections}")
        if p is not None and p.total_steps:
            parts.append(f"Step {p.step or 0}/{p.total_steps}")
            parts.append(f"ETA {_fmt_eta(p.eta_seconds)}")
            done = p.fraction or 0.0
            bar = f"<div class='fp-bar'><div class='fp-bar-fill' style='width:{100 * done:.0f}%'></div></div>"
        if p is not None and p.stage:
            parts.append(p.stage)
        return f"<div id='live-status'>{' · '.join(parts)}{bar}</div>"
    if job.status is JobStatus.FAILED and job.error:
        parts.append(f"<br><span class='fp-error'>{html.escape(job.error.splitlines()[0][:300], quote=False)}</span>")
    if job.status is JobStatus.COMPLETED and job.output_video:
        parts.append(f"Output: {Path(job.output_video).name}")
    return f"<div id='live-status'>{' · '.join(parts)}</div>"


def followed_job(queue: QueueService) -> JobSummary | None:
    """The running job, else the newest job: what the live view shows (same answer after a page refresh)."""
    jobs = queue.list()
    running = [j for j in jobs if j.status is JobStatus.RUNNING]
    if running:
        return running[0]
    return max(jobs, key=lambda j: j.created_at, default=None)


# ---- panels: each builds its controls and returns them ----------------------------------------------------------
@dataclass
class GridAxes:
    x_param: gr.Dropdown
    x_values: gr.Textbox
    y_param: gr.Dropdown
    y_values: gr.Textbox

    def components(self) -> list[Component]:
        return [self.x_param, self.x_values, self.y_param, self.y_values]


@dataclass
class InputsPanel:
    """Generation type, and the uploads, options and grid axes each type shows."""

    fields: dict[str, Component]  # the GenerationParams fields among them
    groups: dict[str, list[Block]]  # visibility() key -> the blocks it shows or hides
    start_file: gr.File
    start_preview: gr.Image
    video_file: gr.File
    video_preview: gr.Video
    end_file: gr.File
    end_preview: gr.Image
    upload_msg: gr.Markdown
    batch_files: gr.File
    keyframe_files: gr.File
    keyframe_secs: gr.Textbox
    grid: GridAxes
    caption: gr.Button  # prompt_helpers: Caption the start frame
    describe: gr.Button  # prompt_helpers: Describe the video input
    describe_timestamped: gr.Checkbox


def _inputs_panel(vis: dict[str, bool]) -> InputsPanel:
    groups: dict[str, list[Block]] = defaultdict(list)
    fields: dict[str, Component] = {
        "generation_type": gr.Dropdown([t.value for t in GenerationType], value=F.default(G, "generation_type"),
                                       label="Generation Type", elem_id="generation_type")}
    with gr.Row():
        with gr.Column(visible=vis["start"], min_width=200) as start_group:
            start_file = gr.File(label="Start Frame (optional)", file_types=["image"], elem_id="start_image",
                                 height=120)
            start_preview = gr.Image(label="Start frame preview", interactive=False, height=160, type="filepath",
                                     show_label=False, elem_id="start_preview")
            caption = prompt_helpers.caption_button()
        with gr.Column(visible=vis["video"], min_width=200) as video_group:
            video_file = gr.File(label="Video Input", file_types=["video"], elem_id="input_video", height=120)
            video_preview = gr.Video(label="Video preview", interactive=False, height=160, show_label=False,
                                     elem_id="video_preview")
            describe, describe_timestamped = prompt_helpers.describe_controls()
        with gr.Column(visible=vis["end"], min_width=200) as end_group:
            end_file = gr.File(label="End Frame (optional)", file_types=["image"], elem_id="end_image", height=120)
            end_preview = gr.Image(label="End frame preview", interactive=False, height=160, type="filepath",
                                   show_label=False, elem_id="end_preview")
    groups["start"].append(start_group)
    groups["video"].append(video_group)
    groups["end"].append(end_group)
    upload_msg = gr.Markdown("", elem_id="upload_msg")
    fields.update(_type_options(vis, groups))
    batch_files, keyframe_files, keyframe_secs = _extra_images(vis, groups)
    fields["grid_model"], grid = _grid_group(vis, groups)
    return InputsPanel(fields, dict(groups), start_file, start_preview, video_file, video_preview, end_file,
                       end_preview, upload_msg, batch_files, keyframe_files, keyframe_secs, grid, caption, describe,
                       describe_timestamped)


def _type_options(vis: dict[str, bool], groups: dict[str, list[Block]]) -> dict[str, Component]:
    """End-frame and video-input options, and the latent image (hidden for a grid)."""
    fields: dict[str, Component] = {}
    with gr.Group(visible=vis["end"]) as end_opts:
        fields["end_frame_strength"] = F.slider(G, "end_frame_strength", "End Frame Influence")
        fields["end_frame_embedding_blend"] = F.slider(G, "end_frame_embedding_blend", "End frame embedding blend")
    with gr.Group(visible=vis["video"]) as video_opts:
        fields["num_context_frames"] = F.slider(G, "num_context_frames",
                                                "Number of Context Frames (Adherence to Video)")
        fields["combine_with_source"] = F.checkbox(G, "combine_with_source", "Combine with source video")
    fields["latent_image"] = F.dropdown_enum(G, "latent_image", LatentImage, "Latent Image", visible=vis["latent"])
    groups["end"].append(end_opts)
    groups["video"].append(video_opts)
    groups["latent"].append(fields["latent_image"])
    return fields


def _extra_images(vis: dict[str, bool], groups: dict[str, list[Block]]) -> tuple[gr.File, gr.File, gr.Textbox]:
    """Batch inputs (one job each: start images, or source videos for the Video types; studio/jobs/batch.py)
    and section keyframes with their times."""
    with gr.Accordion("Batch inputs: one job per file", open=False, visible=vis["batch"]) as batch_group:
        batch_files = gr.File(label="Batch inputs (start images, or videos for the Video types)",
                              file_count="multiple", file_types=["image", "video"], elem_id="batch_images")
    with gr.Accordion("Section keyframes", open=False, visible=vis["keyframes"]) as keyframe_group:
        keyframe_files = gr.File(label="Keyframe images", file_count="multiple", file_types=["image"],
                                 elem_id="keyframe_images")
        keyframe_secs = gr.Textbox(label="Keyframe times (seconds, comma-separated, in upload order)",
                                   placeholder="2, 4.5", elem_id="keyframe_seconds")
    groups["batch"].append(batch_group)
    groups["keyframes"].append(keyframe_group)
    return batch_files, keyframe_files, keyframe_secs


def _grid_group(vis: dict[str, bool], groups: dict[str, list[Block]]) -> tuple[gr.Radio, GridAxes]:
    with gr.Group(visible=vis["grid"]) as grid_group:
        gr.Markdown("**Grid**: every combination of the X and Y values runs as one cell of a grid video.")
        grid_model = gr.Radio(["Original", "F1"], value=F.default(G, "grid_model"), label="Grid model",
                              elem_id="grid_model")
        with gr.Row():
            x_param = gr.Dropdown(list(GRID_PARAMETERS), value="steps", label="X axis parameter",
                                  elem_id="grid_x_param")
            x_values = gr.Textbox(label="X values (comma-separated; prompts one per line)", elem_id="grid_x_values",
                                  lines=1)
        with gr.Row():
            y_param = gr.Dropdown([GRID_NONE, *GRID_PARAMETERS], value=GRID_NONE, label="Y axis parameter",
                                  elem_id="grid_y_param")
            y_values = gr.Textbox(label="Y values", elem_id="grid_y_values", lines=1)
    groups["grid"].append(grid_group)
    return grid_model, GridAxes(x_param, x_values, y_param, y_values)


def _prompt_panel() -> tuple[dict[str, Component], gr.Button, gr.Markdown]:
    fields: dict[str, Component] = {
        "prompt": gr.Textbox(F.default(G, "prompt"), label="Prompt", lines=3, elem_id="prompt",
                             info=G.model_fields["prompt"].description)}
    enhance, helper_msg = prompt_helpers.enhance_row()
    gr.Markdown(PROMPT_HELP, elem_id="prompt_help")
    fields["negative_prompt"] = gr.Textbox(F.default(G, "negative_prompt"), label="Negative Prompt", lines=1,
                                           elem_id="negative_prompt")
    fields["blend_sections"] = F.slider(G, "blend_sections", "Number of sections to blend between prompts")
    return fields, enhance, helper_msg


@dataclass
class SettingsPanel:
    """Length, size, seed and the Advanced accordion (step cache, CFG, latent window)."""

    fields: dict[str, Component]
    bucket: gr.Markdown
    randomize: gr.Checkbox
    tea_group: gr.Group
    mag_group: gr.Group


def _settings_panel() -> SettingsPanel:
    fields: dict[str, Component] = {}
    with gr.Row():
        fields["steps"] = F.slider(G, "steps", "Steps")
        fields["total_seconds"] = F.slider(G, "total_seconds", "Video Length (Seconds)", step=0.1)
    with gr.Row():
        fields["width"] = F.slider(G, "width", "Width", step=16)
        fields["height"] = F.slider(G, "height", "Height", step=16)
    bucket = gr.Markdown(bucket_text(F.default(G, "width"), F.default(G, "height")), elem_id="bucket")
    with gr.Row():
        fields["seed"] = F.number(G, "seed", "Seed")
        randomize = gr.Checkbox(value=False, label="Randomize", elem_id="randomize",
                                info="A new random seed for each job")
    with gr.Accordion("Advanced", open=False, elem_id="advanced"):
        fields["cache_type"] = gr.Radio([t.value for t in CacheType], value=F.default(G, "cache_type"),
                                        label="Step cache", elem_id="cache_type",
                                        info="TeaCache / MagCache skip transformer calls; may soften fine details")
        with gr.Group(visible=F.default(G, "cache_type") == CacheType.TEACACHE.value) as tea_group:
            # No "TeaCache steps": the cache counts the job's Steps (docs/generation.md, TeaCache and MagCache).
            fields["teacache_threshold"] = F.slider(G, "teacache_threshold", "TeaCache rel_l1_thresh")
        with gr.Group(visible=F.default(G, "cache_type") == CacheType.MAGCACHE.value) as mag_group:
            fields["magcache_threshold"] = F.slider(G, "magcache_threshold", "MagCache threshold")
            fields["magcache_max_consecutive_skips"] = F.slider(G, "magcache_max_consecutive_skips",
                                                                "MagCache max consecutive skips")
            fields["magcache_retention_ratio"] = F.slider(G, "magcache_retention_ratio", "MagCache retention ratio")
        fields["distilled_cfg"] = F.slider(G, "distilled_cfg", "Distilled CFG Scale", step=0.1)
        with gr.Row():
            fields["cfg"] = F.slider(G, "cfg", "CFG Scale", step=0.05)
            fields["cfg_rescale"] = F.slider(G, "cfg_rescale", "CFG Re-Scale")
        fields["latent_window_size"] = F.slider(G, "latent_window_size", "Latent Window Size")
    return SettingsPanel(fields, bucket, randomize, tea_group, mag_group)


@dataclass
class LoraPanel:
    select: gr.Dropdown
    refresh: gr.Button
    unusable: gr.Markdown  # the folder's files that are not offered, each with why
    sliders: list[gr.Slider]  # one weight per selectable LoRA, shown while that LoRA is selected
    metadata_file: gr.File

    def chosen(self, data: dict) -> list[tuple[str, float]]:
        """(name, weight) of the selected LoRAs, from an event's input dict."""
        names = list(data[self.select] or [])[:MAX_LORAS]
        return [(n, float(data[self.sliders[i]])) for i, n in enumerate(names)]


def _lora_panel(context: LoraContext) -> LoraPanel:
    usable, note = lora_choices(context)
    with gr.Accordion("LoRAs & Metadata", open=False, elem_id="loras_acc"):
        with gr.Row():
            select = gr.Dropdown(usable, multiselect=True, value=[], label="Select LoRAs to Load",
                                 elem_id="lora_select", scale=4)
            refresh = gr.Button("🔄 Refresh", elem_id="lora_refresh", scale=1, size="sm")
        unusable = gr.Markdown(note, elem_id="lora_unusable")
        lo, hi = F.bounds(LoraSpec, "weight")
        weight = F.default(LoraSpec, "weight")
        sliders = [gr.Slider(lo, hi, value=weight, step=0.01, visible=False, label=f"LoRA {i + 1}",
                             elem_id=f"lora_weight_{i}") for i in range(MAX_LORAS)]
        metadata_file = gr.File(label="Upload Metadata JSON", file_types=[".json"], elem_id="metadata_json")
    return LoraPanel(select, refresh, unusable, sliders, metadata_file)


@dataclass
class PresetsPanel:
    select: gr.Dropdown
    name: gr.Textbox
    load: gr.Button
    save: gr.Button
    delete: gr.Button
    msg: gr.Markdown


def _presets_panel(names: list[str]) -> PresetsPanel:
    with gr.Accordion("Presets", open=False, elem_id="presets_acc"):
        with gr.Row():
            select = gr.Dropdown(names, label="Preset", elem_id="preset_select", allow_custom_value=False)
            name = gr.Textbox(label="Preset name", elem_id="preset_name")
        with gr.Row():
            load = gr.Button("Load", elem_id="preset_load", size="sm")
            save = gr.Button("💾 Save", elem_id="preset_save", size="sm")
            delete = gr.Button("🗑️ Delete", elem_id="preset_delete", size="sm", variant="stop")
        msg = gr.Markdown("", elem_id="preset_msg")
    return PresetsPanel(select, name, load, save, delete, msg)


def _queue_buttons(worker_names: list[str]) -> tuple[gr.Button, gr.Markdown, gr.Textbox, gr.Dropdown]:
    with gr.Row():
        # Not a generation parameter (studio/jobs/batch.py): it names the files, never changes their bytes.
        job_name = gr.Textbox(label="Job name (optional)", elem_id="job_name", scale=2, max_length=MAX_NAME,
                              placeholder="shown in the queue; the output file name (a batch adds each file's name)")
        # Which worker runs it (studio/jobs/pool.py); shown only where there is a choice.
        run_on = gr.Dropdown(["any", *worker_names], value="any", label="Run on", elem_id="run_on", scale=1,
                             visible=len(worker_names) > 1)
        add_btn = gr.Button("Add to Queue", variant="primary", elem_id="add_to_queue", scale=3)
    form_msg = gr.Markdown("", elem_id="form_msg")
    return add_btn, form_msg, job_name, run_on


@dataclass
class LivePanel:
    status: gr.HTML
    preview: gr.Image
    video: gr.Video
    job_id: gr.Textbox
    cancel: gr.Button
    timer: gr.Timer
    shown: gr.State  # (path, mtime) of the preview and video on the page, so unchanged files are not re-sent


def _live_panel() -> LivePanel:
    gr.Markdown("### Current job")
    status = gr.HTML(live_html(None), elem_id="live_html")
    preview = gr.Image(label="Latest preview", interactive=False, height=256, elem_id="live_preview")
    video = gr.Video(label="Video so far", interactive=False, autoplay=True, loop=True, height=256,
                     elem_id="live_video")
    job_id = gr.Textbox(label="Followed job", interactive=False, elem_id="live_job_id")
    cancel = gr.Button("Cancel", variant="stop", elem_id="live_cancel")
    return LivePanel(status, preview, video, job_id, cancel, gr.Timer(1.0), gr.State({"image": None, "video": None}))


# ---- the form as a whole ------------------------------------------------------------------------------------------
@dataclass
class GenerateForm:
    fields: dict[str, Component]  # GenerationParams field -> its control
    inputs: InputsPanel
    settings: SettingsPanel
    loras: LoraPanel
    message: gr.Markdown
    job_name: gr.Textbox | None = None
    run_on: gr.Dropdown | None = None

    def components(self) -> set[Component]:
        """Everything Add to Queue reads."""
        i = self.inputs
        return {*self.fields.values(), i.start_file, i.end_file, i.video_file, i.keyframe_files, i.keyframe_secs,
                *i.grid.components(), self.settings.randomize, self.loras.select, i.batch_files,
                *self.loras.sliders, *(c for c in (self.job_name, self.run_on) if c is not None)}


def fill_updates(params: GenerationParams, field_names: list[str], known_loras: list[str]) -> list[Any]:
    """Updates that show `params` in the form: the fields in `field_names` order, the LoRA choice and its
    MAX_LORAS weight sliders, then the grid axes (X parameter, X values, Y parameter, Y values)."""
    vals = form_values(params)
    out: list[Any] = [gr.update(value=vals[name]) for name in field_names]
    names = [lo.name for lo in params.loras][:MAX_LORAS]
    out.append(gr.update(choices=sorted(set(known_loras) | set(names)), value=names))
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


@dataclass
class FormFiller:
    """Shows a parameter set in the Generate form, from any event that lists `outputs` as its outputs.

    app.py hands it to the Queue and Outputs tabs: their "load" handlers return `fill(...)` and select this tab
    in the same event, so loading the same job twice fills the form twice (no hidden carrier component whose
    value must change)."""

    controls: list[Component]  # the fields in `field_names` order, LoRA choice and weights, grid axes
    message: gr.Markdown  # the form's message line
    field_names: list[str]
    loras: Callable[[], list[str]]  # the LoRAs offered, read at each fill: the folder and its files change
    # The whole form: its upload boxes and Add's inputs, for Continue (Start Frame) and Edit a pending job
    # (studio/ui/continue_edit.py).
    form: GenerateForm | None = None

    @property
    def input_boxes(self) -> list[Component]:
        """The upload boxes a loaded job's own files go into: start, end, video, keyframe images and times."""
        if self.form is None:
            return []
        i = self.form.inputs
        return [i.start_file, i.end_file, i.video_file, i.keyframe_files, i.keyframe_secs]

    @property
    def outputs(self) -> list[Component]:
        return [*self.controls, *self.input_boxes, self.message]

    def updates(self, params: GenerationParams) -> list[Any]:
        """The controls only (a preset: settings without inputs)."""
        return fill_updates(params, self.field_names, self.loras())

    def unchanged(self) -> list[Any]:
        return [gr.update() for _ in self.controls]

    def fill(self, params: GenerationParams, message: str) -> list[Any]:
        """Everything of `params`, its input files included (each load shows the job complete; a file it names
        that is gone leaves its box empty, and the load's notes say so)."""
        files = input_file_updates(params) if self.form is not None else []
        return [*self.updates(params), *files, message]

    def keep(self, message: str | None = None) -> list[Any]:
        return [*self.unchanged(), *(gr.update() for _ in self.input_boxes),
                gr.update() if message is None else message]


def input_file_updates(params: GenerationParams) -> list[Any]:
    """Values for FormFiller.input_boxes showing the files `params` names."""
    def shown(path: Path | None) -> str | None:
        return str(path) if path is not None and Path(path).is_file() else None

    kf = [k for k in params.keyframes if shown(k.image)]
    return [shown(params.start_image), shown(params.end_image), shown(params.input_video),
            [str(k.image) for k in kf] or None, ", ".join(f"{k.seconds:g}" for k in kf)]


def _filler(form: GenerateForm, loras: Callable[[], list[str]]) -> FormFiller:
    names = list(form.fields)
    controls = [*(form.fields[n] for n in names), form.loras.select, *form.loras.sliders,
                *form.inputs.grid.components()]
    return FormFiller(controls, form.message, names, loras, form)


def loaded_message(source: str, notes: list[str]) -> str:
    return f"Loaded parameters from {source}." + (f" ({'; '.join(notes)})" if notes else "")


# ---- form -> parameters ---------------------------------------------------------------------------------------------
@dataclass
class _Uploads:
    start: Path | None
    end: Path | None
    video: Path | None
    keyframes: list[tuple[Path, float]]
    batch: list[Path]


def _read_uploads(inputs: InputsPanel, data: dict, v: dict[str, bool]) -> _Uploads:
    """The uploads the chosen type shows, each checked by content (UploadError / ValueError name the bad one)."""
    start = file_path(data[inputs.start_file]) if v["start"] else None
    if start:
        check_image(start, "Start Frame")
    end = file_path(data[inputs.end_file]) if v["end"] else None
    if end:
        check_image(end, "End Frame")
    video = file_path(data[inputs.video_file]) if v["video"] else None
    if video:
        check_video(video, "Video Input")
    keyframes: list[tuple[Path, float]] = []
    kf_paths = [file_path(x) for x in (data[inputs.keyframe_files] or [])] if v["keyframes"] else []
    if kf_paths:
        secs = parse_keyframe_seconds(data[inputs.keyframe_secs], len(kf_paths))
        keyframes = [(check_image(p, "Keyframe"), s) for p, s in zip(kf_paths, secs)]
    batch = [file_path(x) for x in (data[inputs.batch_files] or [])] if v["batch"] else []
    for p in batch:  # the file a batch job takes in place of the start image (the source video)
        if v["video"]:
            check_video(p, "Batch video")
        else:
            check_image(p, "Batch image")
    return _Uploads(start, end, video, keyframes, batch)


@dataclass
class FormJobs:
    """What Add to Queue queues: one job, or one per batch file (same parameters, the file as its input)."""

    params: GenerationParams  # with the first batch file as its input, for a batch
    batch: list[Path]
    name: str
    gpu: str = ""  # the worker to run on ("" or "any": any)


def collect(form: GenerateForm, data: dict, settings: Settings) -> tuple[FormJobs | None, list[str]]:
    """The job(s) the form describes, or the errors to show."""
    values = {name: data[comp] for name, comp in form.fields.items()}
    v = visibility(values["generation_type"])
    try:
        up = _read_uploads(form.inputs, data, v)
    except (UploadError, ValueError) as exc:
        return None, [str(exc)]
    grid = form.inputs.grid
    system_prompt = settings.system_prompt_template if settings.override_system_prompt else None
    first = up.batch[0] if up.batch else None  # the batch's files replace the single upload box
    try:
        params = build_params(
            values, start_image=first if first and not v["video"] else up.start, end_image=up.end,
            input_video=first if first and v["video"] else up.video, keyframes=up.keyframes,
            loras=form.loras.chosen(data), grid_x=(data[grid.x_param], data[grid.x_values]),
            grid_y=(data[grid.y_param], data[grid.y_values]), randomize_seed=bool(data[form.settings.randomize]),
            system_prompt=system_prompt or None)
    except ValidationError as exc:  # before ValueError: pydantic's error is one too
        return None, format_errors(exc)
    except ValueError as exc:
        return None, [str(exc)]
    name = data[form.job_name] if form.job_name is not None else ""
    gpu = data[form.run_on] if form.run_on is not None else ""
    return FormJobs(params, up.batch, str(name or ""), str(gpu or "")), []


# ---- the tab ----------------------------------------------------------------------------------------------------
def build(services: Services, demo: gr.Blocks) -> FormFiller:
    """Renders the tab inside `demo` (whose page load refreshes the LoRA list); returns what other tabs need to
    fill its form."""
    presets = PresetStore(services.presets_dir)
    default_type = F.default(G, "generation_type")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            inputs = _inputs_panel(visibility(default_type))
            prompt_fields, enhance, helper_msg = _prompt_panel()
            settings = _settings_panel()
            loras = _lora_panel(services.lora_context)
            preset_ui = _presets_panel(presets.names(default_type))
            add_btn, form_msg, job_name, run_on = _queue_buttons(services.queue.workers.names)
        with gr.Column(scale=2, elem_id="live_col"):
            live = _live_panel()
    form = GenerateForm({**inputs.fields, **prompt_fields, **settings.fields}, inputs, settings, loras, form_msg,
                        job_name, run_on)
    filler = _filler(form, lambda: lora_choices(services.lora_context)[0])
    _wire_type_and_size(form, preset_ui, presets)
    _wire_uploads(inputs)
    prompt_helpers.wire(prompt_helpers.HelperControls(inputs.caption, inputs.describe, inputs.describe_timestamped,
                                                      enhance, helper_msg),
                        services, inputs.start_file, inputs.video_file, prompt_fields["prompt"],
                        settings.fields["total_seconds"])
    _wire_loras(loras, services, demo)
    _wire_add(form, add_btn, services)
    _wire_metadata(filler, loras.metadata_file)
    _wire_presets(form, filler, preset_ui, presets)
    _wire_live(live, services.queue)
    return filler


def _wire_type_and_size(form: GenerateForm, preset_ui: PresetsPanel, presets: PresetStore) -> None:
    """Per-type input groups and presets, the step cache's options, and the resolution bucket."""
    groups = form.inputs.groups
    blocks = [b for key in groups for b in groups[key]]
    gen_type = form.fields["generation_type"]

    def on_type(value: str) -> list[Any]:
        v = visibility(value)
        return ([gr.update(visible=v[key]) for key in groups for _ in groups[key]]
                + [gr.update(choices=presets.names(value), value=None)])

    gen_type.change(on_type, gen_type, [*blocks, preset_ui.select], api_visibility="private")

    s = form.settings
    cache = form.fields["cache_type"]

    def on_cache(kind: str) -> tuple[Any, Any]:
        return gr.update(visible=kind == CacheType.TEACACHE.value), gr.update(visible=kind == CacheType.MAGCACHE.value)

    cache.change(on_cache, cache, [s.tea_group, s.mag_group], api_visibility="private")
    # preprocess=False below: a number typed out of range is refused by Add to Queue with a sentence,
    # not by Gradio's range check as a red "Error" badge on these outputs.

    def on_bucket(width: Any, height: Any, image: Any) -> Any:
        path = image.get("path") if isinstance(image, dict) else image  # the preview's raw FileData
        try:
            w, h = (None if v is None else float(v) for v in (width, height))
            return bucket_text(w, h, Path(path) if path else None)
        except (TypeError, ValueError):  # not a number (yet): the bucket stays as it is
            return gr.update()

    # The bucket follows the requested size and, when there is one, the start frame's aspect ratio.
    size = [form.fields["width"], form.fields["height"], form.inputs.start_preview]
    for comp in size:
        comp.change(on_bucket, size, s.bucket, api_visibility="private", show_progress="hidden", preprocess=False)


def _upload_checker(check: Callable[[Path, str], Path], label: str) -> Callable[[Any], tuple[str | None, str]]:
    """A handler giving (path for the preview, message): an upload is checked by content as soon as it arrives."""
    def on_upload(value: Any) -> tuple[str | None, str]:
        path = file_path(value)
        if path is None:
            return None, ""
        try:
            check(path, label)
        except UploadError as exc:
            gr.Warning(str(exc))
            return None, f"⚠️ {exc}"
        return str(path), ""

    return on_upload


def _wire_uploads(i: InputsPanel) -> None:
    for file, preview, check, label in ((i.start_file, i.start_preview, check_image, "Start Frame"),
                                        (i.end_file, i.end_preview, check_image, "End Frame"),
                                        (i.video_file, i.video_preview, check_video, "Video Input")):
        file.change(_upload_checker(check, label), file, [preview, i.upload_msg], api_visibility="private")


def _wire_loras(loras: LoraPanel, services: Services, demo: gr.Blocks) -> None:
    def on_select(names: list[str] | None) -> list[Any]:
        names = list(names or [])[:MAX_LORAS]
        return [gr.update(visible=i < len(names), label=f"Weight: {names[i]}" if i < len(names) else f"LoRA {i + 1}")
                for i in range(MAX_LORAS)]

    def on_refresh(current: list[str] | None) -> tuple[Any, str]:
        usable, note = lora_choices(services.lora_context)
        return gr.update(choices=usable, value=[n for n in (current or []) if n in usable]), note

    def on_page_load() -> tuple[Any, str]:
        # Choices only: a LoRA picked before this answers stays picked (a value sent back would undo it).
        usable, note = lora_choices(services.lora_context)
        return gr.update(choices=usable), note

    loras.select.change(on_select, loras.select, loras.sliders, api_visibility="private")
    loras.refresh.click(on_refresh, loras.select, [loras.select, loras.unusable], api_visibility="private")
    # Every page load lists the folder again, so files added (or fixed) since start-up appear without Refresh.
    demo.load(on_page_load, None, [loras.select, loras.unusable], api_visibility="private",
              show_progress="hidden")


def _label(comp: Component) -> str:
    return str(getattr(comp, "label", None) or getattr(comp, "elem_id", None) or comp.__class__.__name__)


def _is_file_data(value: Any) -> bool:
    """A file component's raw payload (FileData dicts); paths given directly are already preprocessed."""
    return isinstance(value, dict) or (isinstance(value, list) and bool(value)
                                       and all(isinstance(v, dict) for v in value))


def preprocess_form(raw: dict[Component, Any]) -> tuple[dict[Component, Any], list[str]]:
    """Gradio's preprocessing of the Add to Queue inputs (the event has preprocess=False), done here so that no
    refusal escapes as Gradio's bare red "Error" badge: numbers are rounded but not range-checked
    (GenerationParams refuses them as "seed: ..."), file payloads become paths, other values pass as sent (a
    dropdown's choices may have changed in the page's session: LoRA files are checked by the queue's input
    checker, enums by the params).
    A payload that cannot be read becomes "<its label>: <why>". Returns (values, errors)."""
    values: dict[Component, Any] = {}
    errors: list[str] = []
    for comp, value in raw.items():
        try:
            if isinstance(comp, (gr.Number, gr.Slider)):
                values[comp] = None if value is None else gr.Number.round_to_precision(float(value), comp.precision)
            elif getattr(comp, "data_model", None) is not None and _is_file_data(value):
                values[comp] = comp.preprocess(comp.data_model.model_validate(value))
            else:  # text, checkboxes, dropdowns (by value; their session's choices are checked by the params)
                values[comp] = value
        except Exception as exc:  # noqa: BLE001 - gr.Error, ValueError, pydantic: all shown as a sentence
            errors.append(f"{_label(comp)}: {exc}")
    return values, errors


def refusal_text(errors: list[str], before: str = "") -> str:
    """The message area's text for a refused Add to Queue: one "field: sentence" line per problem."""
    return "**Not added:**" + before + "\n" + "\n".join(f"- {e}" for e in errors)


def _wire_add(form: GenerateForm, add_btn: gr.Button, services: Services) -> None:
    def add(data: dict) -> tuple[str, Any]:
        jobs, errors = collect(form, data, services.settings.current)
        if errors or jobs is None:
            gr.Warning("Not added: " + "; ".join(errors)[:300])
            return refusal_text(errors), gr.update()
        try:
            if jobs.batch:  # all or nothing: every file is checked before any job is queued
                ids = services.queue.add_batch(jobs.params, AddOptions(name=jobs.name, batch_inputs=jobs.batch,
                                                                               gpu=jobs.gpu))
            else:
                ids = [services.queue.add(jobs.params, name=jobs.name, gpu=jobs.gpu)]
        except JobValidationError as exc:  # the queue's own checks (input files, prompt, grid cells)
            lines = [f"{e.field}: {e.message}" for e in exc.errors]
            gr.Warning("Not added: " + "; ".join(lines)[:300])
            return refusal_text(lines), gr.update()
        except StorageFullError as exc:
            gr.Warning(f"Not added: {exc}"[:300])
            return f"**Not added:** {exc}", gr.update()
        group = f" as one group ({len(ids)} jobs)" if jobs.batch else ""
        text = f"✅ Added job {', '.join(ids)} to the queue{group}."
        gr.Info(text)
        return text, gr.update(value=jobs.params.seed)

    def on_add(raw: dict) -> tuple[str, Any]:
        # preprocess=False: Gradio would refuse an out-of-range number before this runs, as an "Error" badge.
        data, errors = preprocess_form(raw)
        if errors:
            gr.Warning("Not added: " + "; ".join(errors)[:300])
            return refusal_text(errors), gr.update()
        try:
            return add(data)
        except Exception as exc:  # noqa: BLE001 - shown in the message area, never as a bare "Error" badge
            log.exception("Add to Queue failed")
            return f"**Not added:** {exc.__class__.__name__}: {exc} (details in the server log)", gr.update()

    add_btn.click(on_add, form.components(), [form.message, form.fields["seed"]], api_visibility="private",
                  preprocess=False)


def _wire_metadata(filler: FormFiller, metadata_file: gr.File) -> None:
    def on_metadata(value: Any) -> list[Any]:
        # The upload box is emptied again each time, so the next file can be dropped straight in.
        path = file_path(value)
        if path is None:
            return [*filler.keep(""), None]
        try:
            params, notes = params_from_metadata(path.read_text(encoding="utf-8", errors="replace"))
        except ValueError as exc:
            gr.Warning(str(exc)[:300])
            return [*filler.keep(f"⚠️ {exc}"), None]
        return [*filler.fill(params, loaded_message("metadata", notes)), None]

    metadata_file.upload(on_metadata, metadata_file, [*filler.outputs, metadata_file], api_visibility="private")


def _wire_presets(form: GenerateForm, filler: FormFiller, ui: PresetsPanel, presets: PresetStore) -> None:
    gen_type = form.fields["generation_type"]

    def on_save(raw: dict) -> tuple[Any, str]:
        data, errors = preprocess_form(raw)  # preprocess=False: no range-check "Error" badge (see on_add)
        if errors:
            return gr.update(), "⚠️ Not saved: " + "; ".join(errors)
        values: dict[str, Any] = {name: data[comp] for name, comp in form.fields.items()}
        values["loras"] = [{"name": n, "weight": w} for n, w in form.loras.chosen(data)]
        kind = data[gen_type]
        try:
            name = presets.save(kind, data[ui.name], values)
        except PresetError as exc:
            return gr.update(), f"⚠️ {exc}"
        return gr.update(choices=presets.names(kind), value=name), f"Saved preset **{name}** for {kind}."

    ui.save.click(on_save, {*form.fields.values(), ui.name, form.loras.select, *form.loras.sliders},
                  [ui.select, ui.msg], api_visibility="private", preprocess=False)

    def on_load(kind: str, name: str | None) -> list[Any]:
        if not name:
            return [*filler.unchanged(), "⚠️ Choose a preset first."]
        try:
            vals = presets.load(kind, name)
            base = {k: v for k, v in vals.items() if k in SCALAR_FIELDS or k == "loras"}
            base["generation_type"] = kind
            params, _notes = params_from_metadata(json.dumps(_drop_inputs(base)))
        except (PresetError, ValueError) as exc:
            return [*filler.unchanged(), f"⚠️ {exc}"]
        return [*filler.updates(params), f"Loaded preset **{name}**."]

    ui.load.click(on_load, [gen_type, ui.select], [*filler.controls, ui.msg], api_visibility="private")

    def on_delete(kind: str, name: str | None) -> tuple[Any, str]:
        if not name:
            return gr.update(), "⚠️ Choose a preset first."
        presets.delete(kind, name)
        return gr.update(choices=presets.names(kind), value=None), f"Deleted preset **{name}**."

    ui.delete.click(on_delete, [gen_type, ui.select], [ui.select, ui.msg], api_visibility="private")


def _wire_live(live: LivePanel, queue: QueueService) -> None:
    def on_tick(state: dict | None) -> tuple[str, Any, Any, str, dict]:
        job = followed_job(queue)
        img_upd, vid_upd = gr.update(), gr.update()
        state = dict(state or {})
        if job is not None:
            if job.status is JobStatus.RUNNING:
                queue.watch(job.id)  # an open page: the job builds its growing preview video
            p = job.progress
            image = p.preview_image if p else None
            img = _stamp(image)
            if img != state.get("image"):
                state["image"] = img
                img_upd = gr.update(value=image if img else None)
            final = job.output_video if job.status is JobStatus.COMPLETED else None
            video = final or (p.preview_video if p else None)
            vid = _stamp(video)
            if vid != state.get("video"):
                state["video"] = vid
                vid_upd = gr.update(value=video if vid else None)
        return live_html(job), img_upd, vid_upd, (job.id if job else ""), state

    live.timer.tick(on_tick, live.shown, [live.status, live.preview, live.video, live.job_id, live.shown],
                    api_visibility="private", show_progress="hidden")

    def on_cancel(job_id: str) -> str:
        if not job_id:
            return "No job to cancel."
        if queue.cancel(job_id):  # the store decides what can be cancelled
            gr.Info(f"Cancelling job {job_id}")
        else:
            gr.Info("That job is not running.")
        return live_html(queue.get(job_id))

    live.cancel.click(on_cancel, live.job_id, live.status, api_visibility="private")


def _drop_inputs(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in ("start_image", "end_image", "input_video", "keyframes")}


def _axis_text(axis) -> str:
    if axis is None:
        return ""
    sep = "\n" if axis.parameter == "prompt" else ", "
    return sep.join(str(v) for v in axis.values)


def _stamp(path: str | None) -> tuple[str, float] | None:
    """(path, mtime): the live view re-sends a file only when it changed."""
    if path is None:
        return None
    try:
        return (str(path), Path(path).stat().st_mtime)
    except OSError:
        return None
