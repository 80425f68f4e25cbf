"""Export / import: round trip, FramePack-Studio's layout, and hostile archives refused without a trace."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from studio.jobs.archive import ArchiveError, check_member_name
from studio.jobs.model import JobStatus


def _p(image: Path, prompt: str, **kw) -> dict:
    return {"prompt": prompt, "start_image": str(image), "total_seconds": 2, "steps": 3, **kw}


def _state(svc) -> tuple:
    return ([(j.id, j.status) for j in svc.list()], sorted(p.name for p in svc.paths.jobs_dir.iterdir()))


def test_export_import_round_trip(make_service, image, small_video, tmp_path):
    svc = make_service(start=False)
    a = svc.add(_p(image, "first", seed=7))
    b = svc.add({"generation_type": "Video", "input_video": str(small_video), "prompt": "extend"})
    zpath = svc.export_zip(tmp_path / "q.zip")
    with zipfile.ZipFile(zpath) as zf:
        names = set(zf.namelist())
        doc = json.loads(zf.read("jobs.json"))
    kept_a, kept_b = Path(svc.get(a).params.start_image).name, Path(svc.get(b).params.input_video).name
    assert {"jobs.json", f"files/{a}/{kept_a}", f"files/{b}/{kept_b}"} <= names
    assert [j["params"]["prompt"] for j in doc["jobs"]] == ["first", "extend"]
    svc.clear_finished()
    svc.cancel_pending()
    svc.clear_finished()
    result = svc.import_file(zpath)
    assert len(result.added) == 2
    new = [svc.get(i) for i in result.added]
    assert [j.params.prompt for j in new] == ["first", "extend"] and new[0].params.seed == 7
    assert Path(new[0].params.start_image).read_bytes() == image.read_bytes()
    assert Path(new[1].params.input_video).read_bytes() == small_video.read_bytes()
    assert all(j.status == JobStatus.PENDING and Path(j.params.start_image or j.params.input_video)
               .parent == svc.paths.kept_inputs_dir for j in new)
    assert not list(svc.paths.jobs_dir.glob(".import-*"))


def test_completed_jobs_are_not_requeued(make_service, image, tmp_path):
    svc = make_service(start=False)
    a = svc.add(_p(image, "done"))
    svc.add(_p(image, "todo"))
    svc.store.claim_next()
    svc.store.finish(a, JobStatus.COMPLETED)
    res = svc.import_file(svc.export_zip(tmp_path / "q.zip"))
    assert len(res.skipped) == 1 and [svc.get(i).params.prompt for i in res.added] == ["todo"]


def _zip(path: Path, members: dict[str, bytes], patch_size: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for info in zf.filelist:  # lie in the central directory, which is what readers trust
            if patch_size and info.filename in patch_size:
                info.file_size = patch_size[info.filename]
    return path


def _jobs_json(image_name: str) -> bytes:
    return json.dumps({"format": "fp-studio-queue", "version": 1, "jobs": [
        {"params": {"prompt": "x", "start_image": image_name, "total_seconds": 1}}]}).encode()


@pytest.mark.parametrize("case", ["dotdot", "absolute", "drive", "huge", "malformed", "bad_params", "missing_file",
                                  "not_zip", "no_index"])
def test_hostile_imports_are_refused_and_change_nothing(make_service, image, tmp_path, case):
    svc = make_service(start=False)
    svc.add(_p(image, "existing"))
    before = _state(svc)
    png = image.read_bytes()
    if case == "dotdot":
        f = _zip(tmp_path / "a.zip", {"jobs.json": _jobs_json("x.png"), "../evil.png": png})
    elif case == "absolute":
        f = _zip(tmp_path / "a.zip", {"jobs.json": _jobs_json("/tmp/evil.png"), "/tmp/evil.png": png})
    elif case == "drive":
        f = _zip(tmp_path / "a.zip", {"jobs.json": _jobs_json("x.png"), "C:/evil.png": png})
    elif case == "huge":
        f = _zip(tmp_path / "a.zip", {"jobs.json": _jobs_json("big.png"), "big.png": png},
                 patch_size={"big.png": 1 << 30})
    elif case == "malformed":
        f = _zip(tmp_path / "a.zip", {"jobs.json": b"{\"format\": \"fp-studio-queue\", \"jobs\": [", "x.png": png})
    elif case == "bad_params":  # second job invalid: the valid first one must not be added either
        doc = {"format": "fp-studio-queue", "version": 1, "jobs": [
            {"params": {"prompt": "ok", "start_image": "x.png"}},
            {"params": {"prompt": "bad", "steps": 1000, "start_image": "x.png"}}]}
        f = _zip(tmp_path / "a.zip", {"jobs.json": json.dumps(doc).encode(), "x.png": png})
    elif case == "missing_file":
        f = _zip(tmp_path / "a.zip", {"jobs.json": _jobs_json("nothere.png")})
    elif case == "not_zip":
        f = tmp_path / "a.zip"
        f.write_bytes(b"PK\x03\x04 truncated")
    else:
        f = _zip(tmp_path / "a.zip", {"other.json": b"{}"})
    expected = {"dotdot": "'..'", "absolute": "absolute", "drive": "absolute", "huge": "declares 1073741824",
                "malformed": "malformed JSON", "bad_params": "steps", "missing_file": "nothere.png",
                "not_zip": "not a valid zip", "no_index": "no jobs.json"}[case]
    with pytest.raises(ArchiveError) as ei:
        svc.import_file(f)
    assert expected in str(ei.value)
    assert _state(svc) == before
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/evil.png").exists()


def test_malformed_and_foreign_json_refused(make_service, image, tmp_path):
    svc = make_service(start=False)
    before = _state(svc)
    bad = tmp_path / "q.json"
    bad.write_text("{not json")
    with pytest.raises(ArchiveError, match="malformed JSON"):
        svc.import_file(bad)
    bad.write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ArchiveError, match="not a queue file"):
        svc.import_file(bad)
    outside = tmp_path / "elsewhere" / "q.json"
    outside.parent.mkdir()
    outside.write_text(json.dumps({"format": "fp-studio-queue", "version": 1, "jobs": [
        {"params": {"prompt": "x", "start_image": "../start.png"}}]}))
    with pytest.raises(ArchiveError, match="outside"):
        svc.import_file(outside)
    assert _state(svc) == before


def test_member_name_rules():
    assert check_member_name("files/abc/start_image.png") is None
    for bad in ("../x", "a/../../x", "/etc/passwd", "C:\\x", "c:/x", "a\\b", ""):
        assert check_member_name(bad), bad


def test_load_queue_framepack_studio_layout(make_service, image, small_video, paths):
    """FramePack-Studio's queue.json (dict by job id, its key names, images under queue_images/)."""
    svc = make_service(start=False)
    (paths.root / "queue_images").mkdir()
    shutil.copy(image, paths.root / "queue_images" / "j1_input.png")
    shutil.copy(image, paths.root / "queue_images" / "j1_end_frame.png")
    (paths.root / "input_files").mkdir()
    shutil.copy(small_video, paths.root / "input_files" / "clip.mp4")
    fps_queue = {
        "j1": {"id": "j1", "status": "pending", "model_type": "Original with Endframe", "prompt": "a cat",
               "negative_prompt": "blurry", "seed": 42, "steps": 12, "cfg": 1.0, "gs": 8.0, "rs": 0.0,
               "latent_type": "Black", "total_second_length": 3, "blend_sections": 2, "latent_window_size": 9,
               "resolutionW": 512, "resolutionH": 384, "use_teacache": True, "teacache_num_steps": 12,
               "teacache_rel_l1_thresh": 0.2, "end_frame_strength": 0.5, "loras": {"style": 0.8},
               "saved_input_image_path": "queue_images/j1_input.png",
               "saved_end_frame_image_path": "queue_images/j1_end_frame.png", "created_at": 1.0},
        "j2": {"status": "running", "model_type": "Video", "prompt": "go on", "seed": 1, "steps": 5,
               "use_magcache": True, "input_video": "clip.mp4", "video_path": "input_files/clip.mp4"},
        "j3": {"status": "completed", "model_type": "F1", "prompt": "old"},
    }
    paths.queue_json.write_text(json.dumps(fps_queue))
    res = svc.load_queue()
    assert [s.job for s in res.skipped] == ["j3"] and len(res.added) == 2 and "FramePack-Studio" in res.source_format
    j1, j2 = (svc.get(i).params for i in res.added)
    assert j1.generation_type.value == "Original with Endframe" and j1.prompt == "a cat" and j1.seed == 42
    assert (j1.steps, j1.distilled_cfg, j1.total_seconds, j1.width, j1.height) == (12, 8.0, 3, 512, 384)
    assert j1.negative_prompt == "blurry" and j1.teacache_threshold == 0.2 and j1.end_frame_strength == 0.5
    assert j1.cache_type.value == "TeaCache" and j1.loras[0].name == "style.safetensors"
    assert j1.start_image.read_bytes() == image.read_bytes() and j1.end_image is not None
    assert j2.generation_type.value == "Video" and j2.cache_type.value == "MagCache"
    assert j2.input_video.read_bytes() == small_video.read_bytes()


def test_load_queue_own_json(make_service, image):
    svc = make_service(start=False)
    a = svc.add(_p(image, "saved"))
    svc.export_json(svc.paths.queue_json)
    svc.remove(a)
    with pytest.raises(ArchiveError):  # its input files went with the removed job folder
        svc.load_queue()
    b = svc.add(_p(image, "kept"))
    svc.export_json(svc.paths.queue_json)
    res = svc.load_queue()
    assert [svc.get(i).params.prompt for i in res.added] == ["kept"] and res.added[0] != b
