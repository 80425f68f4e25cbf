"""The UI's pure parts: form <-> parameters, controls derived from the models, uploads, presets, outputs."""

from __future__ import annotations

import re

import json
import os
import random
import time
from pathlib import Path

import gradio as gr
import pytest
from pydantic import ValidationError

from modules.framepack.params import GenerationParams, GenerationType
from modules.media.video_io import write_video
from modules.models.registry import ModelSet
from studio.settings import Settings, SettingsStore
from studio.ui import outputs_index as idx
from studio.ui.fields import bounds, default
from modules.framepack.grid_axes import parse_axis_values
from studio.ui.form import SCALAR_FIELDS, build_params, params_from_metadata
from studio.ui.generate import visibility
from studio.ui.presets import PresetError, PresetStore
from studio.ui.services import SettingsHolder
from studio.ui.settings_tab import SECTIONS, clean_gradio_temp
from studio.ui.uploads import UploadError, check_image, check_video
from tests.conftest import GOLDEN_DIR, make_test_frames

START = GOLDEN_DIR / "start_image_64x64.png"
ROOT = Path(__file__).resolve().parents[2]
NO_FILES = dict(start_image=None, end_image=None, input_video=None, keyframes=[], loras=[], grid_x=None,
                grid_y=None, randomize_seed=False, system_prompt=None)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The whole UI built (not launched) on a temp data dir."""
    from studio.ui.server import create_studio

    saved = os.environ.get("GRADIO_TEMP_DIR")
    data = tmp_path_factory.mktemp("units-data")
    (data / "settings.json").write_text("{not json")  # a corrupt file: backed up, defaults, visible warning
    st = create_studio(data, "tiny", start_worker=False)
    yield st
    st.queue_service.close()
    if saved is not None:  # create_studio points it at its own data dir (see keep_gradio_temp)
        os.environ["GRADIO_TEMP_DIR"] = saved


def _by_id(demo: gr.Blocks) -> dict[str, gr.components.Component]:
    return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_generation_controls_take_defaults_and_ranges_from_params(built):
    comps = _by_id(built.demo)
    checked = 0
    for name in SCALAR_FIELDS:
        comp = comps[name]
        want = default(GenerationParams, name)
        assert comp.value == want, name
        if isinstance(comp, gr.Slider):
            lo, hi = bounds(GenerationParams, name, comp.step)
            assert (comp.minimum, comp.maximum) == (lo, hi), name
            checked += 1
    assert checked >= 15


def test_corrupt_settings_file_is_backed_up_with_a_visible_warning(built):
    warning = _by_id(built.demo)["settings_warning"]
    assert warning.visible and "unreadable" in warning.value
    assert list(built.paths.root.glob("settings.json.corrupt-*"))
    assert built.services.settings.current.mp4_crf == Settings().mp4_crf


def test_every_setting_has_a_control(built):
    listed = [n for items in SECTIONS.values() for n, _ in items]
    assert sorted(listed) == sorted(Settings.model_fields)
    comps = _by_id(built.demo)
    for name in Settings.model_fields:
        assert f"setting_{name}" in comps, name
    crf = comps["setting_mp4_crf"]
    assert (crf.minimum, crf.maximum) == bounds(Settings, "mp4_crf")
    # Read-only until the page load fills in the stored values (the browser test shows it).
    assert not any(comps[f"setting_{name}"].interactive for name in Settings.model_fields)


def test_visibility_per_type():
    assert visibility("Original")["start"] and not visibility("Original")["video"]
    assert visibility("Video")["video"] and not visibility("Video")["start"]
    assert visibility("Original with Endframe")["end"] and visibility("Video with Endframe")["end"]
    assert not visibility("Original")["end"]
    g = visibility("Grid")
    assert g["grid"] and not g["latent"] and not g["keyframes"]


def test_build_params_only_sends_inputs_of_the_type(tmp_path):
    video = write_video(tmp_path / "v.mp4", make_test_frames(5, 64, 64), fps=30)
    p = build_params({"generation_type": "Video", "prompt": "x", "steps": 3.0}, **{
        **NO_FILES, "start_image": START, "end_image": START, "input_video": video})
    assert p.generation_type == GenerationType.VIDEO and p.start_image is None and p.end_image is None
    assert p.input_video == video and p.steps == 3 and isinstance(p.steps, int)
    p = build_params({"generation_type": "Original with Endframe"}, **{**NO_FILES, "start_image": START,
                                                                       "end_image": START})
    assert p.end_image == START and p.start_image == START


def test_build_params_grid_seed_keyframes_and_errors():
    p = build_params({"generation_type": "Grid", "prompt": "x"},
                     **{**NO_FILES, "grid_x": ("steps", "1, 2,3"), "grid_y": ("prompt", "a cat\na dog")})
    assert p.grid_x.values == [1, 2, 3] and p.grid_y.values == ["a cat", "a dog"]
    assert parse_axis_values("distilled_cfg", "6.5, 10") == [6.5, 10]  # the one grid value parser
    with pytest.raises(ValueError, match="'lots' is not a number"):
        parse_axis_values("steps", "1, lots")
    with pytest.raises(ValueError, match="grid_x"):
        build_params({"generation_type": "Grid"}, **{**NO_FILES, "grid_x": ("(none)", "")})
    p = build_params({"seed": 5}, **{**NO_FILES, "randomize_seed": True}, rng=random.Random(1))
    assert p.seed == random.Random(1).randint(0, 2**31 - 1)
    p = build_params({}, **{**NO_FILES, "system_prompt": "SYS {}", "loras": [("a.safetensors", 0.5)]})
    assert p.system_prompt == "SYS {}" and p.loras[0].weight == 0.5
    with pytest.raises(ValidationError) as info:
        build_params({"steps": 0, "width": 5000}, **NO_FILES)
    assert {e["loc"][0] for e in info.value.errors()} == {"steps", "width"}
    with pytest.raises(ValidationError):
        build_params({"generation_type": "Video"}, **NO_FILES)  # a video type needs its video


def test_keyframes_from_form():
    from studio.ui.form import parse_keyframe_seconds

    assert parse_keyframe_seconds("1, 2.5", 2) == [1.0, 2.5]
    with pytest.raises(ValueError, match="2 image"):
        parse_keyframe_seconds("1", 2)
    with pytest.raises(ValueError, match="numbers"):
        parse_keyframe_seconds("1, soon", 2)
    p = build_params({"generation_type": "Original"}, **{**NO_FILES, "keyframes": [(START, 2.0)]})
    assert p.keyframes[0].image == START and p.keyframes[0].seconds == 2.0
    p = build_params({"generation_type": "Grid"}, **{**NO_FILES, "keyframes": [(START, 2.0)],
                                                     "grid_x": ("seed", "1")})
    assert p.keyframes == []  # Grid shows no keyframe inputs, so none are sent


def test_metadata_json_round_trip_and_errors():
    params = GenerationParams(prompt="hello", steps=7, seed=9, generation_type=GenerationType.F1)
    back, notes = params_from_metadata(json.dumps({"params": params.model_dump(mode="json"), "versions": {}}))
    assert back == params and notes == []
    back, notes = params_from_metadata(json.dumps({"prompt": "hi", "foo": 1, "start_image": "/nope.png"}))
    assert back.prompt == "hi" and any("foo" in n for n in notes) and any("start_image" in n for n in notes)
    with pytest.raises(ValueError, match="not valid JSON"):
        params_from_metadata("{oops")
    with pytest.raises(ValueError, match="no FP-Studio parameters"):
        params_from_metadata(json.dumps({"name": "something else"}))
    with pytest.raises(ValueError, match="steps"):
        params_from_metadata(json.dumps({"prompt": "x", "steps": 1000}))


def test_uploads_are_checked_by_content(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    with pytest.raises(UploadError, match="fake.png"):
        check_image(fake, "Start Frame")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(START.read_bytes()[:200])
    with pytest.raises(UploadError):
        check_image(truncated)
    assert check_image(START) == START
    with pytest.raises(UploadError):
        check_video(START)
    with pytest.raises(UploadError):
        check_video(tmp_path / "missing.mp4")


def test_presets_per_type(tmp_path):
    store = PresetStore(tmp_path)
    store.save("F1", "fast", {"steps": 5})
    assert store.names("F1") == ["fast"] and store.names("Original") == []
    assert store.load("F1", "fast") == {"steps": 5}
    for bad in ("../x", "", "a/b", ".hidden"):
        with pytest.raises(PresetError):
            store.save("F1", bad, {})
    store.delete("F1", "fast")
    assert store.names("F1") == []


def test_outputs_index_newest_first_thumbs_info_delete(tmp_path):
    out, thumbs, meta = tmp_path / "out", tmp_path / "thumbs", tmp_path / "meta"
    for d in (out, thumbs, meta):
        d.mkdir()
    a = write_video(out / "a.mp4", make_test_frames(3, 32, 32), fps=30)
    b = write_video(out / "b.mp4", make_test_frames(3, 32, 32), fps=30)
    os.utime(a, (time.time() - 100, time.time() - 100))
    (out / ".partial.part.mp4").write_bytes(b"x")
    (meta / "b.json").write_text(json.dumps({"prompt": "bee", "seed": 1}))
    items = idx.list_outputs(out)
    assert [i.name for i in items] == ["b.mp4", "a.mp4"]
    t1 = idx.thumbnail(b, thumbs)
    assert t1 is not None and t1.parent == thumbs
    mtime = t1.stat().st_mtime_ns
    assert idx.thumbnail(b, thumbs) == t1 and t1.stat().st_mtime_ns == mtime  # cached
    text, data = idx.info(b, meta)
    assert data == {"prompt": "bee", "seed": 1} and "bee" in text
    removed = idx.delete(b, out, meta, thumbs)
    assert not b.exists() and not (meta / "b.json").exists() and not t1.exists() and len(removed) == 3
    # The engine's own files beside a video: thumbnail PNG, sidecar JSON, saved latents.
    c = write_video(out / "c.mp4", make_test_frames(3, 32, 32), fps=30)
    for extra in ("c.png", "c.json", "c.latents.safetensors"):
        (out / extra).write_bytes(b"x")
    assert idx.thumbnail(c, thumbs) == out / "c.png"
    removed = idx.delete(c, out, meta, thumbs)
    assert {p.name for p in removed} == {"c.mp4", "c.png", "c.json", "c.latents.safetensors"}
    assert [i.name for i in idx.list_outputs(out)] == ["a.mp4"]
    with pytest.raises(ValueError):
        idx.delete(tmp_path / "elsewhere.mp4", out, meta, thumbs)


def test_run_overrides_are_not_saved(tmp_path):
    store = SettingsStore(tmp_path / "settings.json")
    file_settings = store.load()
    tiny = {"models": ModelSet.TINY}
    holder = SettingsHolder(store, file_settings.model_copy(update=tiny), tiny, file_settings)
    holder.update(holder.current.model_copy(update={"mp4_crf": 20}))
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved["mp4_crf"] == 20 and saved["models"] == "real"
    assert holder.current.models == ModelSet.TINY


def test_clean_gradio_temp(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("x")
    (tmp_path / "g.txt").write_text("x")
    assert clean_gradio_temp(tmp_path) == 2
    assert tmp_path.is_dir() and not any(tmp_path.iterdir())
    assert clean_gradio_temp(tmp_path / "missing") == 0


def test_a_thousand_outputs_decode_only_the_page_once(tmp_path, monkeypatch):
    out, thumbs = tmp_path / "out", tmp_path / "thumbs"
    out.mkdir()
    thumbs.mkdir()
    src = write_video(tmp_path / "src.mp4", make_test_frames(2, 32, 32), fps=30)
    data = src.read_bytes()
    for i in range(1000):
        (out / f"v{i:04d}.mp4").write_bytes(data)
    gallery, page, total = idx.page(out, thumbs, 0, 48)  # first open makes 48 thumbnails
    assert total == 1000 and len(gallery) == 48 and page == 0
    # Reopening the page decodes nothing: cached thumbnails, a directory scan and stats only (its speed is
    # bench/ territory). A decode now would fail the test.
    def no_decode(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(idx, "iter_frames", no_decode)
    gallery2, _, _ = idx.page(out, thumbs, 0, 48)
    assert gallery2 == gallery
    assert len(list(thumbs.iterdir())) == 48
    monkeypatch.undo()  # the last page has not been opened yet: its thumbnails are made now
    last, index, _ = idx.page(out, thumbs, 99, 48)
    assert index == 20 and len(last) == 1000 - 20 * 48


# Every control FramePack-Studio's user guide names, per tab (a label, button text or tab name; matched
# case-insensitively): people who know that guide find each of them. The names are copied here from the guide's
# tab sections, so the test reads no file outside this repository. Left out on purpose (docs/generation.md):
# "TeaCache steps", which would only repeat Steps (test_teacache_steps_is_not_a_second_steps_control).
GUIDE_CONTROLS = {
    "generate": ["Generation Type", "Start Frame (optional)", "Video Input", "End Frame (optional)",
                 "End Frame Influence", "Latent Image", "Prompt", "Negative Prompt",
                 "Number of sections to blend between prompts", "Steps", "Video Length (Seconds)", "Width", "Height",
                 "Seed", "Randomize", "TeaCache rel_l1_thresh", "Distilled CFG Scale",
                 "Combine with source video", "Number of Context Frames (Adherence to Video)",
                 "Select LoRAs to Load", "Upload Metadata JSON", "Add to Queue"],
    "queue": ["Refresh Queue", "Cancel Queue", "Clear Complete", "Load Queue", "Export Queue", "Import Queue"],
    "outputs": ["Video Gallery", "Video Player", "Generation Info", "Refresh", "Send to Post-processing"],
    "post": ["Upload Video", "Processed Video", "Use Processed as Input", "Autosave", "Save to Permanent Folder",
             "Upscale Video (ESRGAN)", "ESRGAN Model", "Tile Size", "Enhance Faces (GFPGAN)", "Video Filters (FFmpeg)",
             "Load Preset", "Preset Name", "Save/Update", "Frame Adjust (Speed & Interpolation)",
             "RIFE Frame Interpolation", "Speed", "Video Loop", "Loop Type", "Number of Loops", "Frames I/O",
             "Extract", "Reassemble", "Unload Studio Model", "Open Output Folder", "Clear Temporary Files"],
    "settings": ["Save Metadata", "GPU Inference Preserved Memory (GB)", "MP4 Compression (CRF)",
                 "Clean up video files", "Override System Prompt", "System Prompt Template", "Output Directory",
                 "Metadata Directory", "LoRA Directory", "Gradio Temporary Directory", "Auto-save settings", "Theme",
                 "Save Settings", "Clean Up Temporary Files"],
}


def test_every_control_the_guide_names_is_present(built):
    tabs = {b.id: b for b in built.demo.blocks.values() if isinstance(b, gr.Tab) and b.id in GUIDE_CONTROLS}
    assert set(tabs) == set(GUIDE_CONTROLS)
    for tab_id, names in GUIDE_CONTROLS.items():
        texts = []
        stack = [tabs[tab_id]]
        while stack:  # every block rendered inside this tab
            b = stack.pop()
            stack.extend(getattr(b, "children", []) or [])
            for attr in ("label", "value") if isinstance(b, (gr.Button, gr.Tab)) else ("label",):
                if isinstance(getattr(b, attr, None), str):
                    texts.append(getattr(b, attr).lower())
        missing = [n for n in names if not any(n.lower() in t for t in texts)]
        assert not missing, (tab_id, missing)
    comps = _by_id(built.demo)
    assert "TeaCache" in [c[0] for c in comps["cache_type"].choices]  # "Use TeaCache"
    from studio.ui.queue import COLUMNS

    headers = re.findall(r"<th>([^<]*)</th>", comps["queue_table"].value)
    # the guide's columns, with the job's progress and a prompt snippet added
    assert headers == COLUMNS == ["Job ID", "Type", "Status", "Worker", "Progress", "Prompt", "Created", "Started", "Completed", "Elapsed",
                       "Preview", "Name", "Group"]  # job name and batch group: studio/ui/queue_groups.py


def test_teacache_steps_is_not_a_second_steps_control(built):
    """TeaCache always counts the job's Steps (it must know the section's last step, which it always computes):
    a "TeaCache steps" control could only be a read-only copy of Steps, so there is none."""
    labels = [str(getattr(b, "label", "") or "") for b in built.demo.blocks.values()]
    assert not [lb for lb in labels if "teacache steps" in lb.lower()]
    assert "teacache_steps" not in _by_id(built.demo)
    assert "teacache_steps" not in GenerationParams.model_fields
    assert 'There is no "TeaCache steps" control' in (ROOT / "docs" / "generation.md").read_text(encoding="utf-8")


def test_header_shows_queue_counts_and_memory(built):
    from studio.ui.app import header_html

    svc = built.queue_service
    before = svc.counts()
    job = svc.add({"prompt": "header", "start_image": str(START), "width": 64, "height": 64})
    try:
        text = header_html(built.services)
        assert f"Pending: {before.pending + 1}<" in text and f"Running: {before.running}<" in text
        assert f"Done: {before.completed}<" in text
        assert "RAM " in text and "GB" in text and "VRAM" in text
        assert "hdr-worker-" not in text  # no worker started here (tests/queue/test_workers.py shows chips)
    finally:
        svc.remove(job)


def _handler(demo: gr.Blocks, elem_id: str, event: str = "click"):
    """The one event handler the component `elem_id` triggers on `event`."""
    comp = _by_id(demo)[elem_id]
    found = [f for f in demo.fns.values() if (comp._id, event) in f.targets]
    assert len(found) == 1, (elem_id, event, found)
    return found[0]


def _updates(fn, values) -> dict[str, object]:
    """An event's return values by output elem_id (the tabs by "tabs")."""
    out = {}
    for comp, value in zip(fn.outputs, values, strict=True):
        out["tabs" if isinstance(comp, gr.Tabs) else comp.elem_id] = value
    return out


