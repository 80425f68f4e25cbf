"""The studio in Debian's Chromium against the real app on the tiny models.

Tests share one app but not their data: each queues the jobs it looks at, so any one of them runs alone
and in any order (`pytest -k NAME`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from modules.framepack.params import GenerationType
from modules.media.video_io import probe_video, read_video
from tests.hang import wait_until
from tests.loras import write_lora
from tests.ui.conftest import TINY
from tests.ui.pw import choose, fill, make_newest, open_accordion, set_number, shot, tab, upload

pytestmark = pytest.mark.browser

ADDED = re.compile(r"Added job ([0-9a-f]+)")


def _fill_common(page: Page, prompt: str) -> None:
    fill(page, "prompt", prompt)
    for name in ("width", "height", "total_seconds", "steps"):
        set_number(page, name, TINY[name])
    set_number(page, "latent_window_size", TINY["latent_window_size"])


def _add(page: Page) -> str:
    msg = page.locator("#form_msg")
    old = set(ADDED.findall(msg.inner_text()))
    page.locator("#add_to_queue").click()
    # While the event runs Gradio overlays a timer but keeps the old text: wait for a new id.
    ids = wait_until(lambda: set(ADDED.findall(msg.inner_text())) - old, interval=0.2,
                     describe=lambda: f"no new job added: {msg.inner_text()!r}")
    assert len(ids) == 1, ids
    return ids.pop()


def _wait_jobs(studio, ids: list[str]) -> list:
    """Waits until every job has finished (any outcome), however long the worker takes."""
    def jobs() -> list:
        return [studio.queue_service.get(i) for i in ids]

    def finished() -> list | None:
        js = jobs()
        return js if all(j.status.finished for j in js) else None

    return wait_until(finished, interval=0.5,
                      describe=lambda: "jobs did not finish: " + ", ".join(f"{j.id}={j.status.value}" for j in jobs()))


@pytest.fixture(scope="module")
def finished_output(studio, media) -> Path:
    """One finished Original job of this module's own (queued through the service, not the form)."""
    job_id = studio.queue_service.add({"prompt": "a finished ball", "start_image": str(media["start"]), **TINY})
    (job,) = _wait_jobs(studio, [job_id])
    assert job.status.value == "COMPLETED", job.error
    return Path(job.output_video)


