"""Continue from this video (Outputs and Queue tabs) and Edit a pending job (Queue -> Generate -> Save).

Continue: a choice (Video F1, Video, Last frame as Start Frame) and a button beside a selected output video or a
selected COMPLETED job. The two Video modes queue the extension at once (QueueService.continue_output /
continue_job: the source's settings, the video as input, `continued_from` naming it); the last-frame mode puts
the video's last frame into the Generate tab's Start Frame, with the source's settings, and switches there.

Edit: "Edit in Generate" loads a PENDING job into the form, its input files into the upload boxes, and shows
"Save changes to job <id>" (with Cancel edit) under the form. Saving collects the form exactly as Add to Queue
does and replaces the job's parameters in place (QueueService.edit), refused with a sentence once it started.

app.py builds the edit bar on the Generate tab; queue.py and outputs.py lay out and wire their controls here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr
from gradio.components import Component

from modules.framepack.metadata import file_sha256
from modules.framepack.params import GenerationParams
from studio.jobs.continuation import (ContinueError, ContinueMode, last_frame, source_params,
                                      start_frame_params)
from studio.jobs.edit import EditRefused
from studio.jobs.model import JobStatus, JobValidationError
from studio.jobs.storage import StorageFullError
from studio.ui import outputs_index as idx
from studio.ui.generate import FormFiller, collect, preprocess_form, refusal_text
from studio.ui.services import Services

if TYPE_CHECKING:
    from studio.ui.generate import GenerateForm

log = logging.getLogger(__name__)

LAST_FRAMES = "last-frames"  # under the served thumbnails folder: the form's Start Frame box shows it


# ---- continue: controls beside a selected video ---------------------------------------------------------------------
@dataclass
class ContinueControls:
    mode: gr.Dropdown
    button: gr.Button


def continue_controls(prefix: str) -> ContinueControls:
    """The choice and the button (elem ids `<prefix>_continue_mode`, `<prefix>_continue`)."""
    with gr.Row():
        mode = gr.Dropdown([m.value for m in ContinueMode], value=ContinueMode.VIDEO_F1.value,
                           label="Continue as", elem_id=f"{prefix}_continue_mode", scale=2,
                           info="Video F1 / Video queue an extension with the same settings; the last frame "
                                "goes to Generate's Start Frame")
        button = gr.Button("⏩ Continue from this video", elem_id=f"{prefix}_continue", size="sm", scale=1)
    return ContinueControls(mode, button)


def _form(filler: FormFiller) -> GenerateForm:
    if filler.form is None:
        raise RuntimeError("the Generate form's filler carries no form")
    return filler.form


def _start_frame_updates(filler: FormFiller, services: Services, video: Path,
                         source: GenerationParams | None) -> list[Any]:
    """Form updates (filler.outputs; the frame goes into the Start Frame box) for the last-frame mode."""
    frame = last_frame(video, services.thumbs_dir / LAST_FRAMES)
    params = start_frame_params(source or GenerationParams(), frame)
    note = "" if source else " (it has no generation info: the other settings are the defaults)"
    return filler.fill(params, f"Start Frame: the last frame of {video.name}{note}.")


def wire_continue_output(ctl: ContinueControls, selected: gr.Textbox, msg: gr.Markdown, services: Services,
                         filler: FormFiller, tabs: gr.Tabs) -> None:
    """Outputs tab: continue the selected video, with the settings of its sidecar (or MP4 comment)."""

    def on_continue(path: str, mode: str) -> list[Any]:
        keep = [*filler.keep(), gr.update()]
        if not path:
            return [*keep, "⚠️ Select a video first."]
        video = Path(path)
        _, data = idx.info(video, services.metadata_dir)
        try:
            if ContinueMode(mode) is ContinueMode.START_FRAME:
                source = source_params(data) if data else None
                return [*_start_frame_updates(filler, services, video, source), gr.Tabs(selected="generate"),
                        f"Put the last frame of {video.name} into Generate's Start Frame."]
            job_id = services.queue.continue_output(video, data, mode)
        except (ContinueError, JobValidationError, StorageFullError) as exc:
            return [*keep, f"⚠️ Cannot continue {video.name}: {exc}"]
        return [*keep, f"✅ Queued job {job_id}: continues {video.name} as {mode}."]

    ctl.button.click(on_continue, [selected, ctl.mode], [*filler.outputs, tabs, msg],
                     api_visibility="private")


def wire_continue_job(ctl: ContinueControls, job_id: gr.Textbox, msg: gr.Markdown, services: Services,
                      filler: FormFiller, tabs: gr.Tabs, table: gr.HTML,
                      table_rows: Callable[[], str]) -> None:
    """Queue tab: continue the video of the selected COMPLETED job, with that job's parameters."""
    q = services.queue

    def on_continue(jid: str, mode: str) -> list[Any]:
        jid = (jid or "").strip()
        keep = [*filler.keep(), gr.update()]
        job = q.get(jid) if jid else None
        if job is None:
            return [*keep, "⚠️ Select a job first (click a row).", table_rows()]
        try:
            if ContinueMode(mode) is ContinueMode.START_FRAME:
                video = Path(job.output_video or "")
                if job.status is not JobStatus.COMPLETED or not video.is_file():
                    raise ContinueError(f"only a COMPLETED job's video can be continued; job {jid} is "
                                        f"{job.status.value}")
                return [*_start_frame_updates(filler, services, video, job.params), gr.Tabs(selected="generate"),
                        f"Put the last frame of job {jid} into Generate's Start Frame.", table_rows()]
            new_id = q.continue_job(jid, mode)
        except (ContinueError, JobValidationError, StorageFullError) as exc:
            return [*keep, f"⚠️ Cannot continue job {jid}: {exc}", table_rows()]
        return [*keep, f"✅ Queued job {new_id}: continues job {jid}'s video as {mode}.", table_rows()]

    ctl.button.click(on_continue, [job_id, ctl.mode], [*filler.outputs, tabs, msg, table],
                     api_visibility="private")


