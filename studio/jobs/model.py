"""Job records as the queue, the API and the UI see them (pydantic: they cross every boundary)."""

from __future__ import annotations

import time
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from modules.framepack.params import GenerationParams


class JobStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    INTERRUPTED = "INTERRUPTED"  # was RUNNING when the process died; never re-run without a user retry

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
INTERRUPTED_MESSAGE = "interrupted: the application stopped while this job was running; retry resumes it"
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED})


class Progress(BaseModel):
    """What the worker last recorded for a running job; any number of pages poll it."""

    model_config = ConfigDict(extra="ignore")

    stage: str = ""  # e.g. "Loading models", "Sampling", "Decoding"
    section: int | None = None  # 0-based, in generation order
    total_sections: int | None = None
    step: int | None = None  # 1-based step just finished
    total_steps: int | None = None
    eta_seconds: float | None = None
    frames_so_far: int | None = None
    preview_image: str | None = None  # latest latent preview PNG (in the job folder)
    preview_video: str | None = None  # the growing video written so far
    updated_at: float | None = None

    @property
    def fraction(self) -> float | None:
        """Overall progress 0..1 from section and step, when known (the one formula: the API and the UI use it)."""
        if not self.total_sections or not self.total_steps or self.section is None or self.step is None:
            return None
        return min(1.0, (self.section + self.step / self.total_steps) / self.total_sections)


class JobSummary(BaseModel):
    """One row of the queue table: cheap to build for thousands of jobs (no parameter parsing)."""

    id: str
    position: int
    generation_type: str
    status: JobStatus
    title: str = ""  # first part of the prompt, for display
    name: str = ""  # the user's job name ("" = none): shown in the queue, the output file stem (sanitised)
    group_id: str | None = None  # jobs added as one batch share it (Cancel group)
    gpu: str = ""  # the worker this job must run on ("gpu1", "cpu0", a Ray actor's name); "" = any
    worker: str = ""  # the worker that ran (or runs) it, as the Queue tab shows it
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    thumbnail: str | None = None  # small PNG of the input image / first video frame
    progress: Progress | None = None
    error: str | None = None
    output_video: str | None = None

    @property
    def elapsed_seconds(self) -> float | None:
        """Run time so far (still counting while the job runs); None before it starts."""
        if self.started_at is None:
            return None
        end = self.completed_at if self.completed_at is not None else time.time()
        return max(0.0, end - self.started_at)


class Job(JobSummary):
    """The full record: validated parameters (inputs point into the job folder), results and diagnostics."""

    params: GenerationParams
    job_dir: str
    traceback: str | None = None
    outputs: list[str] = Field(default_factory=list)  # every file the job produced (video, sidecar, thumbnail, ...)
    result_info: dict = Field(default_factory=dict)  # frames, fps, size, seed, skipped steps, ...
    attempts: int = 0  # how many times the worker started it (retries resume from the last section)
    cancel_requested: bool = False


class FieldError(BaseModel):
    field: str
    message: str


class JobValidationError(ValueError):
    """add() refused the parameters; `errors` lists every invalid field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid job parameters: " + "; ".join(f"{e.field}: {e.message}" for e in errors))

    def as_dicts(self) -> list[dict[str, str]]:
        return [e.model_dump() for e in self.errors]


class Counts(BaseModel):
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    interrupted: int = 0
    paused: bool = False

    @property
    def done(self) -> int:
        return self.completed
