"""Outputs tab: gallery of finished videos (newest first, cached thumbnails, paged), player, info and actions."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import gradio as gr

from studio.ui import outputs_index as idx
from studio.ui.services import Services, SharedState

log = logging.getLogger(__name__)

PAGE_SIZE = 48  # thumbnails per page: a thousand outputs still open fast


def build(services: Services, shared: SharedState) -> None:
    def page_items(page: int) -> tuple[list[tuple[str, str]], list[str], int, str]:
        gallery, paths, page, total = idx.page(services.output_dir, services.thumbs_dir, page, PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        return gallery, paths, page, f"{total} video(s) · page {page + 1}/{pages}"

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
                delete_btn = gr.Button("🗑️ Delete", elem_id="outputs_delete", size="sm", variant="stop")
            msg = gr.Markdown("", elem_id="outputs_msg")
            info_box = gr.Textbox(label="Generation Info", lines=18, max_lines=30, interactive=False,
                                  elem_id="outputs_info")
    paths_state = gr.State([])
    page_state = gr.State(0)

    def show(page):
        gal, paths, page, label = page_items(page)
        return gal, paths, page, label

    outs = [gallery, paths_state, page_state, page_label]
    refresh.click(show, page_state, outs, api_visibility="private")
    prev_btn.click(lambda p: show(int(p) - 1), page_state, outs, api_visibility="private")
    next_btn.click(lambda p: show(int(p) + 1), page_state, outs, api_visibility="private")

    def on_select(evt: gr.SelectData, paths: list[str]):
        try:
            video = Path(paths[evt.index])
        except (IndexError, TypeError):
            return gr.update(), "", ""
        if not video.is_file():
            return None, "", f"{video.name} no longer exists; press Refresh."
        text, _ = idx.info(video, services.metadata_dir)
        return str(video), str(video), text

    gallery.select(on_select, paths_state, [player, selected, info_box], api_visibility="private")

    def on_delete(path: str, confirmed, page):
        if not path:
            return "⚠️ Select a video first.", *show(page), gr.update(), "", gr.update()
        if not confirmed:
            return "Delete aborted.", *show(page), gr.update(), gr.update(), gr.update()
        try:
            removed = idx.delete(Path(path), services.output_dir, services.metadata_dir, services.thumbs_dir)
        except ValueError as exc:
            return f"⚠️ {exc}", *show(page), gr.update(), gr.update(), gr.update()
        # The player, the selection and the info of the deleted video all go.
        return (f"Deleted {', '.join(p.name for p in removed)}.", *show(page), None, "", "")

    confirm = gr.Checkbox(visible=False)  # set by the browser's confirm() (a State would ignore it)
    delete_btn.click(on_delete, [selected, confirm, page_state], [msg, *outs, player, selected, info_box],
                     api_visibility="private", js="(p, c, g) => [p, confirm('Delete this video, its metadata and "
                                                     "thumbnail?'), g]")

    if shared.post_input is not None and shared.tabs is not None:
        def on_send(path: str):
            if not path or not Path(path).is_file():
                return gr.update(), gr.update(), "⚠️ Select a video first."
            return path, gr.Tabs(selected="post"), f"Sent {Path(path).name} to Post-processing."

        send_post.click(on_send, selected, [shared.post_input, shared.tabs, msg], api_visibility="private")

    if shared.load_params is not None and shared.tabs is not None:
        def on_load(path: str):
            if not path:
                return gr.update(), gr.update(), "⚠️ Select a video first."
            _, data = idx.info(Path(path), services.metadata_dir)
            if not data:
                return gr.update(), gr.update(), "⚠️ This video has no generation info."
            return (f"# {Path(path).name} {time.time()}\n" + json.dumps(data, default=str),
                    gr.Tabs(selected="generate"), f"Loaded the parameters of {Path(path).name}.")

        load_gen.click(on_load, selected, [shared.load_params, shared.tabs, msg], api_visibility="private")

    # Populate on page load and when the tab is opened (cheap: thumbnails are cached).
    return show, page_state, outs