def test_generate_each_type(page: Page, studio, media, artifacts):
    queued: dict[GenerationType, str] = {}
    page.goto(studio.url)
    expect(page.locator("#fp-header")).to_contain_text("Pending")
    open_accordion(page, "Advanced")  # holds the latent window size
    _fill_common(page, "[0s: a red ball] [0.5s: a blue ball]")
    expect(page.locator("#bucket")).to_contain_text("64 × 64")
    upload(page, "start_image", media["start"])
    expect(page.locator("#start_preview img")).to_be_visible()

    # Original: start frame, timestamped prompt.
    queued[GenerationType.ORIGINAL] = _add(page)
    # The live view follows the worker: progress, then a finished job.
    expect(page.locator("#live-status")).to_contain_text(re.compile(r"Step \d+/2|COMPLETED"))
    shot(page, artifacts, "generate_running")

    # Original with Endframe: end frame + influence appear only for this type.
    choose(page, "generation_type", GenerationType.ORIGINAL_ENDFRAME.value)
    expect(page.locator("#end_image")).to_be_visible()
    upload(page, "end_image", media["end"])
    expect(page.locator("#end_preview img")).to_be_visible()
    set_number(page, "end_frame_strength", 0.5)
    queued[GenerationType.ORIGINAL_ENDFRAME] = _add(page)

    # Video types: the video input replaces the start frame. (Original-model types first, then the F1
    # ones, so the worker swaps transformers once.)
    choose(page, "generation_type", GenerationType.VIDEO.value)
    expect(page.locator("#start_image")).to_be_hidden()
    expect(page.locator("#input_video")).to_be_visible()
    upload(page, "input_video", media["video"])
    expect(page.locator("#upload_msg")).to_have_text("")
    set_number(page, "num_context_frames", 2)
    queued[GenerationType.VIDEO] = _add(page)
    choose(page, "generation_type", GenerationType.VIDEO_ENDFRAME.value)
    queued[GenerationType.VIDEO_ENDFRAME] = _add(page)

    # Grid: one axis, one value (one cell keeps it cheap).
    choose(page, "generation_type", GenerationType.GRID.value)
    expect(page.locator("#grid_x_param")).to_be_visible()
    expect(page.locator("#latent_image")).to_be_hidden()
    choose(page, "grid_x_param", "seed")
    fill(page, "grid_x_values", "7")
    queued[GenerationType.GRID] = _add(page)
    shot(page, artifacts, "generate_grid_form")

    choose(page, "generation_type", GenerationType.VIDEO_F1.value)
    queued[GenerationType.VIDEO_F1] = _add(page)
    # F1 keeps the start frame (and takes the optional end frame uploaded above).
    choose(page, "generation_type", GenerationType.F1.value)
    queued[GenerationType.F1] = _add(page)

    # Every job holds exactly what the form said.
    for gen_type, job_id in queued.items():
        job = studio.queue_service.get(job_id)
        p = job.params
        assert p.generation_type == gen_type
        assert (p.width, p.height, p.steps, p.latent_window_size, p.total_seconds) == (64, 64, 2, 3, 1.0)
        assert p.prompt == "[0s: a red ball] [0.5s: a blue ball]"
        if gen_type.is_video:
            assert p.input_video is not None and p.input_video.is_file() and p.num_context_frames == 2
        elif gen_type != GenerationType.GRID:
            assert p.start_image is not None and p.start_image.is_file()
        if gen_type == GenerationType.ORIGINAL_ENDFRAME:
            assert p.end_image is not None and p.end_frame_strength == 0.5
        if gen_type == GenerationType.GRID:
            assert p.grid_x.parameter == "seed" and p.grid_x.values == [7]

    # A refreshed page re-attaches the live view to the job the worker is on.
    page.reload()
    live_id = page.locator("#live_job_id textarea, #live_job_id input").first
    expect(live_id).to_have_value(re.compile("|".join(queued.values())))
    expect(page.locator("#live-status")).to_contain_text(live_id.input_value())

    tab(page, "Queue")
    expect(page.locator("#queue_table")).to_contain_text(queued[GenerationType.F1])
    shot(page, artifacts, "queue_tab")

    # Every type runs to a playable video.
    for job in _wait_jobs(studio, list(queued.values())):
        assert job.status.value == "COMPLETED", (job.generation_type, job.error)
        assert probe_video(job.output_video).frames > 0


def test_non_image_upload_is_refused(page: Page, studio, media, artifacts):
    before = len(studio.queue_service.list())
    page.goto(studio.url)
    upload(page, "start_image", media["fake"])
    expect(page.locator("#upload_msg")).to_contain_text("not a readable image")
    fill(page, "prompt", "should not be queued")
    page.locator("#add_to_queue").click()
    expect(page.locator("#form_msg")).to_contain_text("Not added")
    expect(page.locator("#form_msg")).to_contain_text("not_an_image.png")
    shot(page, artifacts, "generate_upload_error")
    assert len(studio.queue_service.list()) == before

    # A batch (one job per start image) with one bad file adds nothing either.
    page.goto(studio.url)
    open_accordion(page, "Batch inputs: one job per file")
    upload(page, "batch_images", media["start"], media["fake"])
    expect(page.locator("#batch_images")).to_contain_text("not_an_image")  # name and suffix render apart
    page.locator("#add_to_queue").click()
    # The message names the control and the file (the checker's reason may stand between them).
    expect(page.locator("#form_msg")).to_contain_text(re.compile(r"Batch image: (.*: )?not_an_image\.png"))
    assert len(studio.queue_service.list()) == before

    # A good batch: one job per start image (worker paused, so nothing runs; removed afterwards).
    svc = studio.queue_service
    svc.pause()
    try:
        page.goto(studio.url)
        fill(page, "prompt", "batch of two")
        open_accordion(page, "Batch inputs: one job per file")
        upload(page, "batch_images", media["start"], media["end"])
        expect(page.locator("#batch_images")).to_contain_text("end")
        page.locator("#add_to_queue").click()
        expect(page.locator("#form_msg")).to_contain_text("Added job")
        new = [j for j in svc.list() if j.title == "batch of two"]
        assert len(new) == 2 and all(j.status.value == "PENDING" for j in new)
        starts = sorted(svc.get(j.id).params.start_image.read_bytes() for j in new)
        assert starts == sorted([media["start"].read_bytes(), media["end"].read_bytes()])
        for j in new:
            svc.remove(j.id)
    finally:
        svc.resume()


