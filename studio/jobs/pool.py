"""Several workers over one queue: one per GPU (or N on the CPU), all claiming from the same SQLite store.

Each worker is a `Worker` thread with its own engine (its own ModelManager on its device, models resident between
jobs). The store's claim is one conditional UPDATE, so no two workers ever run one job, and a worker runs one job
at a time by construction. A job may ask for one worker by name (`gpu`: "gpu1", "cpu0", a Ray actor's name);
"" runs on any. Pausing, cancelling and unloading reach every worker.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modules.gpu_info import GpuInfo, gpu_memory, parse_gpu_selection, visible_gpus
from modules.models.host_ram import HostRam, host_ram

if TYPE_CHECKING:  # the worker imports the job model only; the engine it runs loads torch
    from studio.jobs.worker import Worker

log = logging.getLogger(__name__)

ANY_GPU = "any"
_GPU_NAME = re.compile(r"^(?:gpu|cuda:)?(\d{1,2})$")
_WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True)
class WorkerSlot:
    """One local worker: its name (what jobs and the Queue tab call it), device and what the header shows."""

    name: str  # "gpu0", "gpu2", "cpu0"
    device: str  # "cuda:0", "cpu"
    label: str  # "NVIDIA RTX 4090 (24 GB)", "CPU"
    gpu_index: int | None = None
    vram_gb: float | None = None  # the GPU's memory; None on the CPU


def job_gpu(value: str | int | None) -> str:
    """A job's `gpu` as stored: "" for any worker, else a worker name ("1", "cuda:1" and "gpu1" all mean gpu1).

    ValueError (a sentence) when it is no possible worker name."""
    text = str(value if value is not None else "").strip()
    if not text or text.lower() == ANY_GPU:
        return ""
    m = _GPU_NAME.match(text.lower())
    if m:
        return f"gpu{int(m.group(1))}"
    if not _WORKER_NAME.match(text):
        raise ValueError(f"{text!r} is no worker name: use 'any', a GPU number (0, 1, ...) or a worker's name "
                         "as the header shows it (gpu0, cpu0, ...)")
    return text


def plan_slots(gpus: str = "all", cpu_workers: int = 1, visible: list[GpuInfo] | None = None) -> list[WorkerSlot]:
    """The local workers to start: `gpus` is "all" (every visible GPU; the CPU when there is none), "none"
    (CPU only) or indices "0,2"; `cpu_workers` workers run on the CPU when no GPU is used (tests, tiny models;
    0: no local worker, when a Ray cluster runs the jobs).

    ValueError names the setting when it asks for a GPU that is not there."""
    try:
        spec = parse_gpu_selection(gpus)
    except ValueError as exc:
        raise ValueError(f"gpus: {exc}") from None
    visible = visible_gpus() if visible is None else visible
    if spec == "all":
        chosen = list(visible)
    elif spec == "none":
        chosen = []
    else:
        by_index = {g.index: g for g in visible}
        missing = [n for n in spec if n not in by_index]
        if missing:
            have = ", ".join(str(i) for i in by_index) or "none"
            raise ValueError(f"gpus: GPU {missing[0]} is not visible to this process (visible: {have})")
        chosen = [by_index[n] for n in spec]
    if chosen:
        return [WorkerSlot(f"gpu{g.index}", f"cuda:{g.index}", f"{g.name} ({g.total_bytes / 2**30:.0f} GB)", g.index,
                           g.total_bytes / 2**30) for g in chosen]
    return [WorkerSlot(f"cpu{i}", "cpu", "CPU") for i in range(max(0, cpu_workers))]


def slots_host_ram(slots: list[WorkerSlot], preserved_gb: float) -> HostRam:
    """The CPU memory these workers' weights need (real models), for the start-up log line and Settings."""
    return host_ram([s.vram_gb for s in slots], preserved_gb)


class PoolStopped(RuntimeError):
    """A worker offered to a pool that has stopped."""


@dataclass
class WorkerInfo:
    """What the header and the API show of one worker."""

    name: str
    label: str
    job_id: str | None
    vram: str  # "12.3/24.0 GB", or "" on the CPU / when unknown
    lost: bool = False