# ---- edit a pending job ---------------------------------------------------------------------------------------------
@dataclass
class EditBar:
    """Under the Generate form: which job is being edited ("" = none), Save and Cancel edit (hidden otherwise)."""

    editing: gr.State
    save: gr.Button
    cancel: gr.Button

    @property
    def outputs(self) -> list[Component]:
        return [self.editing, self.save, self.cancel]

    @staticmethod
    def shown(job_id: str) -> list[Any]:
        return [job_id, gr.update(visible=True, value=f"💾 Save changes to job {job_id}"), gr.update(visible=True)]

    @staticmethod
    def hidden() -> list[Any]:
        return ["", gr.update(visible=False), gr.update(visible=False)]


def edit_bar(services: Services, filler: FormFiller) -> EditBar:
    """Renders the bar (on the Generate tab, under the form) and wires Save and Cancel edit."""
    with gr.Row():
        save = gr.Button("💾 Save changes to job", variant="primary", visible=False, elem_id="edit_save")
        cancel = gr.Button("Cancel edit", visible=False, elem_id="edit_cancel", size="sm")
    bar = EditBar(gr.State(""), save, cancel)
    form = _form(filler)
    seed = form.fields["seed"]

    def on_save(raw: dict) -> list[Any]:
        job_id = str(raw.pop(bar.editing, "") or "")
        if not job_id:
            return [gr.update(), *EditBar.hidden(), gr.update()]
        data, errors = preprocess_form(raw)
        jobs = None
        if not errors:
            jobs, errors = collect(form, data, services.settings.current)
        if not errors and jobs is not None and jobs.batch:
            errors = ["batch inputs: a batch makes new jobs; empty the Batch inputs box to save this job, or use "
                      "Add to Queue"]
        if errors or jobs is None:
            return [refusal_text(errors).replace("Not added", "Not saved"), *EditBar.shown(job_id), gr.update()]
        try:
            job = services.queue.edit(job_id, _keep_continued_from(services, job_id, jobs.params))
        except JobValidationError as exc:  # the queue's own checks, as for Add
            lines = [f"{e.field}: {e.message}" for e in exc.errors]
            return [refusal_text(lines).replace("Not added", "Not saved"), *EditBar.shown(job_id), gr.update()]
        except EditRefused as exc:  # it started (or was removed) meanwhile: nothing to save into any more
            gr.Warning(str(exc)[:300])
            return [f"⚠️ {exc}", *EditBar.hidden(), gr.update()]
        except StorageFullError as exc:
            return [f"**Not saved:** {exc}", *EditBar.shown(job_id), gr.update()]
        text = f"✅ Saved changes to job {job.id} (same place in the queue)."
        gr.Info(text)
        return [text, *EditBar.hidden(), gr.update(value=job.params.seed)]

    # preprocess=False, as Add to Queue: a refusal shows as a sentence, never as Gradio's bare "Error" badge.
    save.click(on_save, {*form.components(), bar.editing}, [form.message, *bar.outputs, seed],
               api_visibility="private", preprocess=False)
    cancel.click(lambda: ["Edit cancelled: the job keeps its parameters.", *EditBar.hidden()], None,
                 [form.message, *bar.outputs], api_visibility="private")
    return bar


