"""The Queue tab in Chromium: row order and contents, Load Queue from a picked file, Load into Generate.

The worker is paused while these tests look at the table, so the PENDING jobs they queue stay PENDING; the one
RUNNING row is claimed through the store, as another process's worker would, and finished by the test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from studio.jobs.model import JobStatus, Progress
from tests.hang import wait_until
from tests.ui.conftest import TINY
from tests.ui.pw import shot, tab, upload

pytestmark = pytest.mark.browser


def _wait_status(svc, job_id: str, status: JobStatus) -> None:
    wait_until(lambda: svc.get(job_id).status is status, interval=0.2,
               describe=lambda: f"{job_id} is {svc.get(job_id).status.value}, not {status.value}")


def _row(page: Page, job_id: str):
    return page.locator("#queue_table tr", has_text=job_id).first


def _select(page: Page, job_id: str) -> None:
    page.locator("#queue_table").get_by_text(job_id, exact=True).filter(visible=True).first.click()
    expect(page.locator("#queue_job_id input, #queue_job_id textarea").first).to_have_value(job_id)


def test_rows_running_then_pending_in_run_order_then_finished_newest_first(page: Page, studio, media, artifacts):
    svc = studio.queue_service
    # Two finished jobs, the newer one FAILED: a real run first (its row shows its output's thumbnail).
    done = svc.add({"prompt": "finished first", "start_image": str(media["start"]), **TINY})
    _wait_status(svc, done, JobStatus.COMPLETED)
    svc.pause()
    running = None
    try:
        failed = svc.add({"prompt": "failed later", "start_image": str(media["start"]), **TINY})
        claimed = svc.store.claim_next()
        assert claimed is not None and claimed.id == failed
        assert svc.store.finish(failed, JobStatus.FAILED, error="out of memory")
        running = svc.add({"prompt": "the running one " + "long " * 30, "start_image": str(media["start"]), **TINY})
        assert svc.store.claim_next().id == running
        svc.store.update_progress(running, Progress(stage="Sampling", section=0, total_sections=2, step=1,
                                                    total_steps=2))
        p1, p2, p3 = (svc.add({"prompt": f"pending {n}", **TINY}) for n in (1, 2, 3))
        assert svc.move_up(p3)  # run order: p1, p3, p2
        expected = [running, p1, p3, p2, failed, done]

        page.goto(studio.url)
        tab(page, "Queue")
        table = page.locator("#queue_table")
        for job_id in expected:
            expect(table).to_contain_text(job_id)

        def shown_order() -> list[str] | None:
            text = table.inner_text()
            where = [text.find(j) for j in expected]
            return where if all(w >= 0 for w in where) and where == sorted(where) else None

        wait_until(shown_order, interval=0.2, describe=lambda: f"table order: {table.inner_text()!r}")
        # Each row: a prompt snippet, its progress, a thumbnail (the output's once finished, else the input's).
        expect(_row(page, running)).to_contain_text("the running one long")
        expect(_row(page, running)).to_contain_text("…")  # the long prompt is cut
        expect(_row(page, running)).to_contain_text("25%")  # half the steps of the first of two sections
        expect(_row(page, p1)).to_contain_text("next")
        expect(_row(page, p3)).to_contain_text("#2 in line")
        expect(_row(page, p2)).to_contain_text("#3 in line")
        expect(_row(page, done)).to_contain_text("100%")
        output_stem = Path(svc.get(done).output_video).stem
        expect(_row(page, done).locator("img")).to_have_attribute("src", re.compile(re.escape(output_stem)))
        expect(_row(page, failed).locator("img")).to_have_attribute("src", re.compile(r"/thumb\.png$"))
        # Selecting the FAILED row shows its error.
        _select(page, failed)
        expect(page.locator("#queue_job_error textarea")).to_have_value("out of memory")
        shot(page, artifacts, "queue_tab_order")
    finally:
        if running is not None and svc.get(running).status is JobStatus.RUNNING:
            svc.store.finish(running, JobStatus.CANCELLED, error="cancelled by the test")
        svc.cancel_pending()  # nothing queued here may cost a generation
        svc.resume()


def test_load_queue_from_a_picked_file_reports_and_clears_the_box(page: Page, studio, tmp_path):
    svc = studio.queue_service
    svc.pause()
    try:
        fps_queue = {  # FramePack-Studio's layout: one entry per job id, its own key names
            "fps-failed": {"status": "failed", "model_type": "Original", "prompt": "it broke", "error": "CUDA OOM",
                           "resolutionW": 64, "resolutionH": 64, "total_second_length": 1, "steps": 2},
            "fps-done": {"status": "completed", "model_type": "F1", "prompt": "already made"},
            "fps-next": {"status": "pending", "model_type": "F1", "prompt": "still to make", "resolutionW": 64,
                         "resolutionH": 64, "total_second_length": 1, "steps": 2},
        }
        picked = tmp_path / "my_fps_queue.json"
        picked.write_text(json.dumps(fps_queue))
        before = {j.id for j in svc.list()}
        page.goto(studio.url)
        tab(page, "Queue")
        box = page.locator("#queue_load")
        upload(page, "queue_load", picked)
        msg = page.locator("#queue_msg")
        expect(msg).to_contain_text("Imported 2 job(s) from FramePack-Studio queue.json (1 kept FAILED)")
        expect(msg).to_contain_text("Skipped 1: fps-done: completed")
        expect(box).not_to_contain_text("my_fps_queue.json")  # the box is empty again
        added = {j.id: j for j in svc.list() if j.id not in before}
        statuses = sorted((svc.get(i).params.prompt, j.status.value, svc.get(i).error) for i, j in added.items())
        assert statuses == [("it broke", "FAILED", "CUDA OOM"), ("still to make", "PENDING", None)]

        # The emptied box takes the next pick at once, even of the same file.
        upload(page, "queue_load", picked)
        wait_until(lambda: len([j for j in svc.list() if j.id not in before]) == 4, interval=0.2,
                   describe=lambda: f"second load not imported: {msg.inner_text()!r}")
        expect(box).not_to_contain_text("my_fps_queue.json")

        # A refused file adds nothing, says why, and empties the box too.
        bad = tmp_path / "broken.json"
        bad.write_text("{not json")
        n = len(svc.list())
        upload(page, "queue_load", bad)
        expect(msg).to_contain_text("Load Queue refused, nothing added")
        expect(msg).to_contain_text("malformed JSON")
        expect(box).not_to_contain_text("broken.json")
        assert len(svc.list()) == n
    finally:
        svc.cancel_pending()
        svc.resume()


def test_load_into_generate_says_it_came_from_the_queue(page: Page, studio):
    svc = studio.queue_service
    svc.pause()
    try:
        job_id = svc.add({"prompt": "from the queue tab", **TINY})
        page.goto(studio.url)
        tab(page, "Queue")
        expect(page.locator("#queue_table")).to_contain_text(job_id)
        _select(page, job_id)
        page.locator("#job_load").click()
        expect(page.get_by_role("tab", name="Generate", exact=True)).to_have_attribute("aria-selected", "true")
        expect(page.locator("#prompt textarea")).to_have_value("from the queue tab")
        expect(page.locator("#form_msg")).to_contain_text("Loaded parameters from Queue")
    finally:
        svc.cancel_pending()
        svc.resume()
