"""Queue tab: the job table (auto-refreshed) and every queue action, all through the queue service.

The table lists the jobs in the service's order (the running job, then PENDING jobs in the order they will run,
then finished ones newest first), each with a prompt snippet, its progress and a thumbnail."""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr

from modules.framepack.naming import unique_stem
from studio.jobs.archive import ArchiveError
from studio.jobs.model import JobStatus, JobSummary, JobValidationError
from studio.jobs.storage import StorageFullError
from studio.ui import continue_edit, queue_groups
from studio.ui.generate import FormFiller, loaded_message
from studio.ui.outputs_index import thumbnail
from studio.ui.services import Services
from studio.ui.uploads import file_path

if TYPE_CHECKING:
    from studio.jobs.service import QueueService

log = logging.getLogger(__name__)

COLUMNS = ["Job ID", "Type", "Status", "Worker", "Progress", "Prompt", "Created", "Started", "Completed", "Elapsed",
           "Preview", *queue_groups.COLUMNS]
_HTML_COLUMNS = {"Progress", "Preview"}
PROMPT_SNIPPET = 60  # characters of the prompt a row shows


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _thumb_path(job: JobSummary, thumbs_dir: Path) -> Path | None:
    """A finished job's output (the engine's thumbnail, else a cached first frame), else its input's thumbnail."""
    if job.status is JobStatus.COMPLETED and job.output_video and Path(job.output_video).is_file():
        out = thumbnail(Path(job.output_video), thumbs_dir)
        if out is not None:
            return out
    if job.thumbnail and Path(job.thumbnail).is_file():
        return Path(job.thumbnail)
    return None


def _thumb(job: JobSummary, thumbs_dir: Path) -> str:
    path = _thumb_path(job, thumbs_dir)
    if path is None:
        return ""
    src = "/gradio_api/file=" + html.escape(str(path), quote=True)
    return f"<img src='{src}' alt='preview' style='height:48px;border-radius:4px'>"


def _progress(job: JobSummary, place: int | None) -> str:
    """The row's progress: a bar for a started job (full once completed), the place in line for a PENDING one."""
    if job.status is JobStatus.PENDING:
        return "next" if place == 1 else f"#{place} in line" if place else ""
    done = 1.0 if job.status is JobStatus.COMPLETED else job.progress.fraction if job.progress else None
    if done is None:
        return "starting" if job.status is JobStatus.RUNNING else ""
    return (f"<div class='fp-row-progress' title='{100 * done:.0f}%'>{100 * done:.0f}%"
            f"<div class='fp-bar'><div class='fp-bar-fill' style='width:{100 * done:.0f}%'></div></div></div>")


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PROMPT_SNIPPET else text[:PROMPT_SNIPPET - 1].rstrip() + "…"


def _status(job: JobSummary) -> str:
    p = job.progress
    if job.status is JobStatus.RUNNING and p is not None and p.total_steps:
        return f"RUNNING {(p.section or 0) + 1}/{p.total_sections or '?'} · {p.step or 0}/{p.total_steps}"
    return job.status.value


def _worker(job: JobSummary) -> str:
    """The worker that ran (runs) the job; for one still waiting, the worker it asked for, if any."""
    if job.worker:
        return job.worker
    return f"wants {job.gpu}" if job.gpu else ""


def rows(jobs: list[JobSummary], thumbs_dir: Path) -> list[list[str]]:
    """The table rows (COLUMNS) for the queue's own job records, in the order given (QueueService.list's).

    thumbs_dir caches first frames of outputs the engine wrote no thumbnail for."""
    out, place = [], 0
    for j in jobs:
        place += j.status is JobStatus.PENDING  # PENDING jobs come in run order: their place in line
        out.append([j.id, j.generation_type, _status(j), _worker(j), _progress(j, place if j.status is JobStatus.PENDING
                                                                      else None),
                    _snippet(j.title), _ts(j.created_at), _ts(j.started_at), _ts(j.completed_at),
                    _elapsed(j.elapsed_seconds), _thumb(j, thumbs_dir), *queue_groups.cells(j)])
    return out


def render(table_rows: list[list[str]]) -> str:
    """The rows as the tab's HTML table, a row per job (`data-job` is its id: a click selects it).

    Plain HTML, re-rendered whole on each refresh: Gradio's Dataframe kept cells of other rows when rows moved
    (the running job showed a pending job's place in line), and jobs move here all the time."""
    html_cols = [c in _HTML_COLUMNS for c in COLUMNS]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        f"<tr data-job='{html.escape(r[0], quote=True)}'>"
        + "".join(f"<td>{v if is_html else html.escape(v)}</td>" for v, is_html in zip(r, html_cols, strict=True))
        + "</tr>" for r in table_rows)
    if not table_rows:
        body = f"<tr><td colspan='{len(COLUMNS)}'>No jobs.</td></tr>"
    return f"<table class='fp-queue'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# A click on a row puts its job id into the "Selected job" box, as typing it would (its change event does the rest).
