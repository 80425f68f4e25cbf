"""The one GPU worker thread: claim the next PENDING job -> run the engine -> record progress -> finish.

It keeps one engine (and so one ModelManager with its loaded models) across jobs, and survives every job
failure: whatever a job raises ends up in that job's row as FAILED, and the loop goes on.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sqlite3
import threading
import time
import traceback as tb
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modules.cancel import CancelledError, CancelToken
from modules.framepack.events import DoneEvent, SectionEvent, StageEvent, StepEvent
from modules.framepack.params import GenerationParams
from studio.jobs.model import INTERRUPTED_MESSAGE, Job, JobStatus, Progress
from studio.jobs.storage import is_storage_full
from studio.jobs.store import JobStore
from studio.paths import DataPaths
from studio.jobs.watch import PreviewWatch
from studio.run_config import output_options, runtime_config
from studio.settings import Settings

if TYPE_CHECKING:  # outputs.py loads torch, which only a job needs
    from modules.framepack.outputs import OutputOptions

log = logging.getLogger(__name__)

JOB_STORAGE_FULL_MESSAGE = "no space left on device: the data directory is full; free some space, then retry the job"


class WorkerLost(RuntimeError):
    """Raised by an engine whose job ran elsewhere (a Ray actor) when that machine or process went away: the job
    was not at fault, so it becomes INTERRUPTED and goes back to PENDING for another worker, which resumes it from
    its last finished section; this worker takes no more jobs."""


WORKER_LOST_MESSAGE = "interrupted: the worker running this job went away ({reason}); queued again to resume"


class EngineLike(Protocol):
    def generate(self, params: GenerationParams, out: OutputOptions, cancel: CancelToken): ...


# Returns the engine for a job given the current settings; called once per job, so it must cache.
EngineProvider = Callable[[Settings], EngineLike]


class DefaultEngineProvider:
    """The real engine over one long-lived ModelManager (rebuilt only when the model set or cache moves)."""

    def __init__(self, device: str = "auto") -> None:
        self.device = device
        self._key: tuple | None = None
        self._engine: Any = None
        self.manager: Any = None

    def __call__(self, settings: Settings) -> EngineLike:
        """settings: with absolute folders (the worker passes DataPaths.resolved_settings)."""
        from modules.framepack.engine import Engine
        from modules.models.manager import ModelManager

        config = runtime_config(settings, None, device=self.device)
        key = (config.model_set, config.hf_home, config.lora_dir, self.device)
        if self._engine is None or key != self._key:
            if self.manager is not None:
                self.manager.unload()
            self.manager = ModelManager(config)
            self._engine = Engine(self.manager)
            self._key = key
        else:  # these settings apply from the next job on, without a reload
            self.manager.config.preserved_memory_gb = config.preserved_memory_gb
            self.manager.config.deterministic = config.deterministic
        if self.manager.device.type == "cuda":
            import torch

            # The worker thread's current CUDA device is its own GPU: kernels, streams and allocator calls that
            # name no device then land there, not on cuda:0 (the current device is per host thread).
            torch.cuda.set_device(self.manager.device)
        return self._engine

    def unload(self) -> None:
        if self.manager is not None:
            self.manager.unload()


def is_out_of_memory(exc: BaseException) -> bool:
    import torch  # here, not at the top: a serving process that never generates does not load torch

    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError)
                                                       and "CUDA out of memory" in str(exc))


def oom_message(params: GenerationParams, settings: Settings) -> str:
    return (f"Out of GPU memory ({params.width}x{params.height}, {params.total_seconds:g} s, latent window "
            f"{params.latent_window_size}). Raise 'GPU Inference Preserved Memory' in Settings (now "
            f"{settings.gpu_memory_preservation:g} GB) so more of the model streams from CPU memory, or lower the "
            f"resolution, then retry the job.")


def free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.ipc_collect()
    except Exception as exc:  # freeing is best effort; the next job may still fit
        log.warning("could not free GPU memory: %s", exc)


class ProgressRecorder:
    """Turns engine events into the job row's progress (throttled) and a preview PNG in the job folder.

    Each write also reads the row's cancel request, so a cancel from another process (the CLI) stops the job
    within one step, too."""

    def __init__(self, store: JobStore, job: Job, token: CancelToken, min_interval: float = 0.25) -> None:
        self.store, self.job, self.token = store, job, token
        self.min_interval = min_interval
        self.progress = Progress(stage="Starting")
        self.first_section: int | None = None  # of this attempt: > 0 when the engine resumed from a checkpoint
        self._last_write = 0.0
        self._last_preview = 0.0
        self._preview_path = Path(job.job_dir) / "preview.png"

    def record(self, ev: Any) -> None:
        p = self.progress
        force = False
        if isinstance(ev, StageEvent):
            p.stage, force = ev.message, True
        elif isinstance(ev, StepEvent):
            p.stage = "Sampling"
            if self.first_section is None:
                self.first_section = ev.section
            p.section, p.total_sections = ev.section, ev.total_sections
            p.step, p.total_steps, p.eta_seconds = ev.step, ev.total_steps, ev.eta_seconds
            last_step = ev.step >= ev.total_steps
            now = time.monotonic()
            if ev.preview is not None and (last_step or now - self._last_preview >= max(self.min_interval, 0.5)
                                           or self.min_interval == 0):
                self._write_preview(ev.preview)
                self._last_preview = now
            force = last_step
        elif isinstance(ev, SectionEvent):
            p.section, p.total_sections, p.frames_so_far = ev.section, ev.total_sections, ev.frames_so_far
            if ev.preview_video is not None:
                p.preview_video = str(ev.preview_video)
            force = True
        else:
            return
        now = time.monotonic()
        if force or now - self._last_write >= self.min_interval:
            p.updated_at = time.time()
            if self.store.update_progress(self.job.id, p):
                self.token.cancel()
            self._last_write = now

    def _write_preview(self, preview: Any) -> None:
        try:
            from PIL import Image

            from modules.media.video_io import atomic_output

            with atomic_output(self._preview_path) as tmp:
                Image.fromarray(preview).save(tmp, format="PNG")
            self.progress.preview_image = str(self._preview_path)
        except Exception as exc:  # a preview is cosmetic
            log.debug("preview not written: %s", exc)


@contextlib.contextmanager
def _downloads_reported(engine: Any, recorder: ProgressRecorder, min_interval: float = 1.0):
    """While the job runs, weight downloads (first run with real models) show as the job's stage text.

    Download bars update from hf_hub's threads; lines are throttled and serialised before they reach the row."""
    manager = getattr(engine, "manager", None)
    if manager is None or not hasattr(manager, "download_listener"):
        yield
        return
    lock = threading.Lock()
    last = [0.0]

    def listen(line: str) -> None:
        now = time.monotonic()
        with lock:
            if now - last[0] < min_interval and not line.startswith("Checking"):
                return
            last[0] = now
            log.info("%s", line)
            recorder.record(StageEvent(line))

    manager.download_listener = listen
    try:
        yield
    finally:
        manager.download_listener = None


