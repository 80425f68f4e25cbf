"""Small Playwright helpers for Gradio 6 components (addressed by elem_id)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from playwright.sync_api import Page, expect


def tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).first.click()


def choose(page: Page, elem_id: str, option: str) -> None:
    """Pick an option of a gr.Dropdown."""
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.locator(f"#{elem_id} input").first).to_have_value(option)


def set_number(page: Page, elem_id: str, value: float | str) -> None:
    """Set a gr.Slider / gr.Number through its number box."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def fill(page: Page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text]").first.fill(text)


def upload(page: Page, elem_id: str, *paths: Path) -> None:
    page.locator(f"#{elem_id} input[type=file]").first.set_input_files([str(p) for p in paths])


def open_accordion(page: Page, label: str) -> None:
    page.get_by_role("button", name=label).first.click()


def shot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("FP_UI_SCREENSHOTS")  # an extra copy outside test-results/, which pytest-playwright
    if extra:  # empties at the start of every pytest session
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def make_newest(video: Path) -> None:
    """Gives `video` a modification time after every other video of its folder, so that it is first in the
    Outputs gallery (newest first) whatever other tests of the session left there, or made newest before."""
    others = [p.stat().st_mtime for p in Path(video).parent.rglob("*.mp4") if p != Path(video)]
    later = max([time.time(), *others]) + 1
    os.utime(video, (later, later))
