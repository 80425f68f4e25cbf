"""The data directory: settings.json, queue database, job folders, outputs, presets and LoRAs live under it.

Resolution order: --data-dir flag, then FP_STUDIO_DATA_DIR, then the project folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "FP_STUDIO_DATA_DIR"


def resolve_data_dir(flag: str | os.PathLike | None = None) -> Path:
    raw = flag or os.environ.get(DATA_DIR_ENV) or PROJECT_DIR
    path = Path(raw).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class DataPaths:
    """Fixed files and folders inside the data directory (user-configurable folders are in Settings)."""

    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    @property
    def queue_db(self) -> Path:
        return self.root / "queue.db"

    @property
    def queue_json(self) -> Path:
        return self.root / "queue.json"

    @property
    def worker_lock(self) -> Path:
        """Held by the one process that runs the queue worker (and sweeps at its start)."""
        return self.root / "queue.db.worker.lock"

    @property
    def staging_lock(self) -> Path:
        """Held shared while an add or import fills a staging folder in jobs/; the sweep takes it exclusively."""
        return self.root / "queue.db.staging.lock"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def kept_inputs_dir(self) -> Path:
        """Queued jobs' input files, one per content (studio/jobs/kept_inputs.py): jobs and their outputs'
        sidecars point here, so clearing jobs never loses the inputs an output's parameters need."""
        return self.root / "kept-inputs"

    @property
    def presets_dir(self) -> Path:
        return self.root / "presets"

    @property
    def postprocess_weights_dir(self) -> Path:
        """Downloaded post-processing network weights (upscalers, GFPGAN, RIFE), shared by the UI, the `post` CLI and
        `download --post` (README lists the files to place here for offline use)."""
        return self.root / "weights" / "postprocess"

    @property
    def temp_dir(self) -> Path:
        """App-made scratch files; everything below it may be deleted when no job runs."""
        return self.root / "temp"

    @property
    def thumbs_dir(self) -> Path:
        return self.temp_dir / "thumbs"

    @property
    def exports_dir(self) -> Path:
        """Export Queue's zips: saved files the user keeps, so not under temp/ (Clear Temporary Files)."""
        return self.root / "exports"

    @property
    def api_uploads_dir(self) -> Path:
        """Inputs uploaded through POST /api/uploads (jobs copy theirs into kept_inputs_dir)."""
        return self.temp_dir / "api-uploads"

    @property
    def cli_work_dir(self) -> Path:
        """Work folders of CLI runs (resume checkpoints), one per job fingerprint."""
        return self.temp_dir / "work"

    def resolve(self, configured: str | os.PathLike) -> Path:
        """A folder from Settings: absolute as given, relative to the data directory otherwise."""
        p = Path(configured).expanduser()
        return p if p.is_absolute() else self.root / p

    def resolved_settings(self, settings: Settings) -> Settings:
        """The settings with every folder (Settings.FOLDERS) absolute: the one place a configured folder is
        resolved for the worker, the engine, the CLI and the UI. An empty optional folder stays empty."""
        update = {name: str(self.resolve(value)) for name in settings.FOLDERS
                  if (value := getattr(settings, name))}
        return settings.model_copy(update=update)