_SELECT_ROW_JS = """
element.addEventListener('click', (event) => {
    const row = event.target.closest('tr[data-job]');
    const box = document.querySelector('#queue_job_id textarea, #queue_job_id input');
    if (!row || !box) return;
    box.value = row.dataset.job;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    element.querySelectorAll('tr.fp-selected').forEach((r) => r.classList.remove('fp-selected'));
    row.classList.add('fp-selected');
});
"""


@dataclass
class QueueTab:
    """What app.py needs after building the tab: a function filling the table, and the table."""

    table_rows: Callable[[], str]  # the table's HTML
    table: gr.HTML


@dataclass
class _Panel:
    refresh: gr.Button
    cancel_all: gr.Button
    clear_done: gr.Button
    pause: gr.Button
    resume: gr.Button
    table: gr.HTML
    job_id: gr.Textbox
    job_buttons: dict[str, gr.Button]  # cancel, remove, retry, up, down, duplicate, load
    msg: gr.Markdown
    job_error: gr.Textbox
    load_file: gr.File
    export: gr.Button
    export_file: gr.File
    groups: queue_groups.GroupControls | None = None  # batch groups: studio/ui/queue_groups.py
    continue_ctl: continue_edit.QueueControls | None = None  # Edit in Generate, Continue: continue_edit.py


def _layout() -> _Panel:
    with gr.Row():
        refresh = gr.Button("🔄 Refresh Queue", elem_id="queue_refresh", size="sm")
        cancel_all = gr.Button("⏹️ Cancel Queue", elem_id="queue_cancel_all", variant="stop", size="sm")
        clear_done = gr.Button("🧹 Clear Complete", elem_id="queue_clear", size="sm")
        pause = gr.Button("⏸️ Pause worker", elem_id="queue_pause", size="sm")
        resume = gr.Button("▶️ Resume worker", elem_id="queue_resume", size="sm")
    gr.Markdown("**Jobs** (running, then next to run, then newest; click a row to select it)")
    table = gr.HTML(render([]), elem_id="queue_table", js_on_load=_SELECT_ROW_JS)
    with gr.Row():
        job_id = gr.Textbox(label="Selected job (click a row)", elem_id="queue_job_id", scale=2)
        with gr.Column(scale=5):
            with gr.Row():
                buttons = {key: gr.Button(text, elem_id=elem, size="sm") for key, text, elem in (
                    ("cancel", "Cancel job", "job_cancel"), ("remove", "Remove", "job_remove"),
                    ("retry", "Retry", "job_retry"), ("up", "⬆️ Move up", "job_up"),
                    ("down", "⬇️ Move down", "job_down"), ("duplicate", "Duplicate", "job_duplicate"),
                    ("load", "Load into Generate", "job_load"))}
    groups = queue_groups.group_controls()
    extra = continue_edit.queue_controls()
    msg = gr.Markdown("", elem_id="queue_msg")
    job_error = gr.Textbox(label="Job error", visible=False, lines=4, elem_id="queue_job_error")
    with gr.Accordion("Import / Export", open=True):
        with gr.Row():
            # One box for the guide's Load Queue and Import Queue: both add the jobs of a file the user picks
            # (the queue itself lives in queue.db and survives restarts without a queue.json).
            load_file = gr.File(label="📂 Load Queue / Import Queue: FramePack-Studio's queue.json, or this app's "
                                      "exported .zip or .json", file_types=[".json", ".zip"], elem_id="queue_load")
            with gr.Column():
                export = gr.Button("📦 Export Queue", elem_id="queue_export", size="sm")
                export_file = gr.File(label="Exported queue (download)", interactive=False,
                                      elem_id="queue_export_file")
    return _Panel(refresh, cancel_all, clear_done, pause, resume, table, job_id, buttons, msg, job_error,
                  load_file, export, export_file, groups, continue_ctl=extra)


