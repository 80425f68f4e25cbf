"""The one entry point of generation: Engine.generate(params, output options, cancel) -> events.

CONTRACT (implemented by the engine work; callers - CLI, queue worker, grid - rely on exactly this):

    engine = Engine(manager)                       # manager: modules.models.manager.ModelManager
    for event in engine.generate(params, OutputOptions(...), cancel_token):
        ...                                        # StageEvent / StepEvent / SectionEvent, last DoneEvent

* check inputs first (clear InputError naming the field, before any model loads),
* raise events.CancelledError within one sampler step of cancel_token.cancel(); no final file exists then,
* every finished section checkpoints into OutputOptions.work_dir so a rerun on the same work_dir resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class OutputOptions:
    """Where and how a job writes its files (filled from studio settings by the caller)."""

    output_dir: Path
    work_dir: Path  # per-job scratch: growing preview video, section checkpoints for resume
    crf: int
    save_metadata: bool
    cleanup_videos: bool
    metadata_dir: Path | None = None  # None = beside the video
    save_latents: bool = False
    name: str | None = None  # output file stem (sanitised); None = unique name from time + seed
