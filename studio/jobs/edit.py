"""Edit a pending job: new parameters in place (same id, same position in the queue), refused once it started.

    service.edit(job_id, params)     # QueueService.edit (check_editable, replace_params below): the UI's
                                     # "Save changes to job <id>" and PUT /api/jobs/{id}

The parameters go through the same checks as Add (QueueService.validate: pydantic, the one input checker), the
settings are applied as for Add, and the new input files are kept (kept_inputs.py) before one conditional
UPDATE ... WHERE status = 'PENDING' replaces them (JobStore.replace_pending): the worker's claim and an edit
never both win, so a job that started meanwhile keeps the parameters it runs with and the edit is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from modules.framepack.params import GenerationParams
from studio.jobs import files
from studio.jobs.model import Job, JobStatus
from studio.jobs.staging import Staging
from studio.jobs.storage import storage_full_as_error
from studio.jobs.store import JobStore
from studio.paths import DataPaths

log = logging.getLogger(__name__)


class EditRefused(ValueError):
    """The job cannot be edited (unknown, or no longer PENDING); the message is one sentence for the user.
    `status` is the job's status then (None: no such job)."""

    def __init__(self, message: str, status: JobStatus | None) -> None:
        super().__init__(message)
        self.status = status


def not_pending_message(job_id: str, status: JobStatus | None) -> str:
    if status is None:
        return f"There is no job {job_id} any more; nothing was saved."
    return (f"Job {job_id} is {status.value} now, no longer PENDING: only a job that has not started can be "
            "edited, so your changes were not saved (Add to Queue makes a new job of them).")


def check_editable(job_id: str, job: Job | None) -> Job:
    """The job, when it is PENDING; else EditRefused saying why."""
    if job is None or job.status is not JobStatus.PENDING:
        status = job.status if job is not None else None
        raise EditRefused(not_pending_message(job_id, status), status)
    return job


def replace_params(store: JobStore, paths: DataPaths, job: Job, params: GenerationParams,
                   title: str) -> tuple[bool, GenerationParams]:
    """Keeps the new inputs and builds the new thumbnail in a staging folder (the kept inputs held against a
    concurrent prune), then replaces the row's parameters if it is still PENDING, moving the thumbnail in
    inside that transaction. Returns whether the row changed (False: the job had left PENDING; its row and folder
    are unchanged) and the parameters pointing at the kept inputs."""
    job_dir = Path(job.job_dir)
    with storage_full_as_error(), Staging(paths) as stage:
        staged_dir = stage.job_dir(job.id)
        staged, thumb = files.stage_job(params, staged_dir, job_dir, paths.kept_inputs_dir)

        def publish() -> None:
            if thumb is not None:
                os.replace(staged_dir / Path(thumb).name, job_dir / Path(thumb).name)

        ok = store.replace_pending(job.id, staged.generation_type.value, title, staged.model_dump_json(), thumb,
                                   before_commit=publish)
    return ok, staged
