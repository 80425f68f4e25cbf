"""The Generate tab's LoRA list in a real browser: files dropped into the LoRA folder after the server started
appear on the next page load without pressing Refresh, unusable ones are not offered (each named with why), and
Add to Queue refuses a selected LoRA that went bad, with a sentence naming the field and the file."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.loras import write_lora, write_wrong_shape_lora
from tests.ui.pw import open_accordion, shot

pytestmark = pytest.mark.browser

GOOD, JUNK, WIDE = "Dropped_Late.safetensors", "dropped_junk.safetensors", "dropped_wide.safetensors"


def _open_lora_list(page: Page) -> None:
    open_accordion(page, "LoRAs & Metadata")
    page.locator("#lora_select input").first.click()


def test_lora_dropped_after_start_is_offered_on_reload_and_junk_is_not(page: Page, studio, artifacts):
    folder = studio.services.lora_dir
    page.goto(studio.url)
    _open_lora_list(page)
    expect(page.get_by_role("option", name=GOOD, exact=True)).to_have_count(0)
    page.keyboard.press("Escape")

    write_lora(folder / GOOD)
    write_wrong_shape_lora(folder / WIDE)
    (folder / JUNK).write_bytes(b"these bytes are no safetensors file, whatever the name says")
    page.reload()  # no Refresh click: the page load lists the folder again

    _open_lora_list(page)
    note = page.locator("#lora_unusable")
    expect(note).to_contain_text(f"{JUNK}: not a valid safetensors file")
    expect(note).to_contain_text(f"{WIDE}: made for a different model")
    expect(page.get_by_role("option", name=GOOD, exact=True)).to_be_visible()
    for name in (JUNK, WIDE):
        expect(page.get_by_role("option", name=name, exact=True)).to_have_count(0)
    page.get_by_role("option", name=GOOD, exact=True).click()
    page.keyboard.press("Escape")
    expect(page.locator("#lora_weight_0")).to_contain_text(GOOD)
    shot(page, artifacts, "generate_loras_checked")

    # Selected while good, broken before Add to Queue: the queue's input checker refuses it, naming both.
    (folder / GOOD).write_bytes(b"\x00" * 64)
    try:
        page.locator("#add_to_queue").click()
        expect(page.locator("#form_msg")).to_contain_text(f"loras.0.name: {GOOD}: not a valid safetensors file")
    finally:
        for name in (GOOD, JUNK, WIDE):
            (folder / name).unlink()
