"""kill -9 during an import or a video write, then a restart: all or nothing, and no debris left behind.

The kills are real: a child process runs the import (or the worker) with one function replaced, in that child
only, by one that sends the child SIGKILL at a chosen point. The start-up sweep must also leave alone what a
row refers to and what a live process is still writing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from queue_fake_engine import FakeEngine
from queue_helpers import wait_status

from modules.framepack.events import StageEvent
from modules.media.video_io import is_partial_name, probe_video
from studio.jobs.model import JobStatus
from tests.hang import HANG_S

pytestmark = pytest.mark.skipif(os.name == "nt", reason="kill -9 and POSIX locks")

ROOT = Path(__file__).resolve().parents[2]
N_JOBS = 40

_KILL_AT = r'''
import os, signal

def kill_at(module, name, after_calls):
    """Replaces module.name so that its call number after_calls + 1 kills this process."""
    real, calls = getattr(module, name), [0]
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after_calls:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(module, name, wrapper)
'''

_IMPORT_CHILD = _KILL_AT + r'''
import sys
from pathlib import Path
from studio.jobs import files
from studio.jobs.service import QueueService
from studio.paths import DataPaths
from studio.settings import Settings

data_dir, archive, point, after = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if point == "staging":  # some job folders built, no row inserted yet
    kill_at(files, "stage_inputs", after)
elif point == "publish":  # inside the INSERT transaction, some folders moved into jobs/
    from studio.jobs import staging
    kill_at(staging, "move_into_place", after)
elif point == "committed":  # rows committed, the staging folder not yet removed
    kill_at(files, "remove_tree", after)
QueueService(DataPaths(data_dir), settings_provider=Settings).import_file(archive)
sys.exit(3)  # not reached
'''

_WRITE_CHILD = _KILL_AT + r'''
import sys, time
from pathlib import Path
import modules.media.video_io as video_io
from queue_fake_engine import FakeEngine
from studio.jobs.service import QueueService
from studio.paths import DataPaths
from studio.settings import Settings

data_dir, image = Path(sys.argv[1]), sys.argv[2]
real_encode = video_io.encode_frames

def encode_then_die(path, frames, *args, **kwargs):
    Path(path).write_bytes(b"\0" * 4096)  # the first part of the final MP4 is on disk
    os.kill(os.getpid(), signal.SIGKILL)

video_io.encode_frames = encode_then_die
engine = FakeEngine()
svc = QueueService(DataPaths(data_dir), settings_provider=Settings, engine_provider=lambda _s: engine,
                   poll_interval=0.05, progress_interval=0.0)
job = svc.add({"prompt": "killed while writing", "start_image": image, "total_seconds": 2, "steps": 2})
svc.start()
while not svc.store.status(job).finished:  # the worker's write kills the process before the job ends
    time.sleep(0.05)
sys.exit(3)
'''

_HOLD_CHILD = r'''
import sys
from pathlib import Path
from modules.media.video_io import atomic_output
from studio.jobs.staging import Staging
from studio.paths import DataPaths

paths = DataPaths(Path(sys.argv[1]))
with Staging(paths) as st, atomic_output(paths.root / "outputs" / "live.mp4") as tmp:
    (st.job_dir("0000000000aa") / "inputs.png").write_bytes(b"being staged")
    tmp.write_bytes(b"half")
    print(st.root, tmp, flush=True)
    sys.stdin.read()  # hold both until the test closes our stdin
    tmp.write_bytes(b"whole")
'''


def _child(code: str, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env, **kw)


def _run_until_killed(code: str, *args: str) -> None:
    proc = _child(code, *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("hung: the child was never killed\n" + out.decode(errors="replace")[-3000:])
    assert proc.returncode == -signal.SIGKILL, out.decode(errors="replace")[-3000:]


class HoldEngine:
    """Runs no job to its end: each waits for its cancel (the service's shutdown), so nothing is written."""

    def generate(self, params, out, cancel):
        yield StageEvent("holding")
        while not cancel.cancelled:
            time.sleep(0.01)
        cancel.raise_if_cancelled()


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_partial_name(p.name)]


def _archive(tmp_path: Path, image: Path, n: int) -> Path:
    doc = {"format": "fp-studio-queue", "version": 1, "jobs": [
        {"params": {"prompt": f"job {i}", "start_image": "files/start.png", "total_seconds": 1, "steps": 1}}
        for i in range(n)]}
    path = tmp_path / "queue.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("jobs.json", json.dumps(doc))
        zf.write(image, "files/start.png")
    return path