def build(services: Services, form: FormFiller, tabs: gr.Tabs,
          edit_bar: continue_edit.EditBar | None = None) -> QueueTab:
    """Renders the tab. `form` and `tabs` let "Load into Generate" fill the Generate form and switch to it;
    `edit_bar` is the Generate tab's "Save changes to job <id>" bar that "Edit in Generate" shows."""
    q = services.queue

    def table() -> str:
        return render(rows(q.list(), services.thumbs_dir))

    ui = _layout()
    timer = gr.Timer(2.0)
    timer.tick(table, None, ui.table, api_visibility="private", show_progress="hidden")
    ui.refresh.click(table, None, ui.table, api_visibility="private")
    _wire_selection(ui, q)
    _wire_job_actions(ui, q, table)
    _wire_queue_actions(ui, q, table)
    _wire_import_export(ui, services, table)
    _wire_load_into_generate(ui, q, form, tabs)
    if ui.continue_ctl is not None:
        continue_edit.wire_queue(ui.continue_ctl, ui.job_id, ui.msg, services, form, tabs, edit_bar, ui.table,
                                 table)
    if ui.groups is not None:
        queue_groups.wire(ui.groups, ui.job_id, ui.table, ui.msg, q, table)
    return QueueTab(table, ui.table)


def _wire_selection(ui: _Panel, q: QueueService) -> None:
    def on_select(jid: str) -> Any:
        job = q.get((jid or "").strip()) if jid else None
        err = job.error if job is not None and job.error else None
        return gr.update(visible=bool(err), value=err or "")

    ui.job_id.change(on_select, ui.job_id, ui.job_error, api_visibility="private", show_progress="hidden")


def _wire_job_actions(ui: _Panel, q: QueueService, table: Callable[[], str]) -> None:
    """The selected job's buttons. Each action answers whether the store allowed it; False says why not."""

    def act(fn: Callable[[str], object], done: str, refused: str) -> Callable[[str], tuple[str, str]]:
        def handler(jid: str) -> tuple[str, str]:
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


def _wire_queue_actions(ui: _Panel, q: QueueService, table: Callable[[], str]) -> None:
    def on_cancel_all(confirmed: bool) -> tuple[str, str]:
        if not confirmed:
            return "Cancel Queue aborted.", table()
        return f"Cancelled {q.cancel_pending()} pending job(s).", table()

    confirmed = gr.Checkbox(visible=False)  # set by the browser's confirm() (a State would ignore it)
    ui.cancel_all.click(on_cancel_all, confirmed, [ui.msg, ui.table], api_visibility="private",
                        js="(x) => confirm('Cancel all PENDING jobs? The running job continues.')")

    def on_clear() -> tuple[str, str]:
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


def _wire_import_export(ui: _Panel, services: Services, table: Callable[[], str]) -> None:
    q = services.queue

    def on_load(value: Any) -> tuple[Any, str, list]:
        """Imports the picked file; the box is emptied either way, so the next pick (even of the same file,
        corrected) is a new upload."""
        path = file_path(value)
        if path is None:
            return gr.update(), gr.update(), table()
        try:
            result = q.import_file(path)
        except (ArchiveError, StorageFullError) as exc:
            gr.Warning(f"Load Queue refused: {exc}"[:300])
            return None, f"⚠️ Load Queue refused, nothing added: {exc}", table()
        return None, result.message, table()

    ui.load_file.upload(on_load, ui.load_file, [ui.load_file, ui.msg, ui.table], api_visibility="private")

    def on_export() -> tuple[Any, str]:
        # The exports folder, not temp/: Clear Temporary Files must not delete what the user saved.
        folder = services.paths.exports_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Kept files: a second export within the same second gets its own name instead of replacing one.
            out = q.export_zip(folder / (unique_stem(folder, time.strftime("queue-%Y%m%d-%H%M%S"), (".zip",))
                                         + ".zip"))
        except OSError as exc:  # disk full or an unwritable exports folder
            return gr.update(), f"⚠️ Export failed: {exc}"
        return str(out), f"Exported the queue to {out}."

    ui.export.click(on_export, None, [ui.export_file, ui.msg], api_visibility="private")


def _wire_load_into_generate(ui: _Panel, q: QueueService, form: FormFiller, tabs: gr.Tabs) -> None:
    """Fills the Generate form with the selected job's parameters and switches to it, in one event."""

    def on_load_into(jid: str) -> list[Any]:
        job = q.get((jid or "").strip())
        if job is None:
            return [*form.keep(), gr.update(), "⚠️ Select a job first (click a row)."]
        return [*form.fill(job.params, loaded_message("Queue", [])), gr.Tabs(selected="generate"),
                f"Loaded {job.id} into Generate."]

    ui.job_buttons["load"].click(on_load_into, ui.job_id, [*form.outputs, tabs, ui.msg], api_visibility="private")
