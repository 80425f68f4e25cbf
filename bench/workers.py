"""Jobs per hour with 1 and 2 local workers over one queue (studio/jobs/pool.py), tiny models on the CPU.

    .venv/bin/python bench/workers.py [--jobs 6] [--rounds 2] [--steps 4] [--ray]

Each round runs the same jobs through a one-worker and a two-worker studio, side by side (interleaved, a fresh
data directory each), after one warm-up job per worker, so model loading is not counted: what is measured is
the queue's steady state. It prints every round, the medians, the ratio 2 workers / 1 worker, and the load
average. On a CPU both workers share the same cores, so the ratio says what the pool's overhead and the cores'
contention cost; on a machine with GPUs each worker has its own device.

--ray also measures what a Ray-run job adds over a local one (dispatch, event streaming, shipping inputs,
checkpoints and outputs): one worker over a local Ray cluster's actor against one local worker, interleaved,
seconds per job and the difference (requirements-cluster.txt).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modules.models.registry import ModelSet  # noqa: E402
from studio.jobs.model import JobStatus  # noqa: E402
from studio.jobs.pool import WorkerSlot  # noqa: E402
from studio.jobs.service import QueueService  # noqa: E402
from studio.paths import DataPaths  # noqa: E402
from studio.settings import Settings  # noqa: E402

log = logging.getLogger("bench.workers")
POLL_S = 0.05


def _wait(svc: QueueService, ids: list[str]) -> None:
    while True:
        statuses = [svc.store.status(i) for i in ids]
        if all(s is not None and s.finished for s in statuses):
            bad = [svc.get(i).error for i, s in zip(ids, statuses) if s is not JobStatus.COMPLETED]
            if bad:
                raise RuntimeError(f"jobs failed: {bad}")
            return
        time.sleep(POLL_S)


def run(workers: int, jobs: int, steps: int, image: Path) -> float:
    """Seconds for `jobs` jobs on a warm studio with `workers` CPU workers."""
    with tempfile.TemporaryDirectory(prefix="fp-bench-workers-") as tmp:
        slots = [WorkerSlot(f"cpu{i}", "cpu", "CPU") for i in range(workers)]
        svc = _studio(tmp, slots)
        job = _job(image, steps)
        try:
            svc.start()
            _wait(svc, [svc.add({**job, "seed": 1}, gpu=s.name) for s in slots])  # warm: models loaded
            start = time.perf_counter()
            _wait(svc, [svc.add({**job, "seed": 100 + i}) for i in range(jobs)])
            return time.perf_counter() - start
        finally:
            svc.close()


def _studio(tmp: str, slots: list[WorkerSlot]) -> QueueService:
    settings = Settings(models=ModelSet.TINY, lora_dir=str(Path(tmp) / "loras"))
    return QueueService(DataPaths(Path(tmp)), settings_provider=lambda: settings, slots=slots,
                        poll_interval=POLL_S, progress_interval=0.25)


def _job(image: Path, steps: int) -> dict:
    return {"prompt": "a ball", "start_image": str(image), "width": 64, "height": 64, "total_seconds": 1,
            "latent_window_size": 3, "steps": steps, "cache_type": "None"}


def ray_overhead(jobs: int, steps: int, rounds: int, image: Path) -> None:
    """Seconds per job: one local worker against one worker whose engine is a local Ray cluster's actor."""
    import ray

    from studio.cluster.growth import join_service

    ray.init(num_cpus=2, resources={"fp_worker": 1}, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    job = _job(image, steps)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        local, remote = _studio(a, [WorkerSlot("cpu0", "cpu", "CPU")]), _studio(b, [])
        try:
            local.start()
            remote.start()
            if not join_service(remote, None, resource="fp_worker", poll_interval=POLL_S):
                raise RuntimeError("the Ray actor did not start")
            for svc in (local, remote):  # warm: models loaded on both sides
                _wait(svc, [svc.add({**job, "seed": 1})])
            per_job: dict[str, list[float]] = {"local": [], "ray": []}
            print(f"{'round':>5} {'where':>6} {'s/job':>7} {'load':>5}")
            for r in range(rounds):
                for where, svc in (("local", local), ("ray", remote)):
                    start = time.perf_counter()
                    _wait(svc, [svc.add({**job, "seed": 100 + i}) for i in range(jobs)])
                    per_job[where].append((time.perf_counter() - start) / jobs)
                    print(f"{r + 1:>5} {where:>6} {per_job[where][-1]:>7.2f} {os.getloadavg()[0]:>5.1f}")
            lm, rm = statistics.median(per_job["local"]), statistics.median(per_job["ray"])
            print(f"median s/job: local {lm:.2f}, Ray {rm:.2f}; a Ray-run job adds {rm - lm:+.2f} s "
                  f"(ratio {rm / lm:.2f})")
        finally:
            local.close()
            remote.close()
            ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--ray", action="store_true", help="also measure a Ray-run job's overhead")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "start.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
        times: dict[int, list[float]] = {1: [], 2: []}
        print(f"{args.jobs} tiny jobs (64x64, 1 s, {args.steps} steps) per run; cpu cores: {os.cpu_count()}")
        print(f"{'round':>5} {'workers':>7} {'seconds':>8} {'jobs/hour':>9} {'load':>5}")
        for r in range(args.rounds):
            for w in (1, 2):
                s = run(w, args.jobs, args.steps, image)
                times[w].append(s)
                print(f"{r + 1:>5} {w:>7} {s:>8.1f} {3600 * args.jobs / s:>9.0f} {os.getloadavg()[0]:>5.1f}")
        m1, m2 = statistics.median(times[1]), statistics.median(times[2])
        print(f"median: 1 worker {m1:.1f} s ({3600 * args.jobs / m1:.0f} jobs/h), 2 workers {m2:.1f} s "
              f"({3600 * args.jobs / m2:.0f} jobs/h); throughput ratio 2/1 = {m1 / m2:.2f}")
        if args.ray:
            ray_overhead(args.jobs, args.steps, args.rounds, image)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
