"""Job names and batches in Debian's Chromium against the real app on the tiny models: a named job shows its
name in the queue and writes its video under it; three start images queued as one batch form one group that
"Cancel group" cancels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.hang import wait_until
from tests.ui.conftest import TINY
from tests.ui.pw import fill, open_accordion, set_number, shot, tab, upload

pytestmark = pytest.mark.browser

ADDED = re.compile(r"Added job ([0-9a-f, ]+) to the queue")


def _fill_tiny(page: Page, prompt: str, name: str) -> None:
    open_accordion(page, "Advanced")  # holds the latent window size
    fill(page, "prompt", prompt)
    for field in ("width", "height", "total_seconds", "steps", "latent_window_size"):
        set_number(page, field, TINY[field])
    fill(page, "job_name", name)


def _add(page: Page) -> list[str]:
    """Clicks Add to Queue and returns the ids its message names (a batch names several)."""
    msg = page.locator("#form_msg")
    old = msg.inner_text()
    page.locator("#add_to_queue").click()
    found = wait_until(lambda: (m := ADDED.search(msg.inner_text())) and msg.inner_text() != old and m,
                       interval=0.2, describe=lambda: f"nothing added: {msg.inner_text()!r}")
    return [i.strip() for i in found.group(1).split(",")]


def test_named_job_shows_its_name_and_names_its_output(page: Page, studio, media, artifacts):
    svc = studio.queue_service
    page.goto(studio.url)
    _fill_tiny(page, "a named ball", "Red ball / take 1")
    upload(page, "start_image", media["start"])
    expect(page.locator("#start_preview img")).to_be_visible()
    [job_id] = _add(page)
    assert svc.get(job_id).name == "Red ball / take 1"

    tab(page, "Queue")
    expect(page.locator("#queue_table")).to_contain_text("Red ball / take 1")
    shot(page, artifacts, "queue_named_job")
    job = wait_until(lambda: (j := svc.get(job_id)).status.finished and j, interval=0.5,
                     describe=lambda: f"job {job_id} is {svc.get(job_id).status.value}")
    assert job.status.value == "COMPLETED", job.error
    # The name, sanitised, is the output file's stem (numbered if an earlier run of this test left one).
    assert re.fullmatch(r"Red_ball_take_1(_\d+)?\.mp4", Path(job.output_video).name), job.output_video
    assert Path(job.output_video).is_file()


def test_batch_of_three_is_one_group_and_cancel_group_cancels_it(page: Page, studio, media, tmp_path, artifacts):
    svc = studio.queue_service
    third = Path(shutil.copy(media["start"], tmp_path / "third.png"))
    svc.pause()  # the batch stays PENDING until Cancel group
    try:
        page.goto(studio.url)
        _fill_tiny(page, "a batch of balls", "trip")
        open_accordion(page, "Batch inputs: one job per file")
        upload(page, "batch_images", media["start"], media["end"], third)
        expect(page.locator("#batch_images")).to_contain_text("third")
        ids = _add(page)
        expect(page.locator("#form_msg")).to_contain_text("as one group (3 jobs)")
        jobs = [svc.get(i) for i in ids]
        assert len(jobs) == 3 and all(j.status.value == "PENDING" for j in jobs)
        assert [j.name for j in jobs] == ["trip_start", "trip_end", "trip_third"]
        group = jobs[0].group_id
        assert group and {j.group_id for j in jobs} == {group}

        tab(page, "Queue")
        table = page.locator("#queue_table")
        expect(table).to_contain_text("trip_third")
        table.get_by_text(ids[1], exact=True).filter(visible=True).first.click()
        expect(page.locator("#queue_group_id input, #queue_group_id textarea").first).to_have_value(group)
        shot(page, artifacts, "queue_batch_group")
        page.locator("#group_cancel").click()
        expect(page.locator("#queue_msg")).to_contain_text(f"Cancelled 3 job(s) of group {group}")
        assert [svc.get(i).status.value for i in ids] == ["CANCELLED"] * 3
    finally:
        svc.resume()
