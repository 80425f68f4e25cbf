"""Queue tab: the job table (auto-refreshed) and every queue action, all through the queue facade."""

from __future__ import annotations

import html
import json
import logging
import time
from pathlib import Path

import gradio as gr

from studio.ui.services import JobView, Services, SharedState
from studio.ui.uploads import file_path

log = logging.getLogger(__name__)

COLUMNS = ["Job ID", "Type", "Status", "Created", "Started", "Completed", "Elapsed", "Preview"]


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _thumb(job: JobView) -> str:
    if job.thumbnail and Path(job.thumbnail).is_file():
        src = "/gradio_api/file=" + html.escape(str(job.thumbnail), quote=True)
        return f"<img src='{src}' alt='preview' style='height:48px;border-radius:4px'>"
    return ""


def rows(jobs: list[JobView]) -> list[list[str]]:
    out = []
    for j in jobs:
        status = j.status
        if j.status == "RUNNING" and j.total_steps:
            status = f"RUNNING {(j.section or 0) + 1}/{j.total_sections or '?'} · {j.step or 0}/{j.total_steps}"
        out.append([j.id, j.type, status, _ts(j.created), _ts(j.started), _ts(j.completed), _elapsed(j.elapsed),
                    _thumb(j)])
    return out


def build(services: Services, shared: SharedState) -> None:
    q = services.queue

    def table():
        return rows(q.list())

    with gr.Row():
        refresh = gr.Button("🔄 Refresh Queue", elem_id="queue_refresh", size="sm")
        cancel_all = gr.Button("⏹️ Cancel Queue", elem_id="queue_cancel_all", variant="stop", size="sm")
        clear_done = gr.Button("🧹 Clear Complete", elem_id="queue_clear", size="sm")
        pause = gr.Button("⏸️ Pause worker", elem_id="queue_pause", size="sm")
        resume = gr.Button("▶️ Resume worker", elem_id="queue_resume", size="sm")
    table_df = gr.Dataframe(value=None, headers=COLUMNS, datatype=["str"] * 7 + ["html"], interactive=False,
                            wrap=True, elem_id="queue_table", label="Jobs", max_height=520,
                            column_widths=["13%", "15%", "14%", "14%", "14%", "14%", "7%", "9%"])
    with gr.Row():
        job_id = gr.Textbox(label="Selected job (click a row)", elem_id="queue_job_id", scale=2)
        with gr.Column(scale=5):
            with gr.Row():
                b_cancel = gr.Button("Cancel job", elem_id="job_cancel", size="sm")
                b_remove = gr.Button("Remove", elem_id="job_remove", size="sm")
                b_retry = gr.Button("Retry", elem_id="job_retry", size="sm")
                b_up = gr.Button("⬆️ Move up", elem_id="job_up", size="sm")
                b_down = gr.Button("⬇️ Move down", elem_id="job_down", size="sm")
                b_dup = gr.Button("Duplicate", elem_id="job_duplicate", size="sm")
                b_load = gr.Button("Load into Generate", elem_id="job_load", size="sm")
    msg = gr.Markdown("", elem_id="queue_msg")
    job_error = gr.Textbox(label="Job error", visible=False, lines=4, elem_id="queue_job_error")
    with gr.Accordion("Import / Export", open=True):
        with gr.Row():
            load_btn = gr.Button("📂 Load Queue (queue.json)", elem_id="queue_load", size="sm")
            export_btn = gr.Button("📦 Export Queue", elem_id="queue_export", size="sm")
        with gr.Row():
            export_file = gr.File(label="Exported queue (download)", interactive=False, elem_id="queue_export_file")
            import_file = gr.File(label="Import Queue (.json or .zip)", file_types=[".json", ".zip"],
                                  elem_id="queue_import")
    timer = gr.Timer(2.0)

    timer.tick(table, None, table_df, api_visibility="private", show_progress="hidden")
    refresh.click(table, None, table_df, api_visibility="private")

    def on_select(evt: gr.SelectData, data):
        try:
            row = evt.index[0]
            jid = data.iloc[row, 0] if hasattr(data, "iloc") else data[row][0]
        except (IndexError, KeyError, TypeError):
            return gr.update(), gr.update()
        job = q.get(str(jid))
        err = job.error if job is not None and job.error else None
        return str(jid), gr.update(visible=bool(err), value=err or "")

    table_df.select(on_select, table_df, [job_id, job_error], api_visibility="private")

    def act(fn, done: str):
        def handler(jid: str):
            jid = (jid or "").strip()
            if not jid:
                return "⚠️ Select a job first (click a row).", table()
            if q.get(jid) is None:
                return f"⚠️ No job {jid}.", table()
            try:
                result = fn(jid)
            except Exception as exc:  # the store says why an action is not allowed
                return f"⚠️ {exc}", table()
            return done.format(id=jid, result=result or ""), table()
        return handler

    b_cancel.click(act(q.cancel, "Cancel requested for {id}."), job_id, [msg, table_df], api_visibility="private")
    b_remove.click(act(q.remove, "Removed {id}."), job_id, [msg, table_df], api_visibility="private")
    b_retry.click(act(q.retry, "Retrying {id}."), job_id, [msg, table_df], api_visibility="private")
    b_up.click(act(lambda j: q.move(j, -1), "Moved {id} up."), job_id, [msg, table_df], api_visibility="private")
    b_down.click(act(lambda j: q.move(j, 1), "Moved {id} down."), job_id, [msg, table_df], api_visibility="private")
    b_dup.click(act(q.duplicate, "Duplicated {id} as {result}."), job_id, [msg, table_df], api_visibility="private")

    def on_cancel_all(confirmed):
        if not confirmed:
            return "Cancel Queue aborted.", table()
        n = q.cancel_pending()
        return f"Cancelled {n} pending job(s).", table()

    confirmed = gr.Checkbox(visible=False)  # set by the browser's confirm() (a State would ignore it)
    cancel_all.click(on_cancel_all, confirmed, [msg, table_df], api_visibility="private",
                     js="(x) => confirm('Cancel all PENDING jobs? The running job continues.')")

    def on_clear():
        n = q.clear_finished()
        return f"Cleared {n} finished job(s).", table()

    clear_done.click(on_clear, None, [msg, table_df], api_visibility="private")
    pause.click(lambda: (q.pause(), "Worker paused: the running job finishes, no new job starts.")[1], None, msg,
                api_visibility="private")
    resume.click(lambda: (q.resume(), "Worker resumed.")[1], None, msg, api_visibility="private")

    def on_load():
        path = services.paths.queue_json
        if not path.is_file():
            return f"⚠️ No queue.json in the data directory ({path.parent}).", table()
        try:
            n = q.load_queue_json(path)
        except Exception as exc:
            return f"⚠️ queue.json not loaded: {exc}", table()
        return f"Loaded {n} job(s) from queue.json.", table()

    load_btn.click(on_load, None, [msg, table_df], api_visibility="private")

    def on_export():
        dest = services.paths.exports_dir / time.strftime("queue-%Y%m%d-%H%M%S.zip")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            out = q.export_zip(dest)
        except Exception as exc:
            return gr.update(), f"⚠️ Export failed: {exc}"
        return str(out), f"Exported the queue to {Path(out).name}."

    export_btn.click(on_export, None, [export_file, msg], api_visibility="private")

    def on_import(value):
        path = file_path(value)
        if path is None:
            return gr.update(), table()
        try:
            n = q.import_file(path)
        except Exception as exc:
            gr.Warning(f"Import refused: {exc}"[:300])
            return f"⚠️ Import refused, nothing added: {exc}", table()
        return f"Imported {n} job(s).", table()

    import_file.upload(on_import, import_file, [msg, table_df], api_visibility="private")

    if shared.load_params is not None and shared.tabs is not None:
        def on_load_into(jid: str):
            job = q.get((jid or "").strip())
            if job is None:
                return gr.update(), gr.update(), "⚠️ Select a job first (click a row)."
            return (f"# job {job.id} {time.time()}\n" + json.dumps(job.params), gr.Tabs(selected="generate"),
                    f"Loaded {job.id} into Generate.")

        b_load.click(on_load_into, job_id, [shared.load_params, shared.tabs, msg], api_visibility="private")
    return table, table_df
