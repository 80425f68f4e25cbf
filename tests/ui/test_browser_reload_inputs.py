"""Outputs -> Load parameters into Generate after Queue -> Clear Complete: the inputs an output was made from
are kept (studio/jobs/kept_inputs.py), so its parameters load back complete, and a Video job stays Video.

Runs alone and in any order (`pytest -k NAME`): it queues the jobs it looks at on the shared session app.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from modules.framepack.params import GenerationType
from tests.hang import wait_until
from tests.ui.conftest import TINY
from tests.ui.pw import make_newest, tab

pytestmark = pytest.mark.browser


def _finished(svc, ids: list[str]) -> list:
    def done() -> list | None:
        jobs = [svc.get(i) for i in ids]
        return jobs if all(j.status.finished for j in jobs) else None

    return wait_until(done, interval=0.5, describe=lambda: "jobs did not finish: " + ", ".join(
        f"{j.id}={j.status.value}" for j in (svc.get(i) for i in ids)))


def _load_from_outputs(page: Page, video: Path) -> None:
    """Selects `video` in the Outputs gallery (it is the newest: first) and loads its parameters."""
    tab(page, "Outputs")
    page.locator("#outputs_refresh").click()
    sel = page.locator("#outputs_selected textarea, #outputs_selected input").first
    first = page.locator("#outputs_gallery img").first
    # The refresh lands asynchronously: wait until the first picture is this video's thumbnail (<stem>.png).
    expect(first).to_have_attribute("src", re.compile(re.escape(video.stem)))
    first.click()
    expect(sel).to_have_value(str(video))
    page.locator("#outputs_load_params").click()
    expect(page.get_by_role("tab", name="Generate", exact=True)).to_have_attribute("aria-selected", "true")


def test_load_parameters_after_clear_complete(page: Page, studio, media, tmp_path):
    svc = studio.queue_service
    # Inputs in a folder that is gone by the time the parameters are loaded (an upload folder, say).
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    start, video = shutil.copy(media["start"], uploads), shutil.copy(media["video"], uploads)
    ids = [svc.add({"prompt": "reload my start image", "start_image": start, **TINY}),
           svc.add({"prompt": "reload my video", "generation_type": GenerationType.VIDEO.value,
                    "input_video": video, "num_context_frames": 2, **TINY})]
    shutil.rmtree(uploads)
    image_job, video_job = _finished(svc, ids)
    assert (image_job.status.value, video_job.status.value) == ("COMPLETED", "COMPLETED"), \
        (image_job.error, video_job.error)

    page.goto(studio.url)
    tab(page, "Queue")
    page.locator("#queue_clear").click()
    expect(page.locator("#queue_msg")).to_contain_text(re.compile(r"Cleared \d+ finished job"))
    assert svc.get(image_job.id) is None and not Path(image_job.job_dir).exists()

    msg = page.locator("#form_msg")
    for job, gen_type in ((image_job, GenerationType.ORIGINAL), (video_job, GenerationType.VIDEO)):
        out = Path(job.output_video)
        make_newest(out)  # first in the gallery, whatever other tests left there
        _load_from_outputs(page, out)
        # The prompt, the type and the message change in one event: once the prompt is this job's, the
        # message is this load's.
        expect(page.locator("#prompt textarea")).to_have_value(job.params.prompt)
        expect(page.locator("#generation_type input").first).to_have_value(gen_type.value)
        expect(msg).to_have_text(re.compile(r"^\s*Loaded parameters from Outputs\.\s*$"))  # no "not found" note
        # The job's own input file is back in its upload box (and previewed), ready for Add to Queue.
        kept = Path(job.params.start_image or job.params.input_video)
        box, preview = (("start_image", "#start_preview img") if gen_type is GenerationType.ORIGINAL
                        else ("input_video", "#video_preview video"))
        expect(page.locator(f"#{box}")).to_contain_text(kept.stem)  # the box shows "<stem> .png"
        expect(page.locator(preview)).to_be_visible()
