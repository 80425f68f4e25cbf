"""Outputs tab: gallery of finished videos (newest first, cached thumbnails, paged), player, info and actions."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from gradio.components import Component

from studio.jobs import kept_inputs
from studio.ui import continue_edit
from studio.ui import outputs_index as idx
from studio.ui.form import params_from_metadata
from studio.ui.generate import FormFiller, loaded_message
from studio.ui.services import Services

log = logging.getLogger(__name__)

PAGE_SIZE = 48  # thumbnails per page: a thousand outputs still open fast


@dataclass
class OutputsTab:
    """What app.py needs after building the tab: the page refresh (on load and when the tab opens) and the
    "Send to Post-processing" controls, wired once the Post-processing tab exists."""

    show: Callable[[int], tuple]  # page -> values for `page_outputs`
    page_state: gr.State
    page_outputs: list[Component]
    send_post: gr.Button
    selected: gr.Textbox
    msg: gr.Markdown


@dataclass
class _Panel:
    refresh: gr.Button
    prev_btn: gr.Button
    next_btn: gr.Button
    page_label: gr.Markdown
    gallery: gr.Gallery
    player: gr.Video
    selected: gr.Textbox
    send_post: gr.Button
    load_gen: gr.Button
    delete: gr.Button
    msg: gr.Markdown
    info: gr.Textbox
    page_state: gr.State
    continue_ctl: continue_edit.ContinueControls | None = None  # Continue from this video: continue_edit.py


def _layout() -> _Panel:
    with gr.Row():
        refresh = gr.Button("🔄 Refresh", elem_id="outputs_refresh", size="sm")
        prev_btn = gr.Button("◀ Newer", elem_id="outputs_prev", size="sm")
        next_btn = gr.Button("Older ▶", elem_id="outputs_next", size="sm")
        page_label = gr.Markdown("", elem_id="outputs_page")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Video Gallery", columns=4, height=560, allow_preview=False,
                                 elem_id="outputs_gallery", object_fit="contain")
        with gr.Column(scale=2):
            player = gr.Video(label="Video Player", interactive=False, loop=True, elem_id="outputs_player")
            selected = gr.Textbox(label="Selected video", interactive=False, elem_id="outputs_selected")
            with gr.Row():
                send_post = gr.Button("➡️ Send to Post-processing", elem_id="outputs_send_post", size="sm")
                load_gen = gr.Button("↩️ Load parameters into Generate", elem_id="outputs_load_params", size="sm")
                delete = gr.Button("🗑️ Delete", elem_id="outputs_delete", size="sm", variant="stop")
            cont = continue_edit.continue_controls("outputs")
            msg = gr.Markdown("", elem_id="outputs_msg")
            info = gr.Textbox(label="Generation Info", lines=18, max_lines=30, interactive=False,
                              elem_id="outputs_info")
    return _Panel(refresh, prev_btn, next_btn, page_label, gallery, player, selected, send_post, load_gen, delete,
                  msg, info, gr.State(0), continue_ctl=cont)


def build(services: Services, form: FormFiller, tabs: gr.Tabs) -> OutputsTab:
    """Renders the tab. `form` and `tabs` let "Load parameters" fill the Generate form and switch to it."""

    def show(page: int) -> tuple[list[tuple[str, str]], int, str]:
        gallery, page, total = idx.page(services.output_dir, services.thumbs_dir, int(page), PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        return gallery, page, f"{total} video(s) · page {page + 1}/{pages}"

    ui = _layout()
    outs = [ui.gallery, ui.page_state, ui.page_label]
    ui.refresh.click(show, ui.page_state, outs, api_visibility="private")
    ui.prev_btn.click(lambda p: show(int(p) - 1), ui.page_state, outs, api_visibility="private")
    ui.next_btn.click(lambda p: show(int(p) + 1), ui.page_state, outs, api_visibility="private")
    _wire_select(ui, services)
    _wire_delete(ui, services, show, outs)
    _wire_load_params(ui, services, form, tabs)
    if ui.continue_ctl is not None:
        continue_edit.wire_continue_output(ui.continue_ctl, ui.selected, ui.msg, services, form, tabs)
    return OutputsTab(show, ui.page_state, outs, ui.send_post, ui.selected, ui.msg)


def _wire_select(ui: _Panel, services: Services) -> None:
    def on_select(evt: gr.SelectData) -> tuple[Any, str, str]:
        # The clicked item names its video in its caption. A list kept from the last refresh could be older than
        # the pictures the user sees when two refreshes overlap (tab switch and Refresh).
        item = evt.value if isinstance(evt.value, dict) else {}
        video = idx.video_for_caption(services.output_dir, item.get("caption"))
        if video is None:
            return gr.update(), "", "That item names no video of the output folder; press Refresh."
        if not video.is_file():
            return None, "", f"{video.name} no longer exists; press Refresh."
        text, _ = idx.info(video, services.metadata_dir)
        return str(video), str(video), text

    # always_last: a second click while the first is still answered selects the second (the default, "once",
    # would drop it and leave the first selected).
    ui.gallery.select(on_select, None, [ui.player, ui.selected, ui.info], api_visibility="private",
                      trigger_mode="always_last")


def _wire_delete(ui: _Panel, services: Services, show: Callable[[int], tuple], outs: list[Component]) -> None:
    def on_delete(path: str, confirmed: bool, page: int) -> tuple:
        if not path:
            return "⚠️ Select a video first.", *show(page), gr.update(), "", gr.update()
        if not confirmed:
            return "Delete aborted.", *show(page), gr.update(), gr.update(), gr.update()
        _, data = idx.info(Path(path), services.metadata_dir)  # read first: it names the video's kept inputs
        try:
            removed = idx.delete(Path(path), services.output_dir, services.metadata_dir, services.thumbs_dir)
        except ValueError as exc:
            return f"⚠️ {exc}", *show(page), gr.update(), gr.update(), gr.update()
        # Its kept inputs go too, unless another output or a job still refers to them.
        services.queue.prune_kept_inputs(kept_inputs.names_in_metadata(data))
        # The player, the selection and the info of the deleted video all go.
        return (f"Deleted {', '.join(p.name for p in removed)}.", *show(page), None, "", "")

    confirm = gr.Checkbox(visible=False)  # set by the browser's confirm() (a State would ignore it)
    ui.delete.click(on_delete, [ui.selected, confirm, ui.page_state], [ui.msg, *outs, ui.player, ui.selected, ui.info],
                    api_visibility="private",
                    js="(p, c, g) => [p, confirm('Delete this video, its metadata and thumbnail?'), g]")


def _wire_load_params(ui: _Panel, services: Services, form: FormFiller, tabs: gr.Tabs) -> None:
    """Fills the Generate form from the selected video's generation info and switches to it, in one event."""

    def on_load(path: str) -> list[Any]:
        if not path:
            return [*form.keep(), gr.update(), "⚠️ Select a video first."]
        name = Path(path).name
        _, data = idx.info(Path(path), services.metadata_dir)
        if not data:
            return [*form.keep(), gr.update(), "⚠️ This video has no generation info."]
        try:
            params, notes = params_from_metadata(json.dumps(data, default=str))
        except ValueError as exc:  # the form stays as it is; the reason shows here
            return [*form.keep(), gr.update(), f"⚠️ {name}: {exc}"]
        return [*form.fill(params, loaded_message("Outputs", notes)), gr.Tabs(selected="generate"),
                f"Loaded the parameters of {name}."]

    ui.load_gen.click(on_load, ui.selected, [*form.outputs, tabs, ui.msg], api_visibility="private")


def wire_send_to_post(tab: OutputsTab, post_input: Component, tabs: gr.Tabs) -> None:
    """Send to Post-processing: sets that tab's input video and switches to it, in one event (app.py calls this
    once both tabs exist)."""

    def on_send(path: str) -> tuple[Any, Any, str]:
        if not path or not Path(path).is_file():
            return gr.update(), gr.update(), "⚠️ Select a video first."
        return path, gr.Tabs(selected="post"), f"Sent {Path(path).name} to Post-processing."

    tab.send_post.click(on_send, tab.selected, [post_input, tabs, tab.msg], api_visibility="private")