def test_queue_table_and_live_view_show_the_stores_job_records(built):
    from studio.jobs.model import JobStatus, JobSummary, Progress
    from studio.ui.generate import followed_job, live_html
    from studio.ui.queue import COLUMNS, rows

    svc = built.queue_service
    job_id = svc.add({"prompt": "table row", "start_image": str(START), "width": 64, "height": 64})
    try:
        row = next(r for r in rows(svc.list(), built.services.thumbs_dir) if r[0] == job_id)
        assert len(row) == len(COLUMNS)
        assert row[1:4] == ["Original", "PENDING", ""] and (row[4] == "next" or "in line" in row[4])
        assert row[5] == "table row" and row[6] and row[7:10] == ["", "", ""]
        assert "<img" in row[10]  # the input's thumbnail
        assert followed_job(svc).id == job_id  # nothing runs: the newest job
        assert job_id in live_html(followed_job(svc)) and "PENDING" in live_html(followed_job(svc))
    finally:
        svc.remove(job_id)

    def summary(status: JobStatus, **kw) -> JobSummary:
        return JobSummary(id="j1", position=1, generation_type="F1", status=status, created_at=1000.0, **kw)

    running = summary(JobStatus.RUNNING, started_at=1000.0,
                      progress=Progress(stage="Sampling", section=1, total_sections=5, step=5, total_steps=10,
                                        eta_seconds=75))
    assert running.progress.fraction == 0.3  # (1 section + 5/10 steps) of 5 sections
    assert rows([running], built.services.thumbs_dir)[0][2] == "RUNNING 2/5 · 5/10"
    assert "width:30%" in rows([running], built.services.thumbs_dir)[0][4]
    ran = summary(JobStatus.RUNNING, worker="gpu1")
    waits = summary(JobStatus.PENDING, gpu="gpu1")
    assert [rows([j], built.services.thumbs_dir)[0][3] for j in (ran, waits)] == ["gpu1", "wants gpu1"]
    text = live_html(running)
    assert "Section 2/5" in text and "Step 5/10" in text and "ETA 1:15" in text and "width:30%" in text
    done = summary(JobStatus.COMPLETED, started_at=1000.0, completed_at=1065.0, output_video="/out/clip.mp4")
    assert done.elapsed_seconds == 65 and rows([done], built.services.thumbs_dir)[0][9] == "1:05"
    assert "Output: clip.mp4" in live_html(done)
    failed = summary(JobStatus.FAILED, error="out of memory\ntraceback...")
    assert "out of memory" in live_html(failed) and "traceback" not in live_html(failed)


