"""Queue tab: job names and batch groups (studio/jobs/batch.py): the rows' Name and Group cells, the selected
job's group and the "Cancel group" action. Kept apart from queue.py so the table module stays about rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from studio.jobs.model import JobSummary

if TYPE_CHECKING:
    from studio.jobs.service import QueueService

COLUMNS = ["Name", "Group"]


def cells(job: JobSummary) -> list[str]:
    """The row's Name and Group cells ("" when the job has none)."""
    return [job.name or "", job.group_id or ""]


@dataclass
class GroupControls:
    group_id: gr.Textbox
    cancel: gr.Button


def group_controls() -> GroupControls:
    """The selected job's group and its Cancel group button (built inside the tab's layout)."""
    with gr.Row():
        group_id = gr.Textbox(label="Selected job's batch group", elem_id="queue_group_id", scale=2,
                              placeholder="(the job is not part of a batch)")
        cancel = gr.Button("⏹️ Cancel group", elem_id="group_cancel", size="sm", variant="stop", scale=1)
    return GroupControls(group_id, cancel)


def wire(controls: GroupControls, job_id: gr.Textbox, table: gr.HTML, msg: gr.Markdown, q: QueueService,
         table_html: Callable[[], str]) -> None:
    def on_select(jid: str) -> str:
        job = q.get((jid or "").strip()) if jid else None
        return (job.group_id or "") if job is not None else ""

    def on_cancel(group_id: str) -> tuple[str, str]:
        group_id = (group_id or "").strip()
        if not group_id:
            return "⚠️ Select a job of a batch first (click a row).", table_html()
        n = q.cancel_group(group_id)
        if not n:
            return f"⚠️ Group {group_id}: no pending or running job to cancel.", table_html()
        return f"Cancelled {n} job(s) of group {group_id}.", table_html()

    job_id.change(on_select, job_id, controls.group_id, api_visibility="private", show_progress="hidden")
    controls.cancel.click(on_cancel, controls.group_id, [msg, table], api_visibility="private")