def test_outputs_and_postprocessing(page: Page, studio, media, artifacts, finished_output):
    assert probe_video(finished_output).frames > 0
    # A second video of this test's own, so that one is left to load after the Delete below, whichever tests
    # ran before.
    spare = studio.queue_service.add({"prompt": "a spare ball", "start_image": str(media["start"]), **TINY})
    page.goto(studio.url)
    tab(page, "Outputs")
    page.locator("#outputs_refresh").click()
    gallery = page.locator("#outputs_gallery")
    thumbs = gallery.locator("button img, img")
    expect(thumbs.first).to_be_visible()
    thumbs.first.click()
    expect(page.locator("#outputs_player video")).to_be_visible()
    info_box = page.locator("#outputs_info textarea")
    expect(info_box).to_have_value(re.compile("seed"))
    selected = page.locator("#outputs_selected textarea, #outputs_selected input").first.input_value()
    assert selected.endswith(".mp4")
    shot(page, artifacts, "outputs_tab")

    # Send to Post-processing: switches tab with the input filled.
    page.locator("#outputs_send_post").click()
    expect(page.get_by_role("tab", name="Post-processing", exact=True)).to_have_attribute("aria-selected", "true")
    expect(page.locator("#post_input video")).to_be_visible()
    src_frames, _ = read_video(selected)

    out_dir = studio.services.post_output_dir

    def run_op(tab_name: str, button: str) -> Path:
        """Run one operation; autosave puts exactly one new file in the permanent folder."""
        def saved_files() -> set[Path]:  # not the hidden temporary file a save renames into place
            return {p for p in out_dir.iterdir() if not p.name.startswith(".")}

        before = saved_files()
        page.get_by_role("tab", name=tab_name).click()
        page.locator(f"#{button}").click()
        # The status text of the previous run stays until this one ends: wait for the saved file instead.
        new = wait_until(lambda: saved_files() - before, interval=0.25,
                         describe=lambda: "no file saved; status: " + page.locator("#post_status").inner_text())
        assert len(new) == 1, new
        saved = new.pop()
        expect(page.locator("#post_status")).to_contain_text(saved.name)
        return saved

    # Filters: brighter.
    page.get_by_role("tab", name="🎨 Video Filters (FFmpeg)").click()
    set_number(page, "filter_brightness", 0.3)
    bright = run_op("🎨 Video Filters (FFmpeg)", "filter_run")
    frames, _ = read_video(bright)
    assert frames.shape == src_frames.shape and frames.mean() > src_frames.mean() + 10
    expect(page.locator("#post_output video")).to_be_visible()

    # Loop x2 doubles the frame count.
    page.get_by_role("tab", name="🔄 Video Loop").click()
    set_number(page, "loop_repeats", 2)
    looped = run_op("🔄 Video Loop", "loop_run")
    assert probe_video(looped).frames == 2 * len(src_frames)

    # Chain: the looped video becomes the input; speed 2x halves it back.
    page.locator("#post_use_processed").click()
    expect(page.locator("#post_status")).to_contain_text("now the input")
    page.get_by_role("tab", name="🎞️ Frame Adjust (Speed & Interpolation)").click()
    set_number(page, "speed_factor", 2)
    fast = run_op("🎞️ Frame Adjust (Speed & Interpolation)", "adjust_run")
    assert abs(probe_video(fast).frames - len(src_frames)) <= 1

    # Reverse reverses frame order (of the chained input).
    page.get_by_role("tab", name="✂️ Trim / Reverse / Join").click()
    rev = run_op("✂️ Trim / Reverse / Join", "reverse_run")
    loop_frames, _ = read_video(looped)
    rev_frames, _ = read_video(rev)
    assert len(rev_frames) == len(loop_frames)
    assert abs(rev_frames[0].astype(int) - loop_frames[-1].astype(int)).mean() < 6
    expect(page.locator("#post_output video")).to_be_visible()
    # No wait for the first frame to paint: a browser need not decode a frame of a paused video (readyState may
    # stay at HAVE_METADATA), so such a wait could hang; the screenshot is for people, the assertions are the test.
    shot(page, artifacts, "postprocess_tab")

    # Export GIF (download, not autosaved).
    page.get_by_role("tab", name="📤 Export").click()
    page.locator("#export_format label", has_text="gif").click()
    page.locator("#export_run").click()
    expect(page.locator("#post_status")).to_contain_text("Exported")
    expect(page.locator("#export_file")).to_contain_text(".gif")

    # Open Output Folder lists saved files (no desktop here).
    page.locator("#post_open").click()
    expect(page.locator("#post_status")).to_contain_text("saved file(s)")
    page.locator("#post_clear").click()
    expect(page.locator("#post_status")).to_contain_text("Removed")

    # Outputs -> Delete (after a confirm) removes the video with its sidecar and thumbnail.
    (spare_job,) = _wait_jobs(studio, [spare])
    assert spare_job.status.value == "COMPLETED", spare_job.error
    victim = Path(spare_job.output_video)
    make_newest(victim)  # first in the gallery
    tab(page, "Outputs")
    page.locator("#outputs_refresh").click()
    page.locator("#outputs_gallery img").first.click()
    sel = page.locator("#outputs_selected textarea, #outputs_selected input").first
    # Its own path, not just any: the box may still show an earlier selection while this click's event runs,
    # and Delete sends what the box holds.
    expect(sel).to_have_value(str(victim))
    page.once("dialog", lambda d: d.accept())
    page.locator("#outputs_delete").click()
    expect(page.locator("#outputs_msg")).to_contain_text("Deleted")
    assert not victim.exists() and not victim.with_suffix(".json").exists()
    expect(page.locator("#outputs_info textarea")).to_have_value("")  # no info left of a deleted video

    # Outputs -> Load parameters back into Generate. The selection and its info change in one event: wait
    # until it names another video than the deleted one before reading the info.
    page.locator("#outputs_gallery img").first.click()
    expect(sel).to_have_value(re.compile(rf"^(?!{re.escape(str(victim))}$).+\.mp4$"))
    expect(page.locator("#outputs_info textarea")).to_have_value(re.compile("seed"))
    data = json.loads(page.locator("#outputs_info textarea").input_value())
    page.locator("#outputs_load_params").click()
    _expect_generate_opened(page)
    expect(page.locator("#form_msg")).to_contain_text("Loaded parameters")
    params = data.get("params", data)
    expect(page.locator("#prompt textarea")).to_have_value(params["prompt"])
    # Loading the same video again, after the form was edited, fills the form again.
    fill(page, "prompt", "edited after loading")
    tab(page, "Outputs")
    page.locator("#outputs_load_params").click()
    _expect_generate_opened(page)
    expect(page.locator("#prompt textarea")).to_have_value(params["prompt"])


