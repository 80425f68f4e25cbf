"""What the tabs may use: the queue (through one small facade), the settings and the data folders.

The tabs never reach into each other's components; they read and write through these objects, so the UI
can be wired to whichever queue implementation the app starts (see `studio/ui/queue_adapter.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from modules.framepack.params import GenerationParams
from studio.paths import DataPaths
from studio.settings import Settings, SettingsStore

log = logging.getLogger(__name__)

STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED")
FINISHED = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass
class JobView:
    """One job as the UI shows it (independent of the store's own classes)."""

    id: str
    type: str
    status: str
    created: float | None = None
    started: float | None = None
    completed: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # live progress of a running job
    stage: str | None = None
    section: int | None = None
    total_sections: int | None = None
    step: int | None = None
    total_steps: int | None = None
    eta_seconds: float | None = None
    preview_image: Path | None = None
    preview_video: Path | None = None
    # results
    outputs: list[Path] = field(default_factory=list)
    thumbnail: Path | None = None  # input preview for the queue table

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        end = self.completed if self.completed is not None else time.time()
        return max(0.0, end - self.started)

    @property
    def video(self) -> Path | None:
        for p in self.outputs:
            if Path(p).suffix.lower() == ".mp4":
                return Path(p)
        return None


class QueueFacade(Protocol):
    """The queue operations the UI needs; `queue_adapter` maps them onto the queue service."""

    def add(self, params: GenerationParams) -> str: ...
    def list(self) -> list[JobView]: ...
    def get(self, job_id: str) -> JobView | None: ...
    def cancel(self, job_id: str) -> None: ...
    def remove(self, job_id: str) -> None: ...
    def retry(self, job_id: str) -> str | None: ...
    def move(self, job_id: str, delta: int) -> None: ...
    def duplicate(self, job_id: str) -> str: ...
    def cancel_pending(self) -> int: ...
    def clear_finished(self) -> int: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def is_paused(self) -> bool: ...
    def export_zip(self, dest: Path) -> Path: ...
    def import_file(self, path: Path) -> int: ...
    def load_queue_json(self, path: Path) -> int: ...
    def unload_model(self) -> str: ...
    def counts(self) -> dict: ...
    def model_status(self) -> str: ...


class SettingsHolder:
    """The live Settings object shared by all tabs (thread-safe replace + save)."""

    def __init__(self, store: SettingsStore, settings: Settings, run_overrides: dict[str, Any] | None = None,
                 file_settings: Settings | None = None) -> None:
        self.store = store
        self._settings = settings
        self._lock = threading.Lock()
        self.listeners: list[Callable[[Settings], None]] = []
        # Values set for this run only (command-line flags): saving keeps the file's value for them
        # unless the user changed them on the page.
        self.run_overrides = dict(run_overrides or {})
        self._file_settings = file_settings or settings

    @property
    def current(self) -> Settings:
        return self._settings

    def update(self, settings: Settings, save: bool = True) -> None:
        with self._lock:
            self._settings = settings
            if save:
                data = settings.model_dump()
                for key, value in self.run_overrides.items():
                    if data.get(key) == value:
                        data[key] = getattr(self._file_settings, key)
                to_save = Settings.model_validate(data)
                self.store.save(to_save)
                self._file_settings = to_save
        for fn in self.listeners:
            try:
                fn(settings)
            except Exception:  # a listener must not break saving
                log.exception("settings listener failed")


@dataclass
class Services:
    paths: DataPaths
    settings: SettingsHolder
    queue: QueueFacade

    def folder(self, configured: str) -> Path:
        p = self.paths.resolve(configured)
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def output_dir(self) -> Path:
        return self.folder(self.settings.current.output_dir)

    @property
    def metadata_dir(self) -> Path | None:
        md = self.settings.current.metadata_dir
        return self.folder(md) if md else None

    @property
    def lora_dir(self) -> Path:
        return self.folder(self.settings.current.lora_dir)

    @property
    def post_output_dir(self) -> Path:
        return self.folder(self.settings.current.postprocess_output_dir)

    @property
    def post_temp_dir(self) -> Path:
        return self.folder(self.settings.current.postprocess_temp_dir)

    @property
    def gradio_temp_dir(self) -> Path:
        return self.folder(self.settings.current.gradio_temp_dir)

    @property
    def presets_dir(self) -> Path:
        self.paths.presets_dir.mkdir(parents=True, exist_ok=True)
        return self.paths.presets_dir

    @property
    def thumbs_dir(self) -> Path:
        p = self.paths.thumbs_dir
        p.mkdir(parents=True, exist_ok=True)
        return p


@dataclass
class SharedState:
    """The only cross-tab links: hidden components the app creates and passes to the tabs.

    `post_input` carries a video path from Outputs to Post-processing; `load_params` carries a job's
    parameter JSON from Outputs (or the Queue) back into Generate; `tabs` lets a handler switch tab.
    """

    tabs: Any = None
    post_input: Any = None
    load_params: Any = None