class Worker(threading.Thread):
    """Runs one job at a time; `wake()` after an add, `pause()`/`resume()`, `cancel(job_id)`, `stop()`."""

    def __init__(self, store: JobStore, paths: DataPaths, settings_provider: Callable[[], Settings],
                 engine_provider: EngineProvider | None = None, poll_interval: float = 1.0,
                 progress_interval: float = 0.25, preview_watch: PreviewWatch | None = None, *,
                 worker_name: str = "") -> None:
        super().__init__(name=f"fp-studio-worker-{worker_name}" if worker_name else "fp-studio-worker", daemon=True)
        self.store, self.paths = store, paths
        self.worker_name = worker_name  # recorded in each row it claims; a job whose `gpu` names it runs only here
        self.lost = threading.Event()  # set when its engine reported WorkerLost: it claims nothing more
        self.preview_watch = preview_watch or PreviewWatch()  # nobody watches unless the service says so
        self.settings_provider = settings_provider
        self.engine_provider = engine_provider or DefaultEngineProvider()
        self.poll_interval = poll_interval  # also picks up jobs another process (the CLI) added
        self.progress_interval = progress_interval
        self._wake = threading.Event()
        self._stop_ev = threading.Event()
        self._paused = threading.Event()
        self._claim_lock = threading.Lock()  # a claim and pause() never overlap
        self.looks = 0  # times it has looked at the queue (tests wait for a look instead of sleeping)
        self._lock = threading.Lock()
        self._current: tuple[str, CancelToken] | None = None
        self.idle = threading.Event()  # set while no job runs (tests and shutdown wait on it)
        self.idle.set()
        # Held while a job runs. A prompt helper (studio/captioning) borrows this worker's GPU only when it gets
        # the lease, so a job waits for a caption that already runs there, never the other way round.
        self.device_lease = threading.Lock()
        self.before_job: list[Callable[[Worker], None]] = []  # called holding the lease (the captioner leaves)

    # ---- control --------------------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def pause(self) -> None:
        """Starts no new job; the running one finishes (cancel it to stop it now). Once this returns, no claim
        is under way: a job added afterwards waits for resume()."""
        with self._claim_lock:
            self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def current_job_id(self) -> str | None:
        with self._lock:
            return self._current[0] if self._current else None

    def cancel(self, job_id: str) -> bool:
        """Sets the running job's cancel token (the engine stops within one sampler step)."""
        with self._lock:
            if self._current and self._current[0] == job_id:
                self._current[1].cancel()
                return True
        return False

    def run_if_idle(self, fn: Callable[[], Any]) -> bool:
        """Calls fn() only while no job runs, and no job starts until it returns (e.g. unloading the models
        from a UI thread must not race the worker loading them for the next job). False when a job runs."""
        with self._lock:
            if self._current:
                return False
            fn()
            return True

    def request_stop(self) -> None:
        """Asks the loop to end (stop() also waits for it): a running job is cancelled and left INTERRUPTED."""
        self._stop_ev.set()
        with self._lock:
            if self._current:
                self._current[1].cancel()
        self._wake.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ends the loop; a running job is cancelled and left INTERRUPTED (a retry resumes it)."""
        self.request_stop()
        if self.is_alive():
            self.join(timeout)

    # ---- loop -----------------------------------------------------------------------------------------------
    def run(self) -> None:
        log.info("worker %s started", self.worker_name or "")
        disk_full = False  # said once, not every poll, while the disk stays full
        while not self._stop_ev.is_set() and not self.lost.is_set():
            try:
                self._wake.clear()
                with self._claim_lock:
                    job = None if self._paused.is_set() else self.store.claim_next(self.worker_name)
                self.looks += 1
                disk_full = False
                if job is None:
                    self._wake.wait(self.poll_interval)
                    continue
                self._run_job(job)
            except Exception as exc:  # the store itself failed (disk full, locked): log, wait, go on
                if not is_storage_full(exc):
                    log.exception("worker loop error")
                elif not disk_full:
                    log.error("worker: %s; no job starts until there is space", exc)
                    disk_full = True
                self._stop_ev.wait(self.poll_interval)
        log.info("worker stopped")

    def _output_options(self, job: Job, settings: Settings) -> OutputOptions:
        work_dir = Path(job.job_dir) / "work"  # the same folder on retry, so the engine resumes from it
        work_dir.mkdir(parents=True, exist_ok=True)
        return output_options(settings, self.paths, work_dir, name=job.name or None,
                              preview_wanted=lambda: self.preview_watch.wanted(job.id))

    def _run_job(self, job: Job) -> None:
        token = CancelToken()
        with self._lock:
            self._current = (job.id, token)
        self.idle.clear()
        log.info("job %s started (%s, attempt %d)", job.id, job.generation_type, job.attempts)
        settings: Settings | None = None
        oom = False
        self.device_lease.acquire()
        try:
            for fn in self.before_job:
                fn(self)
            settings = self.settings_provider()
            out = self._output_options(job, settings)
            out.output_dir.mkdir(parents=True, exist_ok=True)
            recorder = ProgressRecorder(self.store, job, token, self.progress_interval)
            recorder.record(StageEvent("Preparing"))
            token.raise_if_cancelled()  # cancelled between claim and start: do not even load models
            engine = self.engine_provider(self.paths.resolved_settings(settings))  # absolute folders
            result = None
            with _downloads_reported(engine, recorder):
                for ev in engine.generate(job.params, out, token):
                    if isinstance(ev, DoneEvent):
                        result = ev.result
                    else:
                        recorder.record(ev)
            if result is None:
                raise RuntimeError("the engine finished without a result")
            outputs = [str(p) for p in (result.video, result.metadata, result.thumbnail, *result.extra_files) if p]
            info = {"frames": result.frames, "fps": result.fps, "width": result.width, "height": result.height,
                    "seed": result.seed, "skipped_steps": result.skipped_steps,
                    "first_section": recorder.first_section, **_jsonable(result.info)}
            self._record(job.id, JobStatus.COMPLETED, outputs=outputs, output_video=str(result.video),
                         result_info=info)
            log.info("job %s completed: %s", job.id, result.video)
        except WorkerLost as exc:
            self._record(job.id, JobStatus.INTERRUPTED, error=WORKER_LOST_MESSAGE.format(reason=exc))
            self.lost.set()
            if self.store.retry(job.id, first=True):  # another worker resumes it from its last finished section
                log.warning("job %s: worker %s lost (%s); queued again", job.id, self.worker_name, exc)
        except CancelledError:
            if self._stop_ev.is_set() and not self.store.cancel_requested(job.id):
                self._record(job.id, JobStatus.INTERRUPTED, error=INTERRUPTED_MESSAGE)
                log.info("job %s interrupted by shutdown", job.id)
            else:
                self._record(job.id, JobStatus.CANCELLED, error="cancelled by user")
                log.info("job %s cancelled", job.id)
        except BaseException as exc:  # SystemExit too: whatever a job raises fails that job, never the worker
            if isinstance(exc, (KeyboardInterrupt, GeneratorExit)) and self._stop_ev.is_set():
                # The process is shutting down around the job: leave it resumable and let the exception go on.
                self._record(job.id, JobStatus.INTERRUPTED, error=INTERRUPTED_MESSAGE)
                raise
            trace = tb.format_exc()
            if is_out_of_memory(exc):
                oom = True
                message = oom_message(job.params, settings or Settings())
            elif is_storage_full(exc):
                message = JOB_STORAGE_FULL_MESSAGE
            else:
                message = f"{exc.__class__.__name__}: {exc}"
            del exc  # the traceback's frames hold tensors; drop them before freeing memory
            log.error("job %s failed: %s", job.id, message)
            self._record(job.id, JobStatus.FAILED, error=message, traceback=trace)
        finally:
            self.device_lease.release()
            with self._lock:
                self._current = None
            if oom:
                free_memory()
            self.idle.set()

    def _record(self, job_id: str, status: JobStatus, **fields: Any) -> None:
        """Writes a job's outcome into its row, retrying until the store takes it (a full disk frees up).

        Until then this thread claims no other job, so the row never shows two jobs RUNNING, and cancel, retry
        and delete see the job as still running. Only a stop gives up; the next start then marks the row
        INTERRUPTED."""
        failures = 0
        while True:
            try:
                self.store.finish(job_id, status, **fields)
            except (sqlite3.Error, OSError) as exc:  # the store failed, not the job: disk full, I/O error
                failures += 1
                if failures == 1:
                    log.error("job %s: could not record %s (%s); retrying until the store accepts it",
                              job_id, status.value, exc)
                if self._stop_ev.wait(self.poll_interval):
                    log.error("job %s: stopping with its outcome (%s) unrecorded; the next start marks it "
                              "INTERRUPTED", job_id, status.value)
                    return
                continue
            if failures:
                log.info("job %s: %s recorded after %d failed attempt(s)", job_id, status.value, failures)
            return


def _jsonable(info: dict) -> dict:
    import json

    out = {}
    for k, v in (info or {}).items():
        try:
            json.dumps(v)
            out[str(k)] = v
        except (TypeError, ValueError):
            out[str(k)] = str(v)
    return out
