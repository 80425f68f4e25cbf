"""Job names (queue, output file stem: sanitised, numbered on clash, claimed) and batches (one job per file,
all or nothing, one group, Cancel group) through the service, the store, the HTTP API and the CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from queue_helpers import run_cli, wait_status

from modules.framepack.naming import CLAIM_SUFFIX, claimed_stem
from studio.jobs.model import JobStatus, JobValidationError
from studio.jobs.store import SCHEMA_VERSION, JobStore

TINY = {"total_seconds": 1, "steps": 1}


def _images(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name in enumerate(names):
        p = folder / name
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(p)
        out.append(p)
    return out


# ---- names -----------------------------------------------------------------------------------------------------
def test_claimed_stem_sanitises_numbers_clashes_and_holds_the_name(tmp_path):
    out = tmp_path / "out"
    with claimed_stem(out, "my shot/../x?") as stem:
        assert stem == "my_shot_.._x"  # one sanitiser (naming.sanitize_stem): no separators, no hidden name
        assert (out / f".{stem}{CLAIM_SUFFIX}").exists()
    assert not list(out.iterdir())  # the claim goes with the block
    (out / "shot.mp4").write_bytes(b"x")
    (out / "shot_2.json").write_bytes(b"x")
    with claimed_stem(out, "shot", (".mp4", ".json")) as first:
        # A second writer (another process: the lock is per open file) skips the claimed name.
        with claimed_stem(out, "shot", (".mp4", ".json")) as second:
            assert (first, second) == ("shot_3", "shot_4")


def test_concurrent_writers_never_share_a_stem(tmp_path):
    out = tmp_path / "out"
    got: list[str] = []
    barrier = threading.Barrier(4)

    def writer() -> None:
        barrier.wait()
        with claimed_stem(out, "race", (".mp4",)) as stem:
            got.append(stem)
            (out / f"{stem}.mp4").write_bytes(b"v")

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == ["race", "race_2", "race_3", "race_4"]


class NamingEngine:
    """Writes its video through outputs.claimed_output_stem, as finish_outputs does: the name decides the stem."""

    def generate(self, params, out, cancel):
        from modules.framepack.events import DoneEvent, GenerationResult
        from modules.framepack.outputs import claimed_output_stem

        with claimed_output_stem(out, "default") as stem:
            video = Path(out.output_dir) / f"{stem}.mp4"
            video.write_bytes(b"not really a video")
        yield DoneEvent(GenerationResult(video=video, metadata=None, thumbnail=None, frames=1, fps=30,
                                         width=16, height=16, seed=params.seed))


def test_named_jobs_write_their_name_numbered_on_clash(make_service, image):
    svc = make_service(NamingEngine())
    a = svc.add({"prompt": "a", "start_image": str(image), **TINY}, name="  Sunset\tshot  ")
    b = svc.add({"prompt": "b", "start_image": str(image), **TINY}, name="Sunset shot")
    plain = svc.add({"prompt": "c", "start_image": str(image), **TINY})
    for j in (a, b, plain):
        wait_status(svc, j, JobStatus.COMPLETED)
    assert svc.get(a).name == "Sunset shot"  # shown as typed, whitespace collapsed
    assert Path(svc.get(a).output_video).name == "Sunset_shot.mp4"
    assert Path(svc.get(b).output_video).name == "Sunset_shot_2.mp4"
    assert svc.get(plain).name == "" and Path(svc.get(plain).output_video).name == "default.mp4"
    dup = svc.duplicate(a)
    assert svc.get(dup).name == "Sunset shot"
    with pytest.raises(JobValidationError, match="name"):
        svc.add_batch({"prompt": "x", **TINY}, {"name": "n" * 500, "batch_inputs": [str(image)]})


def test_store_migration_adds_name_and_group(old_database):
    st = JobStore(old_database(2))
    assert st.schema_version == SCHEMA_VERSION
    [row] = st.list()
    assert row.id == "old" and row.name == "" and row.group_id is None
    st.close()


# ---- batches -----------------------------------------------------------------------------------------------------
def test_batch_is_all_or_nothing_and_names_the_file(make_service, tmp_path):
    svc = make_service(start=False)
    good = _images(tmp_path / "in", "a.png", "b.png")
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(JobValidationError) as err:
        svc.add_batch({"prompt": "batch", **TINY}, {"name": "trip", "batch_inputs": [good[0], bad, good[1]]})
    assert [(e.field, e.message) for e in err.value.errors] == [("batch_inputs.1", "not a readable image: broken.png")]
    assert svc.list() == []  # nothing queued
    # A problem of the shared settings is reported once, not once per file.
    with pytest.raises(JobValidationError) as err:
        svc.add_batch({"prompt": "batch", "steps": 0}, {"batch_inputs": good})
    assert [e.field for e in err.value.errors] == ["steps"]
    with pytest.raises(JobValidationError, match="batch_inputs: no input files"):
        svc.add_batch({"prompt": "batch"}, {"name": "x"})

    ids = svc.add_batch({"prompt": "batch", **TINY}, {"name": "trip", "batch_inputs": good})
    jobs = [svc.get(i) for i in ids]
    assert [j.name for j in jobs] == ["trip_a", "trip_b"]
    assert len({j.group_id for j in jobs}) == 1 and jobs[0].group_id
    assert [j.params.start_image.read_bytes() for j in jobs] == [p.read_bytes() for p in good]
    assert {j.params.seed for j in jobs} == {jobs[0].params.seed}  # the same settings


def test_batch_folder_takes_the_types_files_in_name_order(make_service, tmp_path, small_video):
    svc = make_service(start=False)
    folder = tmp_path / "shots"
    _images(folder, "b.png", "a.jpg")
    (folder / "notes.txt").write_text("not an input")
    (folder / ".hidden.png").write_bytes(b"junk")
    ids = svc.add_batch({"prompt": "folder", **TINY}, {"batch_folder": folder})
    assert [svc.get(i).name for i in ids] == ["a", "b"]  # no name: each file's stem
    # Video types take the folder's videos as their source videos.
    vids = tmp_path / "vids"
    vids.mkdir()
    (vids / "clip.mp4").write_bytes(small_video.read_bytes())
    [vid] = svc.add_batch({"prompt": "v", "generation_type": "Video", **TINY}, {"batch_folder": vids})
    assert svc.get(vid).params.input_video.read_bytes() == small_video.read_bytes()
    with pytest.raises(JobValidationError, match="batch_folder: no video files"):
        svc.add_batch({"prompt": "v", "generation_type": "Video"}, {"batch_folder": folder})


def test_cancel_group_cancels_only_its_pending_and_running_jobs(make_service, fake_engine, tmp_path, image):
    svc = make_service(fake_engine, start=False)
    files = _images(tmp_path / "in", "a.png", "b.png", "c.png")
    ids = svc.add_batch({"prompt": "group", **TINY}, {"batch_inputs": files})
    other = svc.add({"prompt": "other", "start_image": str(image), **TINY})
    group = svc.get(ids[0]).group_id
    assert svc.cancel_group(group) == 3
    assert [svc.store.status(i) for i in ids] == [JobStatus.CANCELLED] * 3
    assert svc.store.status(other) == JobStatus.PENDING
    assert svc.cancel_group(group) == 0 and svc.cancel_group("unknown") == 0


def test_cancel_group_stops_its_running_job(make_service, tmp_path):
    from queue_fake_engine import FakeEngine

    svc = make_service(FakeEngine(step_seconds=0.05), start=False)
    ids = svc.add_batch({"prompt": "slow", "total_seconds": 30, "steps": 5},
                        {"batch_inputs": _images(tmp_path / "in", "a.png", "b.png")})
    assert svc.start()
    wait_status(svc, ids[0], JobStatus.RUNNING)
    assert svc.cancel_group(svc.get(ids[0]).group_id) == 2
    wait_status(svc, ids[0], JobStatus.CANCELLED)
    assert svc.store.status(ids[1]) == JobStatus.CANCELLED


# ---- API and CLI --------------------------------------------------------------------------------------------------
def test_api_name_batch_and_group_cancel(api, tmp_path):
    svc, c = api
    inside = _images(svc.paths.root / "inputs", "x.png", "y.png")
    r = c.post("/api/jobs", json={"params": {"prompt": "named", "start_image": str(inside[0]), **TINY},
                                  "name": "API shot"})
    assert r.status_code == 201
    assert c.get(f"/api/jobs/{r.json()['id']}").json()["name"] == "API shot"
    r = c.post("/api/jobs", json={"params": {"prompt": "batch", **TINY}, "name": "b",
                                  "batch_folder": str(inside[0].parent)})
    assert r.status_code == 201
    body = r.json()
    assert len(body["ids"]) == 2 and body["group_id"]
    listed = {j["id"]: j for j in c.get("/api/jobs").json()["jobs"]}
    assert [listed[i]["name"] for i in body["ids"]] == ["b_x", "b_y"]
    assert {listed[i]["group_id"] for i in body["ids"]} == {body["group_id"]}
    assert c.post(f"/api/groups/{body['group_id']}/cancel").json() == {"ok": True, "cancelled": 2}
    # Files and folders outside the data directory are refused as single inputs are.
    outside = _images(tmp_path / "outside", "z.png")
    r = c.post("/api/jobs", json={"params": {"prompt": "x"}, "batch_folder": str(outside[0].parent)})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "batch_folder"
    r = c.post("/api/jobs", json={"params": {"prompt": "x"}, "batch_inputs": [str(inside[0]), str(outside[0])]})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["batch_inputs.1"]
    r = c.post("/api/jobs", json={"params": {"prompt": "x"}, "nickname": "y"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "nickname"
    assert len(svc.list()) == 3


def test_cli_name_batch_folder_and_cancel_group(capsys, data_dir, image, tmp_path):
    d = ["--data-dir", str(data_dir)]
    code, out, _ = run_cli(capsys, "queue", *d, "add", "--prompt", "one", "--image", str(image), "--name", "Solo")
    assert code == 0
    solo = out.strip()
    folder = tmp_path / "batch"
    _images(folder, "p.png", "q.png")
    (folder / "bad.png").write_bytes(b"junk")
    code, out, err = run_cli(capsys, "queue", *d, "add", "--prompt", "b", "--batch-folder", str(folder))
    assert code == 2 and "bad.png" in err and out == ""
    (folder / "bad.png").unlink()
    code, out, _ = run_cli(capsys, "queue", *d, "add", "--prompt", "b", "--name", "set", "--batch-folder", str(folder))
    assert code == 0
    first, *ids = out.split()[1:]
    group = first
    assert len(ids) == 2
    code, out, _ = run_cli(capsys, "queue", *d, "list", "--json")
    jobs = {j["id"]: j for j in json.loads(out)}
    assert jobs[solo]["name"] == "Solo" and [jobs[i]["name"] for i in ids] == ["set_p", "set_q"]
    code, out, _ = run_cli(capsys, "queue", *d, "list")
    assert "Solo: one" in out and group in out
    code, out, _ = run_cli(capsys, "queue", *d, "cancel-group", group)
    assert code == 0 and "cancelled 2 job(s)" in out
    code, out, _ = run_cli(capsys, "queue", *d, "list", "--json")
    assert {j["id"]: j["status"] for j in json.loads(out)} == {solo: "PENDING", ids[0]: "CANCELLED",
                                                              ids[1]: "CANCELLED"}