def _keep_continued_from(services: Services, job_id: str, params: GenerationParams) -> GenerationParams:
    """The form has no field for `continued_from`: an edited extension keeps it while it still extends the
    same video (by content)."""
    job = services.queue.get(job_id)
    source = job.params.continued_from if job is not None else None
    if source is None or not params.generation_type.is_video or params.input_video is None:
        return params
    if file_sha256(params.input_video) != source.sha256:
        return params
    return params.model_copy(update={"continued_from": source})


@dataclass
class EditButton:
    button: gr.Button


def edit_button() -> EditButton:
    return EditButton(gr.Button("✏️ Edit in Generate", elem_id="job_edit", size="sm"))


def wire_edit(ctl: EditButton, job_id: gr.Textbox, msg: gr.Markdown, services: Services, filler: FormFiller,
              tabs: gr.Tabs, bar: EditBar) -> None:
    """Queue tab: load the selected PENDING job into Generate for editing."""
    form = _form(filler)

    def on_edit(jid: str) -> list[Any]:
        jid = (jid or "").strip()
        job = services.queue.get(jid) if jid else None
        unchanged = [*filler.keep(), *(gr.update() for _ in range(1 + len(bar.outputs) + 1))]
        if job is None:
            return [*unchanged, "⚠️ Select a job first (click a row)."]
        if job.status is not JobStatus.PENDING:
            return [*unchanged, f"⚠️ Only a PENDING job can be edited; job {jid} is {job.status.value}."]
        note = f"Editing job {jid}: change the form, then press Save changes to job {jid} (below the form)."
        return [*filler.fill(job.params, note), None, *EditBar.shown(jid),  # None: an edit is one job, no batch
                gr.Tabs(selected="generate"), f"Editing job {jid} in Generate."]

    ctl.button.click(on_edit, job_id, [*filler.outputs, form.inputs.batch_files, *bar.outputs, tabs, msg],
                     api_visibility="private")


# ---- the Queue tab's controls (laid out by queue.py, wired by wire_queue) -------------------------------------------
@dataclass
class QueueControls:
    edit: EditButton
    cont: ContinueControls


def queue_controls() -> QueueControls:
    """Edit in Generate (a PENDING job) and Continue from this video (a COMPLETED job), in the tab's layout."""
    with gr.Row():
        edit = edit_button()
        cont = continue_controls("queue")
    return QueueControls(edit, cont)


def wire_queue(ctl: QueueControls, job_id: gr.Textbox, msg: gr.Markdown, services: Services, filler: FormFiller,
               tabs: gr.Tabs, bar: EditBar | None, table: gr.HTML,
               table_rows: Callable[[], str]) -> None:
    if bar is not None:
        wire_edit(ctl.edit, job_id, msg, services, filler, tabs, bar)
    wire_continue_job(ctl.cont, job_id, msg, services, filler, tabs, table, table_rows)
