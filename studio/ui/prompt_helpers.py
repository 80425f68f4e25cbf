"""Generate tab: Caption (under the Start Frame), Describe video (under the Video Input) and Enhance (under the
prompt) write a prompt into the prompt box for the user to edit (studio/captioning does the work).

Each is one event that returns the new prompt and a message; a refusal (no file, a bad file, the model
missing) leaves the prompt as it was and says why, naming the box."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from modules.framepack.inputs import InputError
from studio.captioning.service import CaptionerError
from studio.ui.services import Services
from studio.ui.uploads import file_path

LABELS = {"image": "Start Frame", "video": "Video Input", "prompt": "Prompt", "seconds": "Video Length"}


@dataclass
class HelperControls:
    caption: gr.Button
    describe: gr.Button
    timestamped: gr.Checkbox
    enhance: gr.Button
    msg: gr.Markdown


def caption_button() -> gr.Button:
    return gr.Button("📝 Caption", elem_id="caption_btn", size="sm")


def describe_controls() -> tuple[gr.Button, gr.Checkbox]:
    with gr.Row():
        describe = gr.Button("🎬 Describe video", elem_id="describe_btn", size="sm")
        timestamped = gr.Checkbox(False, label="Timestamped prompt", elem_id="describe_timestamped",
                                  min_width=120)
    return describe, timestamped


def enhance_row() -> tuple[gr.Button, gr.Markdown]:
    with gr.Row():
        enhance = gr.Button("✨ Enhance", elem_id="enhance_btn", size="sm", scale=0, min_width=120)
        msg = gr.Markdown("", elem_id="helper_msg")
    return enhance, msg


def _token_progress(progress: gr.Progress) -> Callable[[int, int], None]:
    return lambda done, limit: progress(done / max(limit, 1), desc="Writing")


def _refusal(exc: Exception) -> tuple[Any, str]:
    if isinstance(exc, InputError):
        return gr.update(), "⚠️ " + "; ".join(f"{LABELS.get(f, f)}: {m}" for f, m in exc.fields.items())
    return gr.update(), f"⚠️ {exc}"


def wire(c: HelperControls, services: Services, start_file: gr.File, video_file: gr.File, prompt: gr.Textbox,
         seconds: gr.Slider) -> None:
    helper = services.captioner

    def on_caption(value: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, str]:
        path = file_path(value)
        if path is None:
            return gr.update(), "⚠️ Start Frame: upload an image to caption first."
        try:
            text = helper.caption(path, _token_progress(progress))
        except (InputError, CaptionerError) as exc:
            return _refusal(exc)
        return text, "📝 Caption written into the prompt: edit it as you like."

    def on_describe(value: Any, length: float, timed: bool,
                    progress: gr.Progress = gr.Progress()) -> tuple[Any, str]:
        path = file_path(value)
        if path is None:
            return gr.update(), "⚠️ Video Input: upload a video to describe first."
        try:
            d = helper.describe(path, float(length), bool(timed), _token_progress(progress))
        except (InputError, CaptionerError) as exc:
            return _refusal(exc)
        return d.prompt, f"🎬 **The video:** {d.description}\n\nA prompt for the extension is in the prompt box."

    def on_enhance(text: str, progress: gr.Progress = gr.Progress()) -> tuple[Any, str]:
        try:
            better = helper.enhance(text, _token_progress(progress))
        except (InputError, CaptionerError) as exc:
            return _refusal(exc)
        return better, "✨ Prompt enhanced (its timestamps kept)."

    outputs = [prompt, c.msg]
    c.caption.click(on_caption, start_file, outputs, api_visibility="private")
    c.describe.click(on_describe, [video_file, seconds, c.timestamped], outputs, api_visibility="private")
    c.enhance.click(on_enhance, prompt, outputs, api_visibility="private")
