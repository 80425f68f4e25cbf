"""The studio's side of a Ray actor: an engine the unchanged queue Worker runs like the local one.

RemoteEngine.generate(params, out, token) reserves the output name locally, ships the job (parameters,
input files, the job's work folder) to its actor, re-yields the actor's events as they arrive, writes each
section's checkpoint files into the job's own work folder, and at the end writes the final files into the
studio's output and metadata folders under the reserved name. So the Worker's ProgressRecorder, cancel and
retry see a cluster job exactly like a local one, and a job whose actor died resumes on another actor from
the checkpoint it sent last.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from modules.cancel import CancelledError, CancelToken
from modules.framepack.events import DoneEvent, GenerationResult, SectionEvent, StepEvent
from modules.framepack.params import GenerationParams, GenerationType
from studio.cluster.transfer import (ActorInfo, Finished, RemoteJob, WorkFiles, input_files, read_folder,
                                     safe_child, write_files)
from studio.jobs.worker import WorkerLost
from studio.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often a wait for the next event looks at the cancel token and the preview watch


class RemoteEngine:
    """One job's engine over one actor (the provider makes one per job)."""

    def __init__(self, actor: Any, settings: Settings, name: str = "") -> None:
        self.actor, self.settings, self.name = actor, settings, name

    def generate(self, params: GenerationParams, out: Any, cancel: CancelToken) -> Iterator[Any]:
        import torch

        from modules.framepack.naming import default_stem
        from modules.framepack.outputs import claimed_output_stem
        from modules.framepack.workdir import cleanup_work

        cancel.raise_if_cancelled()
        work_dir = Path(out.work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        default = default_stem(params.seed)  # what the local engine would name it (outputs.py, grid.py)
        if params.generation_type == GenerationType.GRID:
            default = f"grid_{default}"
        # Reserved here, held until the files are written here: the actor writes under exactly this name.
        with claimed_output_stem(out, default) as stem:
            run_id = uuid.uuid4().hex
            watched = _wanted(out)
            job = RemoteJob(job_id=run_id, params=params, settings=self.settings.model_dump(mode="json"), stem=stem,
                            crf=out.crf, save_metadata=out.save_metadata, cleanup_videos=out.cleanup_videos,
                            save_latents=out.save_latents, preview_wanted=watched,
                            torch_threads=torch.get_num_threads())
            inputs = {str(p): Path(p).read_bytes() for p in input_files(params)}
            loras = {s.name: (Path(self.settings.lora_dir) / s.name).read_bytes() for s in params.loras
                     if (Path(self.settings.lora_dir) / s.name).is_file()}
            stream = _Stream(self.actor, run_id, cancel, self.name)
            items = stream.items(job, inputs, read_folder(work_dir), loras)
            with contextlib.closing(items):  # on an error here, the actor's job is cancelled at once, not at GC
                result = yield from self._relay(items, out, run_id, watched, cancel)
        if result is None:
            raise RuntimeError(f"worker {self.name} finished without a result")
        cleanup_work(work_dir, out.cleanup_videos)  # as the local engine leaves its work folder
        yield DoneEvent(result)

    def _relay(self, items: Iterator[Any], out: Any, run_id: str, watched: bool,
               cancel: CancelToken) -> Generator[Any, None, GenerationResult | None]:
        """Re-yields the actor's events, writing its files here; returns the local result (None: no Finished).
        watched: what the actor was told about the preview watch (changes are forwarded)."""
        work_dir = Path(out.work_dir)
        result = None
        for item in items:
            if isinstance(item, WorkFiles):
                write_files(work_dir, item.files, item.removed)
                continue
            if isinstance(item, Finished):
                result = _write_outputs(item, out)
                continue
            if cancel.cancelled and isinstance(item, (StepEvent, SectionEvent)):
                continue  # the studio stopped at the step it saw the cancel; the actor stops right after
            if isinstance(item, SectionEvent) and item.preview_video is not None:
                item = replace(item, preview_video=safe_child(work_dir, Path(item.preview_video).name))
            now = _wanted(out)
            if now != watched:
                watched = now
                self.actor.watch.remote(run_id, now)
            yield item
        return result


class _Stream:
    """The actor's generate() stream: cancel forwarded while waiting, actor loss and remote errors translated."""

    def __init__(self, actor: Any, run_id: str, cancel: CancelToken, name: str) -> None:
        self.actor, self.run_id, self.cancel, self.name = actor, run_id, cancel, name
        self._cancel_sent = False

    def items(self, job: RemoteJob, inputs: dict, work: dict, loras: dict) -> Iterator[Any]:
        import ray

        finished = False
        try:
            with _translated(self.name, self.cancel):
                gen = self.actor.generate.remote(job, inputs, work, loras)
                while True:
                    ready: list = []
                    while not ready:
                        self._forward_cancel()
                        ready, _ = ray.wait([gen], timeout=POLL_S)
                    try:
                        item = ray.get(next(gen))
                    except StopIteration:
                        finished = True
                        return
                    except Exception:
                        finished = True  # the stream ended with the job's error, or the actor is gone
                        raise
                    self._forward_cancel()
                    yield item
        finally:
            if not finished and not self._cancel_sent:  # abandoned (the worker stops): stop the actor's job
                try:
                    self.actor.cancel.remote(self.run_id)
                except Exception as exc:  # the actor may be gone already
                    log.debug("cancel of %s on %s not sent: %s", self.run_id, self.name, exc)

    def _forward_cancel(self) -> None:
        if self.cancel.cancelled and not self._cancel_sent:
            import ray

            self._cancel_sent = True
            # Waited for: once it returns, the actor's engine stops at its next step, and the items still to
            # come are only those it had sent ahead (STREAM_AHEAD in actor.py).
            ray.get(self.actor.cancel.remote(self.run_id))


class _translated:
    """Ray's errors as the Worker knows them: a dead actor or node -> WorkerLost; the job's own exception (the
    actor's CancelledError, OutOfMemoryError, ...) re-raised as itself, chained to Ray's error that carries the
    remote traceback."""

    def __init__(self, name: str, cancel: CancelToken) -> None:
        self.name, self.cancel = name, cancel

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        import ray.exceptions as rex

        lost = (rex.RayActorError, rex.ActorUnavailableError, rex.NodeDiedError, rex.ObjectLostError,
                rex.WorkerCrashedError)
        if isinstance(exc, lost):
            raise WorkerLost(f"{self.name or 'Ray actor'}: {_first_line(exc)}") from exc
        if isinstance(exc, rex.RayTaskError):
            cause = exc.cause
            if isinstance(cause, CancelledError) or (self.cancel.cancelled and cause is None):
                raise CancelledError("cancelled by user") from exc
            if isinstance(cause, BaseException):
                raise cause from exc
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else exc.__class__.__name__


def _wanted(out: Any) -> bool:
    return bool(out.preview_wanted is not None and out.preview_wanted())


def _write_outputs(item: Finished, out: Any) -> GenerationResult:
    """Writes the final files under the studio's folders (atomically, names as the actor used them, which are
    the reserved stem) and returns the result pointing at them."""
    from modules.framepack.outputs import metadata_folder

    output_dir, meta_dir = Path(out.output_dir), metadata_folder(out)
    write_files(output_dir, item.files.outputs)
    write_files(meta_dir, item.files.metadata)
    r = item.result

    def local(rel: str | None, root: Path) -> Path | None:
        return safe_child(root, rel) if rel else None

    def either(rel: str | None) -> Path | None:  # the sidecar lies in the metadata folder, the rest beside the video
        if rel is None:
            return None
        return local(rel, meta_dir) if rel in item.files.metadata else local(rel, output_dir)

    return GenerationResult(video=either(r.video), metadata=either(r.metadata), thumbnail=either(r.thumbnail),
                            frames=r.frames, fps=r.fps, width=r.width, height=r.height, seed=r.seed,
                            skipped_steps=r.skipped_steps, extra_files=[either(p) for p in r.extra_files],
                            info=r.info)


class RayEngineProvider:
    """The Worker's engine provider for one actor: called once per job with the current settings."""

    def __init__(self, actor: Any, name: str = "") -> None:
        self.actor, self.name = actor, name

    def __call__(self, settings: Settings) -> RemoteEngine:
        return RemoteEngine(self.actor, settings, self.name)

    def unload(self) -> bool:
        """Frees the actor's models (the Worker calls it only between jobs)."""
        import ray

        with _translated(self.name, CancelToken()):
            return bool(ray.get(self.actor.unload.remote()))

    def info(self) -> ActorInfo:
        """The actor's device, job and VRAM in use (for the header)."""
        import ray

        with _translated(self.name, CancelToken()):
            return ray.get(self.actor.info.remote())
