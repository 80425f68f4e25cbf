"""EngineActor: one GPU of the cluster (or one unit of a custom resource), holding a resident engine.

It runs on a worker machine, in a Ray worker process. It keeps its ModelManager (and so the loaded models)
between jobs, runs one job at a time in a scratch folder, and streams back everything the studio needs:
the engine's events as they happen, the work folder's new files after every finished section (so another
actor can resume the job), and the final files. It never sees the studio's queue: the studio's SQLite store
stays the only authority on a job's status.

The actor is threaded (max_concurrency): cancel(), watch(), info() and unload() run while generate() runs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray

from modules.cancel import CancelToken
from modules.framepack.events import DoneEvent, GenerationResult, SectionEvent
from studio.cluster.transfer import (ActorInfo, Finished, FolderWatch, OutputFiles, RemoteJob, RemoteResult,
                                     place_input, read_tree, replace_inputs, write_files)

log = logging.getLogger(__name__)

# Cancel, watch, info and unload answer while a job runs; more would only queue behind the one job.
MAX_CONCURRENCY = 4
# The stream runs at most this many items ahead of the studio: a cancel the studio sees at step k reaches the
# engine before it has sampled more than a step or two past k (an item is an event or a file batch).
STREAM_AHEAD = 2


class ActorNotReady(RuntimeError):
    """The actor cannot run jobs (no GPU, out of memory, missing weights); the message says which and why."""


class EngineActor:
    """See the module docstring. Created by studio.cluster.connect (one per GPU), never by hand."""

    def __init__(self, hf_home: str | None = None, scratch: str | None = None) -> None:
        from studio.jobs.worker import DefaultEngineProvider

        gpu_ids = ray.get_gpu_ids()
        # Ray narrows CUDA_VISIBLE_DEVICES to this actor's GPU, so that GPU is cuda:0 in this process.
        self.device = "cuda:0" if gpu_ids else "cpu"
        self.gpu_ids = [str(g) for g in gpu_ids]
        self.hf_home = hf_home  # this machine's Hugging Face cache; None: the studio's folder if it exists here
        self.provider = DefaultEngineProvider(self.device)
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="fp-studio-actor-"))
        self.lora_dir = self.scratch / "loras"
        self.lora_dir.mkdir(parents=True, exist_ok=True)
        self._busy = threading.Lock()  # one job at a time
        self._lock = threading.Lock()  # guards the fields below
        self._tokens: dict[str, CancelToken] = {}
        self._cancelled_early: set[str] = set()  # cancel() arrived before its generate() started
        self._watched: dict[str, bool] = {}
        self._job: str | None = None

    # ---- control --------------------------------------------------------------------------------------------
    def ready(self, settings: dict) -> ActorInfo:
        """Checks the device and loads the shared models (text encoders, VAE, image encoder) with these settings,
        so a broken machine is left out before it takes a job. Raises ActorNotReady saying what is wrong."""
        from modules.models.loader import ModelNotAvailableError
        from studio.jobs.worker import is_out_of_memory

        info = self.info()
        if self.device.startswith("cuda") and info.vram_total_mb is None:
            raise ActorNotReady(f"no GPU: Ray gave this actor GPU {', '.join(self.gpu_ids)} on {info.node_ip}, but "
                                "torch sees no CUDA device (driver, CUDA build of torch, CUDA_VISIBLE_DEVICES)")
        try:
            self.provider(self._settings(settings))
            self.provider.manager.shared()
        except ModelNotAvailableError as exc:
            raise ActorNotReady(f"missing weights on {info.node_ip}: {exc}") from None
        except Exception as exc:
            if is_out_of_memory(exc):
                raise ActorNotReady(f"out of memory on {info.node_ip} ({info.device_name}) while loading the "
                                    f"models: {exc}") from None
            raise ActorNotReady(f"cannot load the models on {info.node_ip}: {exc.__class__.__name__}: {exc}") from None
        return self.info()

    def info(self) -> ActorInfo:
        """Device, the job it runs (the studio's run id), VRAM in use."""
        import torch

        name, total, used = "CPU", None, None
        if self.device.startswith("cuda") and torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            name, total = props.name, props.total_memory / 2**20
            free, whole = torch.cuda.mem_get_info(0)
            used = (whole - free) / 2**20
        with self._lock:
            job = self._job
        return ActorInfo(device=self.device, device_name=name, node_ip=ray.util.get_node_ip_address(),
                         vram_total_mb=total, vram_used_mb=used, job_id=job)

    def cancel(self, job_id: str) -> bool:
        """The job stops within one sampler step (its generate() then raises CancelledError)."""
        with self._lock:
            token = self._tokens.get(job_id)
            if token is None:
                self._cancelled_early.add(job_id)
                return False
        token.cancel()
        return True

    def watch(self, job_id: str, wanted: bool) -> None:
        """Whether someone in the studio watches the job (it then builds the growing preview video)."""
        with self._lock:
            self._watched[job_id] = wanted

    def unload(self) -> bool:
        """Frees the models; False (nothing done) while a job runs."""
        if not self._busy.acquire(blocking=False):
            return False
        try:
            self.provider.unload()
            from studio.jobs.worker import free_memory

            free_memory()
            return True
        finally:
            self._busy.release()

    # ---- the job --------------------------------------------------------------------------------------------
    @ray.method(num_returns="streaming", _generator_backpressure_num_objects=STREAM_AHEAD)
    def generate(self, job: RemoteJob, inputs: dict[str, bytes], work: dict[str, bytes],
                 loras: dict[str, bytes]) -> Iterator[Any]:
        """Runs one job; yields the engine's events, a WorkFiles after every section (before its SectionEvent)
        and finally a Finished. inputs: the job's input files by the path its parameters name; work: the studio's
        work folder of the job (a resume); loras: the job's LoRA files by name."""
        job = RemoteJob.model_validate(job)
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"actor busy with job {self._job}")
        token = CancelToken()
        with self._lock:
            self._job = job.job_id
            self._tokens[job.job_id] = token
            self._watched.setdefault(job.job_id, job.preview_wanted)
            if job.job_id in self._cancelled_early:
                token.cancel()
        folder = self.scratch / "jobs" / job.job_id
        try:
            yield from self._run(job, inputs, work, loras, token, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                self._job = None
                self._tokens.pop(job.job_id, None)
                self._watched.pop(job.job_id, None)
                self._cancelled_early.discard(job.job_id)
            self._busy.release()

    def _run(self, job: RemoteJob, inputs: dict[str, bytes], work: dict[str, bytes], loras: dict[str, bytes],
             token: CancelToken, folder: Path) -> Iterator[Any]:
        import torch

        from modules.framepack.outputs import OutputOptions

        shutil.rmtree(folder, ignore_errors=True)
        work_dir, out_dir, meta_dir = folder / "work", folder / "out", folder / "meta"
        for d in (work_dir, out_dir, meta_dir):
            d.mkdir(parents=True)
        write_files(work_dir, work)
        placed = {Path(p): place_input(Path(p), data, self.scratch / "inputs") for p, data in inputs.items()}
        params = replace_inputs(job.params, placed)
        self._keep_loras(loras)
        if job.torch_threads:
            # CPU kernels split their sums by thread, so the thread count changes the float results (and so
            # the video's bytes); Ray starts workers with OMP_NUM_THREADS=1. Use the studio's count.
            torch.set_num_threads(job.torch_threads)
        engine = self.provider(self._settings(job.settings))
        out = OutputOptions(output_dir=out_dir, work_dir=work_dir, crf=job.crf, save_metadata=job.save_metadata,
                            cleanup_videos=job.cleanup_videos, metadata_dir=meta_dir, save_latents=job.save_latents,
                            name=job.stem, preview_wanted=lambda: self._watched.get(job.job_id, False))
        changes = FolderWatch(work_dir)
        changes.mark()
        for ev in engine.generate(params, out, token):
            if isinstance(ev, DoneEvent):
                yield _finished(ev.result, out_dir, meta_dir)
            elif isinstance(ev, SectionEvent):
                yield changes.changes()  # the new checkpoint before the studio records the section
                preview = Path(ev.preview_video).name if ev.preview_video is not None else None
                yield replace(ev, preview_video=Path(preview) if preview else None)  # a name in the work folder
            else:
                yield ev

    def _keep_loras(self, loras: dict[str, bytes]) -> None:
        """The job's LoRA files in this actor's LoRA folder (rewritten only when their bytes changed)."""
        changed = {n: b for n, b in loras.items()
                   if not (self.lora_dir / n).is_file() or (self.lora_dir / n).read_bytes() != b}
        write_files(self.lora_dir, changed)

    def _settings(self, data: dict) -> Any:
        """The studio's settings with this machine's folders: its LoRA folder, its model cache."""
        from studio.settings import Settings

        settings = Settings.model_validate(data)
        hf_home = self.hf_home or (settings.hf_home if settings.hf_home and Path(settings.hf_home).is_dir() else None)
        return settings.model_copy(update={"lora_dir": str(self.lora_dir), "hf_home": hf_home})


def _finished(result: GenerationResult, out_dir: Path, meta_dir: Path) -> Finished:
    def rel(path: Path | None) -> str | None:
        if path is None:
            return None
        path = Path(path)
        base = meta_dir if path.is_relative_to(meta_dir) else out_dir
        return path.relative_to(base).as_posix()

    files = OutputFiles(outputs=read_tree(out_dir), metadata=read_tree(meta_dir))
    return Finished(files, RemoteResult(video=rel(result.video), metadata=rel(result.metadata),
                                        thumbnail=rel(result.thumbnail),
                                        extra_files=[rel(p) for p in result.extra_files], frames=result.frames,
                                        fps=result.fps, width=result.width, height=result.height, seed=result.seed,
                                        skipped_steps=result.skipped_steps, info=result.info))


def remote_class(**options: Any) -> Any:
    """EngineActor as a Ray actor class (threaded); options: Ray's actor options (num_gpus, resources, ...)."""
    return ray.remote(max_concurrency=MAX_CONCURRENCY, **options)(EngineActor)
