"""The queue's listing order, and what Load Queue / Import Queue keep, skip and report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from studio.jobs.model import JobStatus


def _p(image: Path, prompt: str) -> dict:
    return {"prompt": prompt, "start_image": str(image), "total_seconds": 1, "steps": 2}


def _run(svc, job_id: str, status: JobStatus, error: str | None = None) -> None:
    """Lets the store's worker transitions take `job_id` (the first PENDING job) to `status`."""
    claimed = svc.store.claim_next()
    assert claimed is not None and claimed.id == job_id
    if status is not JobStatus.RUNNING:
        assert svc.store.finish(job_id, status, error=error)


def test_list_shows_running_then_pending_in_run_order_then_finished_newest_first(make_service, image):
    svc = make_service(start=False)
    old, new, running, p1, p2, p3 = (svc.add(_p(image, n)) for n in ("old", "new", "running", "p1", "p2", "p3"))
    _run(svc, old, JobStatus.COMPLETED)
    _run(svc, new, JobStatus.FAILED, "boom")
    _run(svc, running, JobStatus.RUNNING)
    assert svc.move_up(p3)  # run order p1, p3, p2
    listed = [j.id for j in svc.list()]
    assert listed == [running, p1, p3, p2, new, old]
    # A retried job runs last, and is listed so: the listing is the order the worker claims PENDING jobs in.
    assert svc.store.finish(running, JobStatus.CANCELLED, error="cancelled by user") and svc.retry(running)
    pending = [j.id for j in svc.list() if j.status is JobStatus.PENDING]
    assert pending == [p1, p3, p2, running]
    claimed = [svc.store.claim_next().id for _ in pending]
    assert claimed == pending
    # Finished jobs newest first: the last one to finish leads them.
    for job_id in claimed:
        svc.store.finish(job_id, JobStatus.COMPLETED)
    assert [j.id for j in svc.list()] == [*reversed(claimed), new, old]


def test_import_keeps_failed_and_cancelled_and_reports_skipped(make_service, image, tmp_path):
    svc = make_service(start=False)
    failed, cancelled, done, pending = (svc.add(_p(image, n)) for n in ("failed", "cancelled", "done", "pending"))
    _run(svc, failed, JobStatus.FAILED, "CUDA out of memory")
    assert svc.cancel(cancelled)
    _run(svc, done, JobStatus.COMPLETED)
    zpath = svc.export_zip(tmp_path / "q.zip")

    result = svc.import_file(zpath)
    new = {svc.get(i).params.prompt: svc.get(i) for i in result.added}
    assert set(new) == {"failed", "cancelled", "pending"}
    assert new["failed"].status is JobStatus.FAILED and new["failed"].error == "CUDA out of memory"
    assert new["cancelled"].status is JobStatus.CANCELLED and new["pending"].status is JobStatus.PENDING
    assert result.kept == {"FAILED": 1, "CANCELLED": 1}
    assert [(s.job, "completed" in s.reason) for s in result.skipped] == [(done, True)]
    assert f"Skipped 1: {done}: completed" in result.message and "1 kept FAILED" in result.message
    # A kept FAILED job waits for the user's Retry, with its inputs in its own folder.
    assert svc.store.claim_next().id == pending
    assert Path(new["failed"].params.start_image).is_file() and svc.retry(new["failed"].id)


def test_framepack_studio_failed_entry_stays_failed(make_service, image, paths, tmp_path):
    """A queue.json picked in the browser arrives alone in the upload folder; FramePack-Studio's relative image
    paths are found in the data directory, where its queue_images/ folder was copied."""
    svc = make_service(start=False)
    (paths.root / "queue_images").mkdir()
    shutil.copy(image, paths.root / "queue_images" / "f_input.png")
    fps_queue = {
        "f": {"status": "failed", "model_type": "Original", "prompt": "broke", "error": "Out of memory",
              "completed_at": 1234.5, "saved_input_image_path": "queue_images/f_input.png"},
        "c": {"status": "completed", "model_type": "F1", "prompt": "old"},
        "p": {"status": "pending", "model_type": "F1", "prompt": "next"},
    }
    picked = tmp_path / "upload" / "queue.json"
    picked.parent.mkdir()
    picked.write_text(json.dumps(fps_queue))
    result = svc.import_file(picked)
    jobs = {svc.get(i).params.prompt: svc.get(i) for i in result.added}
    assert jobs["broke"].status is JobStatus.FAILED and jobs["broke"].error == "Out of memory"
    assert jobs["broke"].completed_at == 1234.5 and jobs["next"].status is JobStatus.PENDING
    assert Path(jobs["broke"].params.start_image).read_bytes() == image.read_bytes()
    assert [s.job for s in result.skipped] == ["c"]
    assert "FramePack-Studio" in result.message and "Skipped 1: c: completed" in result.message


def test_exports_are_kept_outside_temp(paths):
    # Clear Temporary Files and the temp/ sweeps must never take a queue export the user saved.
    assert not paths.exports_dir.is_relative_to(paths.temp_dir)
    assert paths.exports_dir.parent == paths.root


def test_export_and_import_keep_job_names_and_groups(make_service, image, tmp_path):
    svc = make_service(start=False)
    named = svc.add(_p(image, "named"), name="Red ball, take 1")
    batch = svc.add_batch(_p(image, "batch"), {"batch_inputs": [str(image), str(image)], "name": "b"})
    group = svc.get(batch[0]).group_id
    assert group is not None

    result = svc.import_file(svc.export_zip(tmp_path / "q.zip"))
    imported = {svc.get(i).params.prompt + str(n): svc.get(i) for n, i in enumerate(result.added)}
    names = sorted((j.name, j.group_id) for j in imported.values())
    assert names == sorted([("Red ball, take 1", None), (svc.get(batch[0]).name, group),
                            (svc.get(batch[1]).name, group)])
    assert named not in result.added
