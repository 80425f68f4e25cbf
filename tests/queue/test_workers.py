"""Several workers over one queue (studio/jobs/pool.py): one per GPU, or N on the CPU with the tiny models."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from queue_helpers import wait_for, wait_status

from modules.gpu_info import GpuInfo, _visible
from modules.models.host_ram import SHARED_GB, TRANSFORMER_GB, host_ram
from modules.models.registry import ModelSet
from studio.jobs.model import JobStatus, JobValidationError
from studio.jobs.pool import WorkerSlot, job_gpu, plan_slots
from studio.jobs.service import QueueService
from studio.paths import DataPaths
from studio.settings import Settings
from studio.ui.app import workers_html

TINY = {"width": 64, "height": 64, "total_seconds": 1, "latent_window_size": 3, "steps": 2, "cache_type": "None"}
TWO_CPU = [WorkerSlot("cpu0", "cpu", "CPU"), WorkerSlot("cpu1", "cpu", "CPU")]


def _jobs(image: Path) -> list[dict]:
    """Six jobs over both transformers, so workers also swap models between jobs."""
    return [{"prompt": f"a ball {i}", "start_image": str(image), "seed": 10 + i,
             "generation_type": "F1" if i % 3 == 2 else "Original", **TINY} for i in range(6)]


def _service(data_dir: Path, slots: list[WorkerSlot]) -> QueueService:
    settings = Settings(models=ModelSet.TINY, save_metadata=True, lora_dir=str(data_dir / "loras"))
    return QueueService(DataPaths(data_dir), settings_provider=lambda: settings, slots=slots,
                        poll_interval=0.05, progress_interval=0.0)


def _run_all(svc: QueueService, jobs: list[dict]) -> list:
    ids = [svc.add(j, name=f"job{i}") for i, j in enumerate(jobs)]
    for job_id in ids:
        wait_status(svc, job_id, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    return [svc.get(i) for i in ids]


@pytest.mark.slow
def test_two_workers_run_six_jobs_with_the_bytes_of_one_worker(tmp_path, image):
    # One data directory for both runs: the sidecar names the kept input files by their path in it.
    one = _service(tmp_path / "data", TWO_CPU[:1])
    try:
        assert one.start()
        alone = _run_all(one, _jobs(image))
    finally:
        one.close()
    two = _service(tmp_path / "data", TWO_CPU)
    try:
        assert two.start()
        assert two.workers.names == ["cpu0", "cpu1"]
        together = _run_all(two, _jobs(image))
    finally:
        two.close()
    assert [j.status for j in alone + together] == [JobStatus.COMPLETED] * 12, [j.error for j in alone + together]
    assert {j.worker for j in alone} == {"cpu0"}
    assert {j.worker for j in together} <= {"cpu0", "cpu1"}
    for worker in ("cpu0", "cpu1"):  # one job at a time per worker: its jobs' run times never overlap
        spans = sorted((j.started_at, j.completed_at) for j in together if j.worker == worker)
        assert all(end <= nxt_start for (_, end), (nxt_start, _) in zip(spans, spans[1:])), spans
    for a, b in zip(alone, together, strict=True):
        assert Path(a.output_video).read_bytes() == Path(b.output_video).read_bytes(), (a.title, b.worker)
        assert Path(a.output_video).with_suffix(".json").read_bytes() == \
            Path(b.output_video).with_suffix(".json").read_bytes()


@pytest.mark.slow
def test_pinned_jobs_run_side_by_side_and_cancel_and_pause_reach_every_worker(tmp_path, image):
    svc = _service(tmp_path / "data", TWO_CPU)
    try:
        assert svc.start()
        long = {**TINY, "steps": 25, "total_seconds": 2}
        a = svc.add({"prompt": "on cpu0", "start_image": str(image), **long}, gpu="cpu0")
        b = svc.add({"prompt": "on cpu1", "start_image": str(image), **long}, gpu="cpu1")
        # Each worker may only take its own job, so both run at once: two jobs RUNNING, one per worker.
        wait_for(lambda: {j.id for j in svc.running()} == {a, b}, lambda: str(svc.list()))
        assert sorted(svc.workers.current_job_ids) == sorted([a, b])
        assert {w.name: w.job_id for w in svc.workers.info()} == {"cpu0": a, "cpu1": b}
        header = workers_html(SimpleNamespace(queue=svc))  # the header: a chip per worker with its job
        assert f"id='hdr-worker-cpu0' title='CPU'>cpu0 · CPU · job {a}</span>" in header
        assert f"id='hdr-worker-cpu1' title='CPU'>cpu1 · CPU · job {b}</span>" in header
        wait_for(lambda: (p := svc.get(b).progress) is not None and p.step is not None)
        svc.pause()  # pausing reaches every worker: the running jobs go on, no new one starts
        c = svc.add({"prompt": "waits for resume", "start_image": str(image), **TINY})
        assert svc.cancel(b)  # the job on the second worker stops within a step
        wait_status(svc, b, JobStatus.CANCELLED)
        assert svc.cancel(a)
        wait_status(svc, a, JobStatus.CANCELLED)
        assert svc.store.status(c) == JobStatus.PENDING and svc.paused
        assert [svc.get(a).worker, svc.get(b).worker] == ["cpu0", "cpu1"]
        assert svc.get(a).output_video is None and svc.get(b).output_video is None  # stopped, not finished
        svc.resume()
        wait_status(svc, c, JobStatus.COMPLETED)
        with pytest.raises(JobValidationError, match="gpu: no worker named gpu3 runs here; workers: any, cpu0, cpu1"):
            svc.add({"prompt": "nowhere", "start_image": str(image), **TINY}, gpu="3")
    finally:
        svc.close()


def test_job_gpu_names():
    assert [job_gpu(v) for v in ("", "any", "ANY", None, 1, "1", "cuda:1", "gpu1", "cpu0", "ray:10.0.0.2:gpu0")] == \
        ["", "", "", "", "gpu1", "gpu1", "gpu1", "gpu1", "cpu0", "ray:10.0.0.2:gpu0"]
    with pytest.raises(ValueError, match="is no worker name"):
        job_gpu("gpu 1; drop")


def test_slots_from_the_gpus_setting():
    gpus = [GpuInfo(i, "RTX 4090", f"GPU-{i}", 24 * 2**30) for i in range(4)]
    assert [s.name for s in plan_slots("all", 1, gpus)] == ["gpu0", "gpu1", "gpu2", "gpu3"]
    two = plan_slots("0,2", 1, gpus)
    assert [(s.name, s.device, s.label, s.vram_gb) for s in two] == [
        ("gpu0", "cuda:0", "RTX 4090 (24 GB)", 24.0), ("gpu2", "cuda:2", "RTX 4090 (24 GB)", 24.0)]
    assert [s.name for s in plan_slots("none", 3, gpus)] == ["cpu0", "cpu1", "cpu2"]
    assert [s.device for s in plan_slots("all", 2, [])] == ["cpu", "cpu"]  # no GPU: the CPU workers
    with pytest.raises(ValueError, match=r"gpus: GPU 5 is not visible to this process \(visible: 0, 1, 2, 3\)"):
        plan_slots("0,5", 1, gpus)
    with pytest.raises(ValueError, match="gpus: 'x' is not a GPU number: use all, none or GPU numbers like 0,2"):
        plan_slots("x", 1, gpus)


def test_cuda_visible_devices_maps_to_cuda_numbering():
    handles = [(None, "A", "GPU-aaaa"), (None, "B", "GPU-bbbb"), (None, "C", "GPU-cccc")]
    assert _visible(handles, None) == [0, 1, 2]
    assert _visible(handles, "2,0") == [2, 0]  # cuda:0 is the third device
    assert _visible(handles, "GPU-bbbb") == [1] and _visible(handles, "cccc,0") == [2, 0]
    assert _visible(handles, "1,7,0") == [1]  # CUDA stops at the first invalid entry
    assert _visible(handles, "") == []


def test_host_ram_per_worker_follows_the_memory_policy():
    ram = host_ram([None, 139.0, 24.0, 24.0], preserved_gb=6.0)
    cpu, h200, rtx, _ = ram.per_worker_gb
    assert cpu == round(TRANSFORMER_GB + SHARED_GB, 1)  # a CPU worker holds every weight
    assert h200 == 0.0  # everything fits on the GPU
    # 24 GB, 6 preserved: the transformer streams what does not fit in 18 - 1.5 GB and the encoders wait in RAM,
    # one copy for both 24 GB workers (HOST_BLOCKS, HOST_COPIES)
    assert rtx == 0.0 and ram.shared_gb == round(TRANSFORMER_GB - 16.5 + SHARED_GB, 1)
    assert ram.total_gb == pytest.approx(cpu + ram.shared_gb)
    assert "4 worker(s)" in ram.describe() and "that the GPU workers share" in ram.describe()
    assert host_ram([12.0, 24.0], 6.0).shared_gb == round(TRANSFORMER_GB - 4.5 + SHARED_GB, 1)  # the most of each


def test_api_add_asks_for_a_worker(api, data_image):
    svc, c = api  # no worker runs in this process (as for the CLI): any well-formed name is kept
    params = {"prompt": "pinned", "start_image": str(data_image), "width": 64, "height": 64}
    r = c.post("/api/jobs", json={"params": params, "gpu": "1"})
    assert r.status_code == 201 and svc.get(r.json()["id"]).gpu == "gpu1"
    r = c.post("/api/jobs", json={"params": params, "gpu": "any"})
    assert r.status_code == 201 and svc.get(r.json()["id"]).gpu == ""
    r = c.post("/api/jobs", json={"params": params, "gpu": "no such; worker"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "gpu"
    assert "is no worker name" in r.json()["errors"][0]["message"]
    assert c.get("/api/queue").json()["workers"] == []


def test_gpus_setting_and_flag_refuse_what_is_not_there(tmp_path):
    from studio.ui.server import create_studio

    assert Settings(gpus=" 0, 2").gpus == "0,2" and Settings(gpus="ALL").gpus == "all"
    with pytest.raises(ValueError, match="'0;1' is not a GPU number: use all, none or GPU numbers like 0,2"):
        Settings(gpus="0;1")
    # app.py --gpus: a GPU the process cannot see is one sentence naming the setting (app.py prints it, exits 2)
    with pytest.raises(ValueError, match="gpus: GPU 57 is not visible to this process"):
        create_studio(tmp_path / "data", "tiny", gpus="57")
    with pytest.raises(ValueError, match="workers: Input should be greater than or equal to 0"):
        create_studio(tmp_path / "data", "tiny", workers=-1)
    assert plan_slots("none", 0, []) == []  # only a Ray cluster runs jobs (app.py --cluster)
