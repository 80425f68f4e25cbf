"""Queue tab: the job table (auto-refreshed) and every queue action, all through the queue service."""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr

from studio.jobs.archive import ArchiveError
from studio.jobs.model import JobStatus, JobSummary, JobValidationError
from studio.jobs.storage import StorageFullError
from studio.ui.generate import FormFiller, loaded_message
from studio.ui.services import Services
from studio.ui.uploads import file_path

if TYPE_CHECKING:
    from studio.jobs.service import QueueService

log = logging.getLogger(__name__)

COLUMNS = ["Job ID", "Type", "Status", "Created", "Started", "Completed", "Elapsed", "Preview"]


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _thumb(job: JobSummary) -> str:
    if job.thumbnail and Path(job.thumbnail).is_file():
        src = "/gradio_api/file=" + html.escape(str(job.thumbnail), quote=True)
        return f"<img src='{src}' alt='preview' style='height:48px;border-radius:4px'>"
    return ""


def _status(job: JobSummary) -> str:
    p = job.progress
    if job.status is JobStatus.RUNNING and p is not None and p.total_steps:
        return f"RUNNING {(p.section or 0) + 1}/{p.total_sections or '?'} · {p.step or 0}/{p.total_steps}"
    return job.status.value


def rows(jobs: list[JobSummary]) -> list[list[str]]:
    """The table rows (COLUMNS) for the queue's own job records."""
    return [[j.id, j.generation_type, _status(j), _ts(j.created_at), _ts(j.started_at), _ts(j.completed_at),
             _elapsed(j.elapsed_seconds), _thumb(j)] for j in jobs]


@dataclass
class QueueTab:
    """What app.py needs after building the tab: a function filling the table, and the table."""

    table_rows: Callable[[], list[list[str]]]
    table: gr.Dataframe


@dataclass
class _Panel:
    refresh: gr.Button
    cancel_all: gr.Button
    clear_done: gr.Button
    pause: gr.Button
    resume: gr.Button
    table: gr.Dataframe
    job_id: gr.Textbox
    job_buttons: dict[str, gr.Button]  # cancel, remove, retry, up, down, duplicate, load
    msg: gr.Markdown
    job_error: gr.Textbox
    load_queue: gr.Button
    export: gr.Button
    export_file: gr.File
    import_file: gr.File


def _layout() -> _Panel:
    with gr.Row():
        refresh = gr.Button("🔄 Refresh Queue", elem_id="queue_refresh", size="sm")
        cancel_all = gr.Button("⏹️ Cancel Queue", elem_id="queue_cancel_all", variant="stop", size="sm")
        clear_done = gr.Button("🧹 Clear Complete", elem_id="queue_clear", size="sm")
        pause = gr.Button("⏸️ Pause worker", elem_id="queue_pause", size="sm")
        resume = gr.Button("▶️ Resume worker", elem_id="queue_resume", size="sm")
    table = gr.Dataframe(value=None, headers=COLUMNS, datatype=["str"] * 7 + ["html"], interactive=False,
                         wrap=True, elem_id="queue_table", label="Jobs", max_height=520,
                         column_widths=["13%", "15%", "14%", "14%", "14%", "14%", "7%", "9%"])
    with gr.Row():
        job_id = gr.Textbox(label="Selected job (click a row)", elem_id="queue_job_id", scale=2)
        with gr.Column(scale=5):
            with gr.Row():
                buttons = {key: gr.Button(text, elem_id=elem, size="sm") for key, text, elem in (
                    ("cancel", "Cancel job", "job_cancel"), ("remove", "Remove", "job_remove"),
                    ("retry", "Retry", "job_retry"), ("up", "⬆️ Move up", "job_up"),
                    ("down", "⬇️ Move down", "job_down"), ("duplicate", "Duplicate", "job_duplicate"),
                    ("load", "Load into Generate", "job_load"))}
    msg = gr.Markdown("", elem_id="queue_msg")
    job_error = gr.Textbox(label="Job error", visible=False, lines=4, elem_id="queue_job_error")
    with gr.Accordion("Import / Export", open=True):
        with gr.Row():
            load_queue = gr.Button("📂 Load Queue (queue.json)", elem_id="queue_load", size="sm")
            export = gr.Button("📦 Export Queue", elem_id="queue_export", size="sm")
        with gr.Row():
            export_file = gr.File(label="Exported queue (download)", interactive=False, elem_id="queue_export_file")
            import_file = gr.File(label="Import Queue (.json or .zip)", file_types=[".json", ".zip"],
                                  elem_id="queue_import")
    return _Panel(refresh, cancel_all, clear_done, pause, resume, table, job_id, buttons, msg, job_error,
                  load_queue, export, export_file, import_file)


def build(services: Services, form: FormFiller, tabs: gr.Tabs) -> QueueTab:
    """Renders the tab. `form` and `tabs` let "Load into Generate" fill the Generate form and switch to it."""
    q = services.queue

    def table() -> list[list[str]]:
        return rows(q.list())

    ui = _layout()
    timer = gr.Timer(2.0)
    timer.tick(table, None, ui.table, api_visibility="private", show_progress="hidden")
    ui.refresh.click(table, None, ui.table, api_visibility="private")
    _wire_selection(ui, q)
    _wire_job_actions(ui, q, table)
    _wire_queue_actions(ui, q, table)
    _wire_import_export(ui, services, table)
    _wire_load_into_generate(ui, q, form, tabs)
    return QueueTab(table, ui.table)


