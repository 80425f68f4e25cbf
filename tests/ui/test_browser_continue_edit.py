"""Continue from this video (Outputs tab) and Edit a pending job (Queue -> Generate -> Save) in Chromium.

Runs alone and in any order: each test queues the jobs it looks at on the shared session app, pauses the worker
while it looks at PENDING jobs and cancels what it left pending at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from modules.framepack.metadata import file_sha256
from modules.framepack.params import GenerationType
from studio.jobs.model import JobStatus
from tests.hang import wait_until
from tests.ui.conftest import TINY
from tests.ui.pw import choose, fill, make_newest, shot, tab

pytestmark = pytest.mark.browser


def _wait_status(svc, job_id: str, *statuses: JobStatus) -> None:
    wait_until(lambda: svc.get(job_id).status in statuses, interval=0.2,
               describe=lambda: f"{job_id} is {svc.get(job_id).status.value}")


def _select_job(page: Page, job_id: str) -> None:
    page.locator("#queue_table").get_by_text(job_id, exact=True).filter(visible=True).first.click()
    expect(page.locator("#queue_job_id input, #queue_job_id textarea").first).to_have_value(job_id)


def _generate_selected(page: Page) -> None:
    expect(page.get_by_role("tab", name="Generate", exact=True)).to_have_attribute("aria-selected", "true")


def test_outputs_continue_queues_the_extension_and_puts_the_last_frame_in_start_frame(page: Page, studio, media):
    svc = studio.queue_service
    source_id = svc.add({"prompt": "a lighthouse at dusk", "start_image": str(media["start"]), "seed": 11, **TINY})
    _wait_status(svc, source_id, JobStatus.COMPLETED, JobStatus.FAILED)
    source = svc.get(source_id)
    assert source.status is JobStatus.COMPLETED, source.error
    video = Path(source.output_video)
    make_newest(video)  # first in the gallery, whatever other tests left there
    svc.pause()  # the extension stays PENDING: the test reads its parameters
    try:
        page.goto(studio.url)
        tab(page, "Outputs")
        page.locator("#outputs_refresh").click()
        page.locator("#outputs_gallery img").first.click()
        expect(page.locator("#outputs_selected textarea, #outputs_selected input").first).to_have_value(str(video))

        choose(page, "outputs_continue_mode", "Video F1")
        page.locator("#outputs_continue").click()
        msg = page.locator("#outputs_msg")
        expect(msg).to_contain_text(f"continues {video.name} as Video F1")
        new_id = re.search(r"Queued job (\w+)", msg.inner_text()).group(1)
        p = svc.get(new_id).params
        assert p.generation_type is GenerationType.VIDEO_F1
        assert p.input_video.read_bytes() == video.read_bytes()  # that video (kept by content) is the input
        assert (p.continued_from.video, p.continued_from.sha256) == (video.name, file_sha256(video))
        assert (p.prompt, p.seed) == ("a lighthouse at dusk", 11)  # the source's settings

        choose(page, "outputs_continue_mode", "Last frame as Start Frame")
        page.locator("#outputs_continue").click()
        _generate_selected(page)
        expect(page.locator("#form_msg")).to_contain_text(f"the last frame of {video.name}")
        expect(page.locator("#start_image")).to_contain_text("last-frame-")
        expect(page.locator("#prompt textarea")).to_have_value("a lighthouse at dusk")
        expect(page.locator("#generation_type input").first).to_have_value("Original")
    finally:
        svc.cancel_pending()
        svc.resume()


def test_queue_edit_pending_job_in_place(page: Page, studio, media, artifacts):
    svc = studio.queue_service
    svc.pause()  # everything stays PENDING, in this order
    try:
        ids = [svc.add({"prompt": f"edit me {n}", "start_image": str(media["start"]), **TINY}) for n in range(3)]
        start_before = svc.get(ids[1]).params.start_image
        page.goto(studio.url)
        tab(page, "Queue")
        expect(page.locator("#queue_table")).to_contain_text(ids[2])
        _select_job(page, ids[1])
        page.locator("#job_edit").click()
        _generate_selected(page)
        prompt = page.locator("#prompt textarea")
        expect(prompt).to_have_value("edit me 1")
        save = page.locator("#edit_save")
        expect(save).to_have_text(re.compile(f"Save changes to job {ids[1]}"))
        expect(page.locator("#start_image")).to_contain_text(start_before.stem)  # its own input file, loaded
        shot(page, artifacts, "edit_pending_job")

        fill(page, "prompt", "edited in the browser")
        save.click()
        expect(page.locator("#form_msg")).to_contain_text(f"Saved changes to job {ids[1]}")
        expect(save).to_be_hidden()
        job = svc.get(ids[1])
        assert job.status is JobStatus.PENDING and job.params.prompt == "edited in the browser"
        assert job.params.start_image.read_bytes() == start_before.read_bytes()
        assert [j.id for j in svc.list([JobStatus.PENDING])][:3] == ids  # still at its place in line

        # Refused once it started: the first job is edited, then the worker (here: the store) claims it.
        tab(page, "Queue")
        _select_job(page, ids[0])
        page.locator("#job_edit").click()
        _generate_selected(page)
        expect(prompt).to_have_value("edit me 0")
        claimed = svc.store.claim_next()
        assert claimed is not None and claimed.id == ids[0]
        fill(page, "prompt", "too late")
        save.click()
        expect(page.locator("#form_msg")).to_contain_text(f"Job {ids[0]} is RUNNING now, no longer PENDING")
        assert svc.get(ids[0]).params.prompt == "edit me 0"
        assert svc.store.finish(ids[0], JobStatus.CANCELLED, error="test")
    finally:
        svc.cancel_pending()
        svc.resume()