class WorkerPool:
    """The workers of one studio process; what the queue service calls instead of a single worker."""

    def __init__(self) -> None:
        self.members: list[Worker] = []
        self.labels: dict[str, str] = {}
        self.gpu_index: dict[str, int] = {}  # NVML's index (memory readings)
        self.gpu_device: dict[str, str] = {}  # torch's device ("cuda:0"; differs under CUDA_VISIBLE_DEVICES)
        self._before_job: list[Callable[[Worker], None]] = []
        self._stopped = threading.Event()  # set by stop(): the pool takes no more workers

    def add(self, worker: Worker, label: str = "", gpu_index: int | None = None, start: bool = True,
            device: str = "") -> None:
        """Adds a worker (a local one at start-up, a Ray actor's when the cluster connects or grows) and starts
        it. PoolStopped once the pool has stopped (the studio is closing)."""
        if self._stopped.is_set():
            raise PoolStopped(f"the workers have stopped: {worker.worker_name!r} not added")
        same = [w for w in self.members if w.worker_name == worker.worker_name]
        if same and not same[0].lost.is_set():
            raise ValueError(f"a worker named {worker.worker_name!r} already runs")
        if same:  # a lost worker's replacement (a new Ray actor) takes its name: jobs pinned to it run again
            self.members.remove(same[0])
        if self.paused:
            worker.pause()
        self.members.append(worker)
        self.labels[worker.worker_name] = label or worker.worker_name
        if gpu_index is not None:
            self.gpu_index[worker.worker_name] = gpu_index
            self.gpu_device[worker.worker_name] = device or f"cuda:{gpu_index}"
        worker.before_job.extend(self._before_job)
        if start:
            worker.start()

    def on_job_start(self, fn: Callable[[Worker], None]) -> None:
        """Calls fn(worker) before each job of every worker, present and future, while it holds its
        device_lease (the captioner frees that worker's GPU)."""
        self._before_job.append(fn)
        for w in self.members:
            w.before_job.append(fn)

    def gpu_workers(self) -> dict[str, Worker]:
        """The local workers that own a GPU, by torch device ("cuda:1")."""
        return {self.gpu_device[w.worker_name]: w for w in self.members if w.worker_name in self.gpu_device}

    @property
    def names(self) -> list[str]:
        return [w.worker_name for w in self.members]

    def wake(self) -> None:
        for w in self.members:
            w.wake()

    def pause(self) -> None:
        for w in self.members:
            w.pause()

    def resume(self) -> None:
        for w in self.members:
            w.resume()

    @property
    def paused(self) -> bool:
        return bool(self.members) and all(w.paused for w in self.members)

    def cancel(self, job_id: str) -> bool:
        """Sets the cancel token of whichever worker runs the job (it stops within one sampler step)."""
        return any([w.cancel(job_id) for w in self.members])

    @property
    def current_job_ids(self) -> list[str]:
        return [j for j in (w.current_job_id for w in self.members) if j]

    def run_if_idle(self, fn: Callable[[Worker], Any]) -> list[str]:
        """Calls fn(worker) for every worker that runs no job (none starts one meanwhile); returns the names of
        the busy ones it skipped."""
        return [w.worker_name for w in self.members if not w.run_if_idle(lambda w=w: fn(w))]

    def wait_stopped(self, timeout: float) -> bool:
        """Waits up to `timeout` s for stop(); True once the pool has stopped."""
        return self._stopped.wait(timeout)

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stopped.set()
        for w in self.members:  # every one cancelled first, then joined: shutdown takes one step, not N
            w.request_stop()
        for w in self.members:
            w.stop(timeout)
        self.members.clear()

    def is_alive(self) -> bool:
        return any(w.is_alive() for w in self.members)

    def info(self) -> list[WorkerInfo]:
        out = []
        for w in self.members:
            vram = ""
            index = self.gpu_index.get(w.worker_name)
            if index is not None:
                mem = gpu_memory(index)
                if mem is not None and mem.total_bytes:
                    vram = f"{mem.used_bytes / 2**30:.1f}/{mem.total_bytes / 2**30:.1f} GB"
            elif hasattr(w.engine_provider, "info") and not w.lost.is_set():  # a Ray actor's worker: ask it
                try:
                    a = w.engine_provider.info()
                    if a.vram_total_mb:
                        vram = f"{a.vram_used_mb / 1024:.1f}/{a.vram_total_mb / 1024:.1f} GB"
                except Exception as exc:  # unreachable or lost: no number this time
                    log.debug("worker %s: no memory reading (%s)", w.worker_name, exc)
            out.append(WorkerInfo(name=w.worker_name, label=self.labels.get(w.worker_name, w.worker_name),
                                  job_id=w.current_job_id, vram=vram, lost=w.lost.is_set()))
        return out