def _expect_generate_opened(page: Page) -> None:
    """Load parameters switches to Generate; if it never does, the failure says what the Outputs tab said."""
    try:
        expect(page.get_by_role("tab", name="Generate", exact=True)).to_have_attribute("aria-selected", "true")
    except AssertionError as exc:
        said = page.locator("#outputs_msg").text_content()
        toasts = page.locator(".toast-body").all_text_contents()
        raise AssertionError(f"{exc}\n#outputs_msg: {said!r}; toasts: {toasts!r}") from exc


def test_queue_actions(page: Page, studio, artifacts):
    svc = studio.queue_service
    svc.pause()
    try:
        base = {"prompt": "queued", **TINY}
        a, b, c = (svc.add(base) for _ in range(3))
        page.goto(studio.url)
        # The Generate tab's live view follows the newest job while none runs; its Cancel stops it.
        live_id = page.locator("#live_job_id textarea, #live_job_id input").first
        expect(live_id).to_have_value(c)
        page.locator("#live_cancel").click()
        expect(page.locator("#live-status")).to_contain_text("CANCELLED")
        assert svc.get(c).status.value == "CANCELLED"
        assert svc.retry(c)

        tab(page, "Queue")
        table = page.locator("#queue_table")
        expect(table).to_contain_text(c)

        def select(job_id: str) -> None:
            table.get_by_text(job_id, exact=True).filter(visible=True).first.click()
            expect(page.locator("#queue_job_id input, #queue_job_id textarea").first).to_have_value(job_id)

        def order() -> list[str]:
            return [j.id for j in svc.list() if j.id in (a, b, c)]

        select(c)
        page.locator("#job_up").click()
        expect(page.locator("#queue_msg")).to_contain_text("Moved")
        assert order() == [a, c, b]
        page.locator("#job_down").click()
        expect(page.locator("#queue_msg")).to_contain_text(f"Moved {c} down")
        assert order() == [a, b, c]

        select(a)
        page.locator("#job_duplicate").click()
        expect(page.locator("#queue_msg")).to_contain_text("Duplicated")
        dup = re.search(r"as ([0-9a-f]+)", page.locator("#queue_msg").inner_text()).group(1)
        assert svc.get(dup).params.prompt == "queued"

        # Load into Generate: the job's parameters fill the form and the Generate tab opens; loading the same
        # job again after the form was edited fills it again.
        select(a)
        for _ in range(2):
            page.locator("#job_load").click()
            expect(page.get_by_role("tab", name="Generate", exact=True)).to_have_attribute("aria-selected", "true")
            expect(page.locator("#prompt textarea")).to_have_value("queued")
            expect(page.locator("#steps input[type=number]")).to_have_value(str(TINY["steps"]))
            expect(page.locator("#form_msg")).to_contain_text("Loaded parameters from Queue")
            fill(page, "prompt", "edited after loading")
            set_number(page, "steps", TINY["steps"] + 5)
            tab(page, "Queue")
        expect(page.locator("#queue_msg")).to_contain_text(f"Loaded {a} into Generate")

        select(b)
        page.locator("#job_cancel").click()
        expect(page.locator("#queue_msg")).to_contain_text("Cancel requested")
        assert svc.get(b).status.value == "CANCELLED"
        page.locator("#job_retry").click()
        expect(page.locator("#queue_msg")).to_contain_text("Retrying")
        assert svc.get(b).status.value == "PENDING"

        select(dup)
        page.locator("#job_remove").click()
        expect(page.locator("#queue_msg")).to_contain_text("Removed")
        assert svc.get(dup) is None

        # Export -> a zip to download.
        page.locator("#queue_export").click()
        expect(page.locator("#queue_export_file")).to_contain_text(".zip")

        # Cancel Queue asks first; dismissing changes nothing, accepting cancels every PENDING job.
        page.once("dialog", lambda d: d.dismiss())
        page.locator("#queue_cancel_all").click()
        expect(page.locator("#queue_msg")).to_contain_text("aborted")
        assert svc.get(a).status.value == "PENDING"
        page.once("dialog", lambda d: d.accept())
        page.locator("#queue_cancel_all").click()
        expect(page.locator("#queue_msg")).to_contain_text("Cancelled 3 pending")
        assert {svc.get(j).status.value for j in (a, b, c)} == {"CANCELLED"}
        shot(page, artifacts, "queue_actions")

        # Load Queue with the exported zip (kept in the exports folder): the jobs come back as they were.
        zips = sorted(studio.paths.exports_dir.glob("*.zip"))
        assert zips
        n_before = len(svc.list())
        upload(page, "queue_load", zips[-1])
        expect(page.locator("#queue_msg")).to_contain_text("Imported")
        assert len(svc.list()) > n_before

        # Load Queue with a picked JSON file (this project's JSON export of one job, CANCELLED: it stays so).
        picked = studio.paths.root / "picked" / "one.json"
        picked.parent.mkdir(exist_ok=True)
        svc.export_json(picked, [a])
        before = {j.id for j in svc.list()}
        upload(page, "queue_load", picked)
        expect(page.locator("#queue_msg")).to_contain_text("Imported 1 job(s)")
        (new,) = [j for j in svc.list() if j.id not in before]
        assert new.title == "queued" and new.status.value == "CANCELLED"

        page.locator("#queue_clear").click()
        expect(page.locator("#queue_msg")).to_contain_text("Cleared")
        assert all(j.status.value in ("PENDING", "RUNNING") for j in svc.list())
    finally:
        svc.cancel_pending()  # nothing queued here may cost a generation
        svc.resume()


