"""QueueService: the one facade the UI, the HTTP API and the CLI use for the job queue.

    service = QueueService(DataPaths(data_dir), settings_provider=store.load)   # restores the queue
    service.start()                                   # the worker thread (only one process may run it)
    job_id = service.add({"prompt": "...", "start_image": "/tmp/x.png"})   # JobValidationError lists fields
    service.list(); service.get(job_id); service.cancel(job_id); service.retry(job_id); ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout
from pydantic import ValidationError

from modules.errors import field_messages
from modules.framepack.inputs import InputError, check_inputs
from modules.framepack.params import GenerationParams
from studio.jobs import archive, continuation, edit, files, kept_inputs
from studio.jobs.batch import (AddOptions, batch_errors, batch_names, folder_files, input_field, new_group_id,
                               parse_add_options, raw_generation_type, with_input)
from studio.jobs.model import Counts, FieldError, Job, JobStatus, JobSummary, JobValidationError
from studio.jobs.pool import WorkerPool, WorkerSlot, plan_slots, slots_host_ram
from studio.jobs.staging import Staging
from studio.jobs.watch import PreviewWatch
from studio.jobs.storage import storage_full_as_error
from studio.jobs.store import JobStore
from studio.paths import DataPaths
from studio.run_config import lora_context
from studio.settings import Settings, SettingsStore

if TYPE_CHECKING:  # the worker imports the engine (torch): only the serving process needs it
    from studio.jobs.worker import EngineProvider

# Makes the engine provider of one local worker (tests pass fakes); default: the real engine on the slot's device.
EngineFactory = Callable[[WorkerSlot], "EngineProvider"]

log = logging.getLogger(__name__)


def parse_params(data: GenerationParams | dict | str) -> GenerationParams:
    """Validates job parameters (a dict, JSON text or a model); JobValidationError lists every bad field."""
    if isinstance(data, GenerationParams):
        data = data.model_dump(mode="json")
    try:
        if isinstance(data, (str, bytes)):
            return GenerationParams.model_validate_json(data)
        if not isinstance(data, dict):
            raise JobValidationError([FieldError(field="params", message="expected a JSON object")])
        return GenerationParams.model_validate(data)
    except ValidationError as exc:
        raise JobValidationError([FieldError(field=m.field, message=m.message) for m in field_messages(exc)]) from None


class QueueService:
    def __init__(self, paths: DataPaths, settings_provider: Callable[[], Settings] | None = None,
                 engine_provider: EngineProvider | None = None, *, poll_interval: float = 1.0,
                 progress_interval: float = 0.25, slots: list[WorkerSlot] | None = None,
                 engine_factory: EngineFactory | None = None) -> None:
        """slots: the local workers (default: pool.plan_slots from the settings' gpus / workers). engine_provider:
        the one engine of a single worker (tests); engine_factory: one per worker."""
        self.paths = paths
        self.settings_provider = settings_provider or SettingsStore(paths.settings_file).load
        self.store = JobStore(paths.queue_db)
        self.paths.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._engine_provider = engine_provider
        self._engine_factory = engine_factory
        self._slots = slots
        self._poll_interval = poll_interval
        self._progress_interval = progress_interval
        # One worker per data directory: an exclusive OS file lock (flock / LockFileEx), which the OS drops even
        # after kill -9. thread_local=False: start() and shutdown() may run on different threads, and filelock's
        # default would then leave the lock held.
        self._lock = FileLock(paths.worker_lock, thread_local=False)
        self.workers = WorkerPool()  # empty until start(): a process without the worker lock only edits the queue
        self.preview_watch = PreviewWatch()

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Restores the queue (RUNNING rows of a dead process -> INTERRUPTED) and starts the worker.

        False when another process already runs a worker on this data directory (this one then only edits
        the queue, like the CLI does)."""
        if self.workers.members:
            return True
        slots = self.slots()  # before the lock: a bad gpus setting refuses to start, naming it
        if not self._take_worker_lock():
            log.warning("another FP-Studio process runs the queue worker for %s; not starting one", self.paths.root)
            return False
        try:
            from studio.jobs.sweep import sweep
            from studio.jobs.worker import Worker

            interrupted = self.store.interrupt_running()
            if interrupted:
                log.warning("restored queue: %d job(s) were running when the app stopped and are INTERRUPTED: %s",
                            len(interrupted), ", ".join(interrupted))
            # Holding the worker lock: no other process runs jobs here, so what a killed one left is debris.
            sweep(self.store, self.paths, self._output_dirs())
            for slot in slots:
                self.workers.add(Worker(self.store, self.paths, self.settings_provider, self._engine_for(slot, slots),
                                        poll_interval=self._poll_interval, progress_interval=self._progress_interval,
                                        preview_watch=self.preview_watch, worker_name=slot.name),
                                 label=slot.label, gpu_index=slot.gpu_index, device=slot.device)
            if not slots:
                log.warning("no local worker (--gpus none --workers 0): jobs wait for cluster workers")
            log.info("%d worker(s): %s; %s", len(slots), ", ".join(f"{s.name} ({s.label})" for s in slots),
                     slots_host_ram(slots, self.settings_provider().gpu_memory_preservation).describe())
        except BaseException:
            self.workers.stop()
            self._lock.release()
            raise
        return True

    def slots(self) -> list[WorkerSlot]:
        """The local workers this process runs (given, or planned from the settings' gpus and workers)."""
        if self._slots is None:
            s = self.settings_provider()
            self._slots = plan_slots(s.gpus, s.workers)
        return self._slots

    def _engine_for(self, slot: WorkerSlot, slots: list[WorkerSlot]) -> EngineProvider:
        if self._engine_factory is not None:
            return self._engine_factory(slot)
        if self._engine_provider is not None:
            if len(slots) > 1:  # one engine owns one ModelManager: it cannot serve two threads
                raise ValueError("engine_provider serves one worker; pass engine_factory for several")
            return self._engine_provider
        from studio.jobs.worker import DefaultEngineProvider

        return DefaultEngineProvider(device=slot.device)

    def _take_worker_lock(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def _output_dirs(self) -> list[Path]:
        """Where the worker's jobs write their results (their temporary files too)."""
        s = self.paths.resolved_settings(self.settings_provider())
        return [Path(s.output_dir)] + ([Path(s.metadata_dir)] if s.metadata_dir else [])

    def shutdown(self, timeout: float | None = 30.0) -> None:
        self.workers.stop(timeout)
        self._lock.release()

    def close(self) -> None:
        self.shutdown()
        self.store.close()

    # ---- adding ---------------------------------------------------------------------------------------------
    def validate(self, data: GenerationParams | dict | str,
                 allowed_roots: Iterable[Path] | None = None) -> GenerationParams:
        """Parameters and input files (existence and content) checked as add() does, without adding.

        allowed_roots: input files must lie under one of these folders (the HTTP API passes the data
        directory, so remote clients cannot make the server copy arbitrary files)."""
        params = parse_params(data)
        if allowed_roots is not None:
            # Where first, before any file is opened: the answer must not tell whether a path outside exists.
            outside = files.outside_roots(params, allowed_roots)
            if outside:
                raise JobValidationError(outside)
        try:
            # the one input checker, as the engine runs it (modules/framepack/inputs.py); LoRAs against the settings
            check_inputs(params, lora_context(self.settings_provider(), self.paths))
        except InputError as exc:
            raise JobValidationError([FieldError(field=f, message=m) for f, m in exc.fields.items()]) from None
        return params

    def _apply_settings(self, params: GenerationParams) -> GenerationParams:
        return self.settings_provider().apply_to(params)

    def add(self, data: GenerationParams | dict | str, allowed_roots: Iterable[Path] | None = None, *,
            name: str = "", gpu: str = "") -> str:
        """Validates, keeps the input files (kept_inputs.py), makes a job folder and queues it PENDING. Returns the id.

        name: the job's name (batch.py: shown in the queue, its output file stem). gpu: the worker it must run
        on ("" = any; pool.job_gpu). StorageFullError when the data directory is full (nothing is added)."""
        opts = parse_add_options({"name": name, "gpu": gpu})  # cleaned and checked as the API's and CLI's
        self._check_gpu(opts.gpu)
        params = self._apply_settings(self.validate(data, allowed_roots))
        job_id = self._insert_jobs([archive.PreparedJob(params)], labels=[(opts.name, None, opts.gpu)])[0]
        log.info("job %s added (%s)", job_id, params.generation_type.value)
        return job_id

    def add_batch(self, data: GenerationParams | dict | str, options: AddOptions | dict,
                  allowed_roots: Iterable[Path] | None = None) -> list[str]:
        """One job per batch file (options.batch_inputs, then the files of options.batch_folder), the same
        settings, one group id; all or nothing: every job is validated by the one input checker before any is
        queued, and a refusal names the file. Returns the ids in file order."""
        opts = options if isinstance(options, AddOptions) else parse_add_options(options)
        self._check_gpu(opts.gpu)
        raw = dict(data) if isinstance(data, dict) else parse_params(data).model_dump(mode="json")
        gen_type = raw_generation_type(raw)
        roots = list(allowed_roots) if allowed_roots is not None else None
        inputs = [Path(p) for p in opts.batch_inputs]
        if opts.batch_folder is not None:
            # Where first, as for input files: the answer must not tell what a folder outside holds.
            if roots is not None and files.outside(opts.batch_folder, roots):
                raise JobValidationError([FieldError(field="batch_folder", message=files.OUTSIDE_ROOTS_MESSAGE)])
            try:
                inputs += folder_files(opts.batch_folder, gen_type)
            except ValueError as exc:
                raise JobValidationError([FieldError(field="batch_folder", message=str(exc))]) from None
        if not inputs:
            raise JobValidationError([FieldError(field="batch_inputs", message="no input files given")])
        items: list[GenerationParams] = []
        errors: list[FieldError] = []
        for i, path in enumerate(inputs):
            try:
                items.append(self.validate(with_input(raw, path), roots))
            except JobValidationError as exc:
                errors += batch_errors(exc.errors, i, path, input_field(gen_type))
        if errors:  # shared problems (prompt, sizes) once, not once per file
            raise JobValidationError(list({(e.field, e.message): e for e in errors}.values()))
        group = new_group_id()
        ids = self._insert_jobs([archive.PreparedJob(self._apply_settings(p)) for p in items],
                                labels=[(n, group, opts.gpu) for n in batch_names(inputs, opts.name)])
        log.info("batch %s added: %d job(s) (%s)", group, len(ids), gen_type.value)
        return ids

    def add_prepared(self, items: list[archive.PreparedJob], staging: Staging | None = None) -> list[str]:
        """Adds several already-validated jobs all or nothing (import), in `staging` when given; each keeps
        the status it comes with (an imported FAILED job stays FAILED)."""
        return self._insert_jobs([dataclasses.replace(i, params=self._apply_settings(i.params)) for i in items],
                                 staging)

    def _insert_jobs(self, jobs: list[archive.PreparedJob], staging: Staging | None = None,
                     labels: list[tuple[str, str | None, str]] | None = None) -> list[str]:
        """All or nothing, even under kill -9: every job folder is built in a staging folder, then one
        transaction inserts the rows and moves the folders into jobs/ (staging.py). labels: each job's
        (name, group id, gpu)."""
        with storage_full_as_error(), contextlib.ExitStack() as stack:
            stage = staging or stack.enter_context(Staging(self.paths))
            rows = []
            for n, job in enumerate(jobs):
                job_id = uuid.uuid4().hex[:12]
                final_dir = stage.final_dir(job_id)
                staged, thumb = files.stage_job(job.params, stage.job_dir(job_id), final_dir,
                                                self.paths.kept_inputs_dir)
                rows.append({"id": job_id, "generation_type": staged.generation_type.value, "title": _title(staged),
                             "params_json": staged.model_dump_json(), "job_dir": str(final_dir),
                             "thumbnail": thumb, "status": job.status, "error": job.error,
                             "completed_at": job.completed_at, "name": job.name, "group_id": job.group_id})
                if labels is not None:
                    rows[-1]["name"], rows[-1]["group_id"], rows[-1]["gpu"] = labels[n]
            stage.insert(self.store, rows)
        self._wake()
        return [r["id"] for r in rows]

    def _check_gpu(self, gpu: str) -> None:
        """A job that asks for a worker this studio does not run would wait for ever: refused when added (a
        process without workers, the CLI, cannot tell and accepts it)."""
        names = self.workers.names
        if gpu and names and gpu not in names:
            raise JobValidationError([FieldError(
                field="gpu", message=f"no worker named {gpu} runs here; workers: any, {', '.join(names)}")])

    def _wake(self) -> None:
        self.workers.wake()

    # ---- reading --------------------------------------------------------------------------------------------
    def list(self, statuses: Iterable[JobStatus | str] | None = None) -> list[JobSummary]:
        """The running job, then PENDING jobs in run order, then the rest newest first (store.DISPLAY_ORDER)."""
        return self.store.list([JobStatus(s) for s in statuses] if statuses is not None else None)

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def watch(self, job_id: str) -> None:
        """Someone looks at this job's live view: while they do, it builds a growing preview video."""
        self.preview_watch.touch(job_id)

    def current(self) -> Job | None:
        """The first RUNNING job (of this process's workers, or of another process's)."""
        running = self.running()
        return self.store.get(running[0].id) if running else None

    def running(self) -> list[JobSummary]:
        """Every RUNNING job (one per busy worker), in run order."""
        return self.store.list([JobStatus.RUNNING])

    def counts(self) -> Counts:
        c = self.store.counts()
        c.paused = self.paused
        return c

    # ---- actions --------------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> bool:
        """PENDING: cancelled at once. RUNNING: stops within one sampler step (any process's worker)."""
        previous = self.store.cancel(job_id)
        if previous == JobStatus.RUNNING:
            self.workers.cancel(job_id)
        return previous is not None

    def cancel_group(self, group_id: str) -> int:
        """Cancel group: every PENDING job of a batch at once, its RUNNING one within one sampler step.
        Returns how many jobs it cancelled (0: unknown group, or all of it finished)."""
        count, running = self.store.cancel_group(group_id)
        for job_id in running:
            self.workers.cancel(job_id)
        if count:
            log.info("group %s: %d job(s) cancelled", group_id, count)
        return count

    def cancel_pending(self) -> int:
        """Cancel Queue: every PENDING job; the running one is left alone."""
        return self.store.cancel_pending()

    def remove(self, job_id: str) -> bool:
        """Deletes a job that is not running, with its job folder (outputs stay in the output folder)."""
        job = self.store.get(job_id)
        job_dir = self.store.delete(job_id)
        if job_dir is None:
            return False
        files.remove_job_dir(job_dir, self.paths.jobs_dir)
        self.prune_kept_inputs(kept_inputs.names_in_params(job.params) if job else ())
        return True

    def clear_finished(self) -> int:
        """Clear Complete: removes COMPLETED, FAILED and CANCELLED jobs (and their job folders). Their kept
        inputs stay while an output (or another job) refers to them (kept_inputs.py)."""
        names = {n for j in self.store.list_full() if j.status.finished for n in kept_inputs.names_in_params(j.params)}
        dirs = self.store.delete_finished()
        for d in dirs:
            files.remove_job_dir(d, self.paths.jobs_dir)
        self.prune_kept_inputs(names)
        return len(dirs)

    def prune_kept_inputs(self, names: Iterable[str]) -> list[Path]:
        """Removes those kept input files (by name) that no job, sidecar or MP4 comment refers to any more;
        called after a job or an output is deleted with the input names it referred to."""
        candidates = kept_inputs.kept_files(names, self.paths.kept_inputs_dir)
        return kept_inputs.prune(candidates, self.paths, self.store, self._output_dirs()) if candidates else []

    def move_up(self, job_id: str) -> bool:
        return self.store.move(job_id, -1)

    def move_down(self, job_id: str) -> bool:
        return self.store.move(job_id, +1)

    def duplicate(self, job_id: str) -> str | None:
        """A new PENDING job with the same parameters (and the same kept inputs)."""
        job = self.store.get(job_id)
        if job is None:
            return None
        return self.add(job.params, name=job.name)

    def edit(self, job_id: str, data: GenerationParams | dict | str,
             allowed_roots: Iterable[Path] | None = None) -> Job:
        """Edit a PENDING job in place (same id and queue position), checked as add() checks it; returns the
        edited job. edit.EditRefused (a sentence) when it is unknown or has started, even meanwhile (edit.py)."""
        job = edit.check_editable(job_id, self.store.get(job_id))
        params = self._apply_settings(self.validate(data, allowed_roots))
        ok, staged = edit.replace_params(self.store, self.paths, job, params, _title(params))
        if not ok:  # the worker claimed it while the edit was checked: nothing changed
            status = self.store.status(job_id)
            self.prune_kept_inputs(kept_inputs.names_in_params(staged))  # inputs kept for nothing
            raise edit.EditRefused(edit.not_pending_message(job_id, status), status)
        # Inputs it no longer names go, unless something else still refers to them.
        self.prune_kept_inputs(kept_inputs.names_in_params(job.params) - kept_inputs.names_in_params(staged))
        log.info("job %s edited in place (%s)", job_id, staged.generation_type.value)
        edited = self.store.get(job_id)
        if edited is None:  # removed right after the edit
            raise edit.EditRefused(edit.not_pending_message(job_id, None), None)
        return edited

    def continue_job(self, job_id: str, mode: str = "Video F1") -> str:
        """Continue from this video: queues the extension of a COMPLETED job's video with its settings (Video F1
        or Video; continued_from names the video); returns the new id. continuation.ContinueError says why not."""
        params = continuation.job_continuation(job_id, self.store.get(job_id), mode)
        new_id = self.add(params)
        log.info("job %s continues job %s (%s)", new_id, job_id, params.generation_type.value)
        return new_id

    def continue_output(self, video: Path, metadata: dict[str, Any] | None, mode: str = "Video F1") -> str:
        """As continue_job, for an output video and its sidecar (or MP4 comment) object: the Outputs tab."""
        params = continuation.continuation_params(continuation.source_params(metadata), Path(video), mode)
        new_id = self.add(params)
        log.info("job %s continues %s (%s)", new_id, Path(video).name, params.generation_type.value)
        return new_id

    def retry(self, job_id: str) -> bool:
        """FAILED / CANCELLED / INTERRUPTED -> PENDING. The job keeps its work folder, where the engine
        checkpointed every finished section, so the run resumes from the last one."""
        ok = self.store.retry(job_id)
        if ok:
            self._wake()
        return ok

    def pause(self) -> None:
        """Every worker starts no new job; running ones finish (cancel them to stop them now)."""
        self.workers.pause()

    def resume(self) -> None:
        self.workers.resume()

    @property
    def paused(self) -> bool:
        return self.workers.paused

    def unload_models(self) -> bool:
        """Frees the studio models (GPU memory) of every worker between its jobs; the next job reloads them.
        False when a job runs on some worker (the idle ones are unloaded all the same)."""
        if not self.workers.members:
            unload = getattr(self._engine_provider, "unload", None)
            if unload is not None:
                unload()
            return unload is not None
        busy = self.workers.run_if_idle(lambda w: getattr(w.engine_provider, "unload", lambda: None)())
        return not busy

    # ---- import / export (studio.jobs.archive does the work) -----------------------------------------------
    def export_zip(self, dest: Path, job_ids: Iterable[str] | None = None) -> Path:
        return archive.export_zip(self, Path(dest), job_ids)

    def export_json(self, dest: Path, job_ids: Iterable[str] | None = None) -> Path:
        return archive.export_json(self, Path(dest), job_ids)

    def import_file(self, path: Path, include_completed: bool = False) -> archive.ImportResult:
        """Load Queue / Import Queue (FramePack-Studio's queue.json, this app's .zip or .json export): all or
        nothing; raises archive.ArchiveError saying why. The result lists the added ids, the statuses kept
        (FAILED stays FAILED) and every skipped entry with the reason."""
        return archive.import_file(self, Path(path), include_completed)

    def load_queue(self) -> archive.ImportResult:
        """`queue load` and POST /api/queue/load: import_file on a queue.json placed in the data directory
        (the app itself never writes one: its queue lives in queue.db)."""
        return archive.import_file(self, self.paths.queue_json)

    def job_file(self, job_id: str, name: str) -> Path | None:
        """A file that belongs to the job (an output, its preview image or growing video), by base name only."""
        if not name or name != Path(name).name or name in (".", "..") or "/" in name or "\\" in name:
            return None
        job = self.store.get(job_id)
        if job is None:
            return None
        candidates = list(job.outputs)
        if job.output_video:
            candidates.append(job.output_video)
        if job.progress:
            candidates += [p for p in (job.progress.preview_image, job.progress.preview_video) if p]
        if job.thumbnail:
            candidates.append(job.thumbnail)
        for c in candidates:
            p = Path(c)
            if p.name == name and p.is_file():
                return p
        return None


def _title(params: GenerationParams) -> str:
    text = " ".join(params.prompt.split())
    return text[:120]


def dump_job(job: Job | JobSummary) -> dict[str, Any]:
    """JSON-ready dict (API, gradio endpoints, CLI)."""
    d = job.model_dump(mode="json")
    d["elapsed_seconds"] = job.elapsed_seconds
    if job.progress is not None:
        d["progress"]["fraction"] = job.progress.fraction
    return d
