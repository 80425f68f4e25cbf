"""Add to Queue's own preprocessing (issue 14): no refusal escapes as Gradio's bare red "Error" badge."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pytest  # noqa: E402

from studio.ui.generate import preprocess_form, refusal_text  # noqa: E402
from tests.conftest import GOLDEN_DIR  # noqa: E402


def test_numbers_are_not_range_checked_by_gradio_and_files_become_paths():
    with gr.Blocks():
        seed = gr.Number(0, minimum=0, maximum=10, precision=0, label="Seed")
        steps = gr.Slider(1, 100, value=25, step=1, label="Steps")
        start = gr.File(label="Start Frame (optional)")
        prompt = gr.Textbox(label="Prompt")
    # Gradio's own preprocess refuses it (what showed as the "Error" badge) ...
    with pytest.raises(gr.Error):
        seed.preprocess(-5)
    path = str(GOLDEN_DIR / "start_image_64x64.png")
    raw = {seed: -5, steps: 0, start: {"path": path, "meta": {"_type": "gradio.FileData"}}, prompt: "x"}
    values, errors = preprocess_form(raw)
    # ... the form's preprocessing leaves the range to GenerationParams, which names the field in a sentence.
    assert errors == []
    assert values[seed] == -5 and isinstance(values[seed], int) and values[steps] == 0
    assert values[start] == path and values[prompt] == "x"
    values, errors = preprocess_form({seed: None, start: None, start.__class__(label="Batch"): path})
    assert errors == [] and values[seed] is None and values[start] is None


def test_an_unreadable_file_payload_is_a_sentence_naming_the_field():
    with gr.Blocks():
        start = gr.File(label="Start Frame (optional)")
        loras = gr.Dropdown([], multiselect=True, label="Select LoRAs to Load")
    # A dropdown's value passes as sent: its choices may have been refreshed in the page's session.
    values, errors = preprocess_form({start: {"meta": {"_type": "gradio.FileData"}}, loras: ["a.safetensors"]})
    assert len(errors) == 1 and errors[0].startswith("Start Frame (optional): ")
    assert values[loras] == ["a.safetensors"]
    assert refusal_text(errors) == "**Not added:**\n- " + errors[0]