def test_settings_survive_restart(page: Page, tmp_path, artifacts, keep_gradio_temp):
    from studio.ui.server import create_studio
    from studio.web.app import WebOptions

    def start():
        st = create_studio(tmp_path / "data", "tiny", start_worker=False)
        st.serve(WebOptions(port=0))
        return st

    st = start()
    try:
        page.goto(st.url)
        tab(page, "Settings")
        set_number(page, "setting_mp4_crf", 23)
        page.locator("#setting_save_metadata input[type=checkbox]").uncheck()
        fill(page, "setting_output_dir", "my_videos")
        page.locator("#settings_save").click()
        expect(page.locator("#settings_msg")).to_contain_text("saved")
        shot(page, artifacts, "settings_tab")
        # The message may be an earlier change's "Auto-saved" while later saves still run: wait for the file
        # itself before stopping the server (stopping drops the events still queued).
        file = tmp_path / "data" / "settings.json"
        saved = wait_until(lambda: file.exists() and (s := json.loads(file.read_text())).get("mp4_crf") == 23
                           and s.get("save_metadata") is False and s.get("output_dir") == "my_videos" and s,
                           describe=lambda: f"settings.json: {file.read_text() if file.exists() else None}")
    finally:
        st.close()
    assert saved["models"] == "real"  # --models tiny applies to the run only

    st = start()
    try:
        page.goto(st.url)
        tab(page, "Settings")
        expect(page.locator("#setting_mp4_crf input[type=number]")).to_have_value("23")
        expect(page.locator("#setting_save_metadata input[type=checkbox]")).not_to_be_checked()
        expect(page.locator("#setting_output_dir textarea, #setting_output_dir input").first).to_have_value("my_videos")
    finally:
        st.close()


