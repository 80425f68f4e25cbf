"""Refusals at Add to Queue read as sentences in the Generate tab's message area (#form_msg), never as
Gradio's red "Error" badge on an output component (issue 14, problem 6)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.ui.pw import choose, fill, set_number, shot

pytestmark = pytest.mark.browser


def _no_error_badge(page: Page) -> None:
    # Gradio 6 shows a failed event as an element with the text "Error" over its output components.
    expect(page.locator(".error").filter(has_text="Error")).to_have_count(0)
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)


def test_malformed_timestamped_prompt_is_a_sentence_naming_the_prompt(page: Page, studio, artifacts):
    before = len(studio.queue_service.list())
    page.goto(studio.url)
    fill(page, "prompt", "[0s: a cat sits [1s: broken")
    page.locator("#add_to_queue").click()
    msg = page.locator("#form_msg")
    expect(msg).to_contain_text("Not added")
    expect(msg).to_contain_text("prompt:")
    expect(msg).to_contain_text("never closed")
    expect(msg).not_to_contain_text("prompt: prompt:")  # the field is named once
    _no_error_badge(page)
    shot(page, artifacts, "generate_malformed_prompt")
    assert len(studio.queue_service.list()) == before


def test_original_with_endframe_without_end_image_is_added(page: Page, studio, artifacts):
    """The user guide: "End Frame (Optional)"; without one the job runs as Original."""
    svc = studio.queue_service
    svc.pause()
    try:
        page.goto(studio.url)
        choose(page, "generation_type", "Original with Endframe")
        expect(page.locator("#end_image")).to_contain_text("End Frame (optional)")
        fill(page, "prompt", "endframe without an end image")
        page.locator("#add_to_queue").click()
        expect(page.locator("#form_msg")).to_contain_text("Added job")
        _no_error_badge(page)
        new = [j for j in svc.list() if j.title == "endframe without an end image"]
        assert len(new) == 1 and new[0].status.value == "PENDING"
        assert svc.get(new[0].id).params.end_image is None
        svc.remove(new[0].id)
    finally:
        svc.resume()


def test_an_out_of_range_number_is_a_sentence_naming_the_field(page: Page, studio, artifacts):
    """Gradio range-checks a gr.Number before the handler runs and shows a bare red "Error" badge on the
    outputs (the Seed field); Add to Queue refuses it itself, with the field named."""
    before = len(studio.queue_service.list())
    page.goto(studio.url)
    fill(page, "prompt", "a seed out of range")
    set_number(page, "seed", -5)
    page.locator("#add_to_queue").click()
    msg = page.locator("#form_msg")
    expect(msg).to_contain_text("Not added")
    expect(msg).to_contain_text("seed:")
    _no_error_badge(page)
    shot(page, artifacts, "generate_seed_out_of_range")
    assert len(studio.queue_service.list()) == before