@pytest.mark.parametrize("point,after,imported", [("staging", N_JOBS // 3, 0), ("publish", N_JOBS // 2, 0),
                                                  ("committed", 0, N_JOBS)])
def test_kill9_during_import_is_all_or_nothing_after_restart(make_service, paths, image, tmp_path, point, after,
                                                             imported):
    _run_until_killed(_IMPORT_CHILD, paths.root, _archive(tmp_path, image, N_JOBS), point, after)
    assert list(paths.jobs_dir.iterdir())  # the killed import did leave something behind

    svc = make_service(HoldEngine())  # start-up sweeps
    jobs = svc.store.list_full()
    assert len(jobs) == imported
    assert sorted(p.name for p in paths.jobs_dir.iterdir()) == sorted(j.id for j in jobs)  # no orphans
    assert not _partials(paths.root)
    for job in jobs:
        assert Path(job.params.start_image).read_bytes() == image.read_bytes()
        assert Path(job.params.start_image).parent == paths.kept_inputs_dir and Path(job.thumbnail).is_file()
    assert sorted(j.params.prompt for j in jobs) == sorted(f"job {i}" for i in range(imported))


def test_kill9_during_the_final_video_write_leaves_no_part_file(make_service, paths, image):
    _run_until_killed(_WRITE_CHILD, paths.root, image)
    outputs = paths.root / "outputs"
    assert [p.name.endswith(".part.mp4") for p in outputs.iterdir()] == [True]  # the debris the kill left

    svc = make_service(FakeEngine())  # start-up sweeps
    assert list(outputs.iterdir()) == []
    [job] = svc.store.list_full()
    assert job.status == JobStatus.INTERRUPTED
    assert svc.retry(job.id)
    wait_status(svc, job.id, JobStatus.COMPLETED)
    done = svc.get(job.id)
    assert probe_video(Path(done.output_video)).frames == done.result_info["frames"]
    assert [p.name for p in outputs.iterdir()] == [Path(done.output_video).name]
    assert not _partials(paths.root)


def test_startup_sweep_spares_rows_and_live_writers(make_service, paths, image):
    svc = make_service(start=False)
    kept = svc.add({"prompt": "kept", "start_image": str(image)})
    svc.cancel(kept)  # nothing runs: the worker writes nothing while the test looks
    # A row whose folder is not named after its id (a data directory moved, an older layout).
    moved_dir = paths.jobs_dir / "folder-by-path"
    (moved_dir / "inputs").mkdir(parents=True)
    svc.store.insert("b" * 12, "Original", "moved", svc.get(kept).params.model_dump_json(), str(moved_dir),
                     status=JobStatus.CANCELLED)
    orphan = paths.jobs_dir / "0123456789ab"
    (orphan / "inputs").mkdir(parents=True)
    old_staging = paths.jobs_dir / ".import-k1lled"
    (old_staging / "0123456789cd").mkdir(parents=True)
    outputs = paths.root / "outputs"
    work = paths.jobs_dir / kept / "work"
    work.mkdir()
    abandoned = [outputs / ".video.0123abcd.part.mp4", work / ".seg_0001.89abcdef.part.mp4",
                 paths.jobs_dir / kept / "inputs" / ".start_image.png.fedcba98.part"]
    unrelated = [outputs / ".keep", outputs / "notes.part.txt", outputs / "video.mp4", work / "ckpt.json"]
    for p in abandoned + unrelated:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    svc.close()

    holder = _child(_HOLD_CHILD, paths.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        live_staging, live_part = (Path(p) for p in holder.stdout.readline().decode().split())
        svc = make_service(HoldEngine())  # start-up sweeps while another process stages and writes
        assert not orphan.exists() and not any(p.exists() for p in abandoned)
        assert all(p.exists() for p in unrelated) and (paths.jobs_dir / kept).is_dir() and moved_dir.is_dir()
        assert live_part.read_bytes() == b"half" and (live_staging / "0000000000aa" / "inputs.png").is_file()
        assert old_staging.is_dir()  # staging folders wait until no process is staging
        svc.close()
    finally:
        holder.communicate(b"", timeout=HANG_S)
    assert holder.returncode == 0 and (outputs / "live.mp4").read_bytes() == b"whole"
    assert not live_staging.exists()

    make_service(HoldEngine())  # nobody stages now
    assert not old_staging.exists()
    assert sorted(p.name for p in paths.jobs_dir.iterdir()) == sorted([kept, moved_dir.name])
    assert not _partials(paths.root)