def test_load_into_generate_fills_the_form_in_one_event(built):
    """Queue's "Load into Generate" and Outputs' "Load parameters" return the Generate form's updates and select
    its tab themselves, so the same job loads again however often it is clicked (no hidden carrier)."""
    svc = built.queue_service
    job_id = svc.add({"prompt": "load me", "start_image": str(START), "width": 64, "height": 64, "steps": 7,
                      "seed": 31})
    try:
        load = _handler(built.demo, "job_load")
        for _ in range(2):
            out = _updates(load, load.fn(job_id))
            assert out["prompt"]["value"] == "load me" and out["steps"]["value"] == 7 and out["seed"]["value"] == 31
            assert out["tabs"].selected == "generate"
            assert out["form_msg"] == "Loaded parameters from Queue."
            assert out["queue_msg"] == f"Loaded {job_id} into Generate."
        out = _updates(load, load.fn(""))  # nothing selected: the form and the tab stay
        assert out["prompt"] == {"__type__": "update"} and out["tabs"] == {"__type__": "update"}
    finally:
        svc.remove(job_id)

    video = built.services.output_dir / "loaded.mp4"
    video.write_bytes(b"not decoded here")
    video.with_suffix(".json").write_text(json.dumps({"params": {"prompt": "from outputs", "steps": 9}}))
    try:
        load = _handler(built.demo, "outputs_load_params")
        for _ in range(2):
            out = _updates(load, load.fn(str(video)))
            assert out["prompt"]["value"] == "from outputs" and out["steps"]["value"] == 9
            assert out["tabs"].selected == "generate" and out["form_msg"] == "Loaded parameters from Outputs."
        video.with_suffix(".json").write_text(json.dumps({"steps": 1000}))
        out = _updates(load, load.fn(str(video)))
        assert out["tabs"] == {"__type__": "update"} and "steps" in out["outputs_msg"]
    finally:
        video.unlink()
        video.with_suffix(".json").unlink()