def test_metadata_presets_and_lora_controls(page: Page, studio, tmp_path, artifacts):
    """Form helpers that queue nothing: metadata JSON fills the form, presets round-trip, LoRA sliders."""
    write_lora(studio.services.lora_dir / "style_a.safetensors")  # fits the tiny transformer, so it is offered
    meta = tmp_path / "job.json"
    meta.write_text(json.dumps({"params": {"prompt": "from metadata", "steps": 9, "seed": 4242,
                                           "generation_type": "F1", "cache_type": "MagCache"}}))
    page.goto(studio.url)
    open_accordion(page, "LoRAs & Metadata")
    upload(page, "metadata_json", meta)
    expect(page.locator("#form_msg")).to_contain_text("Loaded parameters from metadata")
    expect(page.locator("#prompt textarea")).to_have_value("from metadata")
    expect(page.locator("#steps input[type=number]")).to_have_value("9")
    expect(page.locator("#seed input")).to_have_value("4242")
    expect(page.locator("#generation_type input")).to_have_value("F1")

    bad = tmp_path / "bad.json"
    bad.write_text('{"steps": 1000, "prompt": "x"}')
    upload(page, "metadata_json", bad)
    expect(page.locator("#form_msg")).to_contain_text("steps")
    expect(page.locator("#prompt textarea")).to_have_value("from metadata")  # unchanged

    # LoRAs: refresh picks up the new file; selecting it shows its weight slider.
    page.locator("#lora_refresh").click()
    page.locator("#lora_select input").first.click()
    page.get_by_role("option", name="style_a.safetensors").click()
    expect(page.locator("#lora_weight_0")).to_be_visible()
    expect(page.locator("#lora_weight_0")).to_contain_text("style_a.safetensors")
    expect(page.locator("#lora_weight_1")).to_be_hidden()
    page.keyboard.press("Escape")

    # Presets for the current type (F1): save, change the form, load it back, delete.
    open_accordion(page, "Presets")
    fill(page, "preset_name", "my look")
    page.locator("#preset_save").click()
    expect(page.locator("#preset_msg")).to_contain_text("Saved preset")
    assert (studio.paths.presets_dir / "generate" / "f1" / "my look.json").is_file()
    set_number(page, "steps", 3)
    page.locator("#preset_load").click()
    expect(page.locator("#preset_msg")).to_contain_text("Loaded preset")
    expect(page.locator("#steps input[type=number]")).to_have_value("9")
    shot(page, artifacts, "generate_presets_loras")
    page.locator("#preset_delete").click()
    expect(page.locator("#preset_msg")).to_contain_text("Deleted preset")
    assert not (studio.paths.presets_dir / "generate" / "f1" / "my look.json").exists()
