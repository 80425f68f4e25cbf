"""The studio UI: a header (queue counts, each worker, RAM / VRAM) and the five tabs rendered into one gr.Blocks."""

from __future__ import annotations

import html
import logging
import sys
from typing import Any, Callable

import gradio as gr

from studio.ui import continue_edit, generate, outputs, postprocess, queue, settings_tab
from studio.ui.services import Services

log = logging.getLogger(__name__)

CSS = """
#fp-header {display:flex; gap:1.2em; align-items:center; flex-wrap:wrap; font-size:0.95em}
#fp-header .fp-title {font-weight:700; font-size:1.25em; margin-right:auto}
#fp-header .fp-chip {padding:2px 10px; border-radius:999px; background:var(--block-background-fill);
  border:1px solid var(--border-color-primary)}
.fp-bar {height:8px; background:var(--border-color-primary); border-radius:4px; margin-top:6px; overflow:hidden}
.fp-bar-fill {height:100%; background:var(--color-accent); transition:width .4s}
.fp-error {color:var(--error-text-color, #c00)}
#queue_table {max-height:520px; overflow:auto}
#queue_table table.fp-queue {width:100%; border-collapse:collapse; font-size:0.9em}
#queue_table .fp-queue th {position:sticky; top:0; background:var(--block-background-fill); text-align:left}
#queue_table .fp-queue th, #queue_table .fp-queue td {padding:4px 6px; border-bottom:1px solid var(--border-color-primary)}
#queue_table .fp-queue tr[data-job] {cursor:pointer}
#queue_table .fp-queue tr.fp-selected {background:var(--color-accent-soft)}
#queue_table img {display:block}
footer {display:none !important}
"""

THEME_CLASSES = {
    "default": "Default", "soft": "Soft", "glass": "Glass", "mono": "Monochrome", "base": "Base",
    "citrus": "Citrus", "ocean": "Ocean", "origin": "Origin",
}


def theme_for(name: str) -> gr.themes.Base:
    cls = getattr(gr.themes, THEME_CLASSES.get(name, "Soft"), gr.themes.Soft)
    return cls()


def memory_text() -> str:
    parts = []
    try:
        import psutil

        vm = psutil.virtual_memory()
        parts.append(f"RAM {vm.used / 2**30:.1f}/{vm.total / 2**30:.1f} GB")
    except Exception:  # psutil missing or sandboxed /proc
        parts.append("RAM -")
    parts.append(vram_text())
    return " · ".join(parts)


def vram_text() -> str:
    """GPU memory in use, once a job or an operation has loaded torch and started CUDA; "VRAM -" before.

    The header never imports torch itself (about 870 MiB and seconds of start-up for a page that may only show
    the queue) nor creates a CUDA context of its own (which would take VRAM from the jobs)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "VRAM -"
    try:
        if not torch.cuda.is_available():
            return "VRAM - (no GPU)"
        if not torch.cuda.is_initialized():
            return "VRAM -"
        free, total = torch.cuda.mem_get_info()
    except Exception:  # torch still being imported by the worker thread, or a driver error: no reading this time
        return "VRAM -"
    return f"VRAM {(total - free) / 2**30:.1f}/{total / 2**30:.1f} GB"


def workers_html(services: Services) -> str:
    """A chip per worker: its name and device, the job it runs, its GPU's memory in use (pool.WorkerInfo)."""
    chips = []
    for w in services.queue.workers.info():
        job = f"job {w.job_id}" if w.job_id else "lost" if w.lost else "idle"
        vram = f" · VRAM {w.vram}" if w.vram else ""
        chips.append(f"<span class='fp-chip fp-worker' id='hdr-worker-{html.escape(w.name, quote=True)}' "
                     f"title='{html.escape(w.label, quote=True)}'>{html.escape(w.name)} · {html.escape(w.label)} · "
                     f"{html.escape(job)}{vram}</span>")
    return "".join(chips)


def header_html(services: Services) -> str:
    counts = services.queue.counts()
    paused = " · ⏸️ paused" if counts.paused else ""
    return (
        "<div id='fp-header'><span class='fp-title'>FP-Studio</span>"
        f"<span class='fp-chip' id='hdr-pending'>Pending: {counts.pending}</span>"
        f"<span class='fp-chip' id='hdr-running'>Running: {counts.running}</span>"
        f"<span class='fp-chip' id='hdr-done'>Done: {counts.done}</span>"
        f"{workers_html(services)}"
        f"<span class='fp-chip' id='hdr-captioner'>{html.escape(services.captioner.status_text())}</span>"
        f"<span class='fp-chip' id='hdr-mem'>{memory_text()}{paused}</span></div>"
    )


def build_app(services: Services, api_endpoints: dict[str, Callable[..., Any]] | None = None) -> gr.Blocks:
    """The whole UI. `api_endpoints` (name -> function) become public named endpoints for gradio_client.

    Tabs never reach into each other: the links between them are passed in here. Generate returns the filler
    of its form, which Queue and Outputs list among their "load" events' outputs; Post-processing returns its
    input video, which Outputs' "Send to Post-processing" sets. Each of those events also selects the target tab.
    """
    with gr.Blocks(title="FP-Studio", analytics_enabled=False) as demo:
        header = gr.HTML(header_html(services), elem_id="fp-header-box")
        header_timer = gr.Timer(2.0)
        header_timer.tick(lambda: header_html(services), None, header, api_visibility="private",
                          show_progress="hidden")
        with gr.Tabs(elem_id="main_tabs") as tabs:
            with gr.Tab("Generate", id="generate"):
                form = generate.build(services, demo)
                edit_bar = continue_edit.edit_bar(services, form)  # Save changes to a pending job
            with gr.Tab("Queue", id="queue"):
                queue_tab = queue.build(services, form, tabs, edit_bar)
            with gr.Tab("Outputs", id="outputs") as outputs_tab:
                outputs_panel = outputs.build(services, form, tabs)
            with gr.Tab("Post-processing", id="post"):
                post_input = postprocess.build(services)
            with gr.Tab("Settings", id="settings"):
                settings_tab.build(services)
        outputs.wire_send_to_post(outputs_panel, post_input, tabs)
        page = outputs_panel.page_state, outputs_panel.page_outputs
        outputs_tab.select(outputs_panel.show, *page, api_visibility="private")
        demo.load(outputs_panel.show, *page, api_visibility="private")
        demo.load(queue_tab.table_rows, None, queue_tab.table, api_visibility="private")
        for name, fn in (api_endpoints or {}).items():
            gr.api(fn, api_name=name)
    return demo