def _wire_selection(ui: _Panel, q: QueueService) -> None:
    def on_select(evt: gr.SelectData, data: Any) -> tuple[Any, Any]:
        try:
            row = evt.index[0]
            jid = data.iloc[row, 0] if hasattr(data, "iloc") else data[row][0]
        except (IndexError, KeyError, TypeError):
            return gr.update(), gr.update()
        job = q.get(str(jid))
        err = job.error if job is not None and job.error else None
        return str(jid), gr.update(visible=bool(err), value=err or "")

    ui.table.select(on_select, ui.table, [ui.job_id, ui.job_error], api_visibility="private")


def _wire_job_actions(ui: _Panel, q: QueueService, table: Callable[[], list[list[str]]]) -> None:
    """The selected job's buttons. Each action answers whether the store allowed it; False says why not."""

    def act(fn: Callable[[str], object], done: str, refused: str) -> Callable[[str], tuple[str, list]]:
        def handler(jid: str) -> tuple[str, list]:
            jid = (jid or "").strip()
            if not jid:
                return "⚠️ Select a job first (click a row).", table()
            if q.get(jid) is None:
                return f"⚠️ No job {jid}.", table()
            try:
                result = fn(jid)
            except (JobValidationError, StorageFullError) as exc:  # duplicate: inputs gone, or disk full
                return f"⚠️ {exc}", table()
            if not result:
                return f"⚠️ {refused.format(id=jid)}", table()
            return done.format(id=jid, result=result), table()
        return handler

    actions = {
        "cancel": (q.cancel, "Cancel requested for {id}.", "Job {id} cannot be cancelled (it has finished)."),
        "remove": (q.remove, "Removed {id}.", "Job {id} cannot be removed (running jobs must be cancelled first)."),
        "retry": (q.retry, "Retrying {id}.",
                  "Job {id} cannot be retried (only FAILED, CANCELLED or INTERRUPTED jobs)."),
        "up": (q.move_up, "Moved {id} up.", "Job {id} cannot move further up (only PENDING jobs move)."),
        "down": (q.move_down, "Moved {id} down.", "Job {id} cannot move further down (only PENDING jobs move)."),
        "duplicate": (q.duplicate, "Duplicated {id} as {result}.", "Job {id} not found."),
    }
    for key, (fn, done, refused) in actions.items():
        ui.job_buttons[key].click(act(fn, done, refused), ui.job_id, [ui.msg, ui.table], api_visibility="private")


def _wire_queue_actions(ui: _Panel, q: QueueService, table: Callable[[], list[list[str]]]) -> None:
    def on_cancel_all(confirmed: bool) -> tuple[str, list]:
        if not confirmed:
            return "Cancel Queue aborted.", table()
        return f"Cancelled {q.cancel_pending()} pending job(s).", table()

    confirmed = gr.Checkbox(visible=False)  # set by the browser's confirm() (a State would ignore it)
    ui.cancel_all.click(on_cancel_all, confirmed, [ui.msg, ui.table], api_visibility="private",
                        js="(x) => confirm('Cancel all PENDING jobs? The running job continues.')")

    def on_clear() -> tuple[str, list]:
        return f"Cleared {q.clear_finished()} finished job(s).", table()

    def on_pause() -> str:
        q.pause()
        return "Worker paused: the running job finishes, no new job starts."

    def on_resume() -> str:
        q.resume()
        return "Worker resumed."

    ui.clear_done.click(on_clear, None, [ui.msg, ui.table], api_visibility="private")
    ui.pause.click(on_pause, None, ui.msg, api_visibility="private")
    ui.resume.click(on_resume, None, ui.msg, api_visibility="private")


def _wire_import_export(ui: _Panel, services: Services, table: Callable[[], list[list[str]]]) -> None:
    q = services.queue

    def on_load() -> tuple[str, list]:
        path = services.paths.queue_json
        if not path.is_file():
            return f"⚠️ No queue.json in the data directory ({path.parent}).", table()
        try:
            result = q.load_queue()
        except (ArchiveError, StorageFullError) as exc:
            return f"⚠️ queue.json not loaded: {exc}", table()
        return f"Loaded {len(result.added)} job(s) from queue.json.", table()

    ui.load_queue.click(on_load, None, [ui.msg, ui.table], api_visibility="private")

    def on_export() -> tuple[Any, str]:
        dest = services.paths.exports_dir / time.strftime("queue-%Y%m%d-%H%M%S.zip")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            out = q.export_zip(dest)
        except OSError as exc:  # disk full or an unwritable exports folder
            return gr.update(), f"⚠️ Export failed: {exc}"
        return str(out), f"Exported the queue to {Path(out).name}."

    ui.export.click(on_export, None, [ui.export_file, ui.msg], api_visibility="private")

    def on_import(value: Any) -> tuple[Any, list]:
        path = file_path(value)
        if path is None:
            return gr.update(), table()
        try:
            result = q.import_file(path)
        except (ArchiveError, StorageFullError) as exc:
            gr.Warning(f"Import refused: {exc}"[:300])
            return f"⚠️ Import refused, nothing added: {exc}", table()
        return f"Imported {len(result.added)} job(s).", table()

    ui.import_file.upload(on_import, ui.import_file, [ui.msg, ui.table], api_visibility="private")


def _wire_load_into_generate(ui: _Panel, q: QueueService, form: FormFiller, tabs: gr.Tabs) -> None:
    """Fills the Generate form with the selected job's parameters and switches to it, in one event."""

    def on_load_into(jid: str) -> list[Any]:
        job = q.get((jid or "").strip())
        if job is None:
            return [*form.keep(), gr.update(), "⚠️ Select a job first (click a row)."]
        return [*form.fill(job.params, loaded_message(f"job {job.id}", [])), gr.Tabs(selected="generate"),
                f"Loaded {job.id} into Generate."]

    ui.job_buttons["load"].click(on_load_into, ui.job_id, [*form.outputs, tabs, ui.msg], api_visibility="private")