def test_add_to_queue_reports_the_queues_own_refusal(built):
    """A grid cell is judged by the queue's input checker, not the form: its refusal shows on the form."""
    add = _handler(built.demo, "add_to_queue")
    comps = _by_id(built.demo)
    data = {c: c.value for c in add.inputs}  # the form as it renders, then a Grid with one bad cell
    data.update({comps["generation_type"]: "Grid", comps["start_image"]: str(START),
                 comps["grid_x_param"]: "steps", comps["grid_x_values"]: "1, 2000"})
    svc = built.queue_service
    before = len(svc.list())
    with pytest.warns(UserWarning, match="Not added"):  # gr.Warning's toast, outside a request
        message, seed = add.fn(data)
    assert message.startswith("**Not added:**") and "grid_x=2000" in message and "steps" in message
    assert seed == {"__type__": "update"} and len(svc.list()) == before
    data[comps["grid_x_values"]] = "1, 2"
    message, _ = add.fn(data)
    job_id = message.split("Added job ")[1].split(" ")[0]
    try:
        assert svc.get(job_id).params.grid_x.values == [1, 2]
    finally:
        svc.remove(job_id)


def test_a_gallery_caption_names_its_video_and_nothing_outside_the_output_folder(tmp_path):
    out, thumbs = tmp_path / "out", tmp_path / "thumbs"
    (out / "grid").mkdir(parents=True)
    src = write_video(tmp_path / "src.mp4", make_test_frames(2, 32, 32), fps=30)
    for name in ("a.mp4", "grid/b.mp4"):
        (out / name).write_bytes(src.read_bytes())
    gallery, _, _ = idx.page(out, thumbs, 0, 48)
    # Each picture's caption leads back to its video: a click needs nothing else.
    assert sorted(idx.video_for_caption(out, cap) for _, cap in gallery) == [out / "a.mp4", out / "grid/b.mp4"]
    assert sorted(cap for _, cap in gallery) == ["a.mp4", "grid/b.mp4"]
    # The caption comes back from the browser: nothing outside the folder, hidden or not an MP4.
    for hostile in ("../src.mp4", str(src), "grid/../../src.mp4", ".part.mp4", "a.json", None, 3, {"x": 1}):
        assert idx.video_for_caption(out, hostile) is None, hostile
