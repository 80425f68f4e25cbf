"""Maps studio.jobs.QueueService onto the small facade the tabs use (JobView rows, plain results)."""

from __future__ import annotations

import logging
from pathlib import Path

from modules.framepack.params import GenerationParams
from studio.jobs.model import JobSummary
from studio.jobs.service import QueueService
from studio.ui.services import JobView

log = logging.getLogger(__name__)


def _added(result) -> int:
    added = getattr(result, "added", result)
    return len(added) if isinstance(added, (list, tuple)) else int(added)


def to_view(job: JobSummary) -> JobView:
    p = job.progress
    params = getattr(job, "params", None)
    outputs = [Path(o) for o in getattr(job, "outputs", []) or []]
    if job.output_video and Path(job.output_video) not in outputs:
        outputs.insert(0, Path(job.output_video))
    return JobView(
        id=job.id, type=job.generation_type, status=job.status.value, created=job.created_at,
        started=job.started_at, completed=job.completed_at,
        params=params.model_dump(mode="json") if params is not None else {},
        error=job.error,
        stage=p.stage if p else None, section=p.section if p else None,
        total_sections=p.total_sections if p else None, step=p.step if p else None,
        total_steps=p.total_steps if p else None, eta_seconds=p.eta_seconds if p else None,
        preview_image=Path(p.preview_image) if p and p.preview_image else None,
        preview_video=Path(p.preview_video) if p and p.preview_video else None,
        outputs=outputs, thumbnail=Path(job.thumbnail) if job.thumbnail else None,
    )


class QueueAdapter:
    def __init__(self, service: QueueService) -> None:
        self.service = service

    def add(self, params: GenerationParams) -> str:
        return self.service.add(params)

    def list(self) -> list[JobView]:
        return [to_view(j) for j in self.service.list()]

    def get(self, job_id: str) -> JobView | None:
        job = self.service.get(job_id)
        return to_view(job) if job is not None else None

    def counts(self) -> dict[str, int | bool]:
        c = self.service.counts()
        return {"pending": c.pending, "running": c.running, "done": c.completed, "failed": c.failed,
                "cancelled": c.cancelled, "interrupted": c.interrupted, "paused": c.paused}

    def cancel(self, job_id: str) -> None:
        if not self.service.cancel(job_id):
            raise ValueError(f"job {job_id} cannot be cancelled")

    def remove(self, job_id: str) -> None:
        if not self.service.remove(job_id):
            raise ValueError(f"job {job_id} cannot be removed (running jobs must be cancelled first)")

    def retry(self, job_id: str) -> str | None:
        if not self.service.retry(job_id):
            raise ValueError(f"job {job_id} cannot be retried (only FAILED, CANCELLED or INTERRUPTED jobs)")
        return job_id

    def move(self, job_id: str, delta: int) -> None:
        ok = self.service.move_up(job_id) if delta < 0 else self.service.move_down(job_id)
        if not ok:
            raise ValueError(f"job {job_id} cannot move further")

    def duplicate(self, job_id: str) -> str:
        new = self.service.duplicate(job_id)
        if new is None:
            raise ValueError(f"job {job_id} not found")
        return new

    def cancel_pending(self) -> int:
        return self.service.cancel_pending()

    def clear_finished(self) -> int:
        return self.service.clear_finished()

    def pause(self) -> None:
        self.service.pause()

    def resume(self) -> None:
        self.service.resume()

    def is_paused(self) -> bool:
        return self.service.paused

    def export_zip(self, dest: Path) -> Path:
        return self.service.export_zip(dest)

    def import_file(self, path: Path) -> int:
        return _added(self.service.import_file(path))

    def load_queue_json(self, path: Path) -> int:
        return _added(self.service.load_queue())

    def unload_model(self) -> str:
        return "Studio model unloaded." if self.service.unload_models() else "No studio model was loaded."

    def model_status(self) -> str:
        provider = self.service.engine_provider
        manager = getattr(provider, "manager", None)
        if manager is None:
            return "not loaded"
        try:
            summary = manager.loaded_summary()
        except Exception:
            return "unknown"
        return ", ".join(f"{k}: {v}" for k, v in summary.items()) if isinstance(summary, dict) else str(summary)
