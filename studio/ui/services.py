"""What the tabs share: the queue service, the live settings and the data folders.

The tabs use `studio.jobs.service.QueueService` directly (the one queue facade of the UI, the API and the CLI)
and show its own `JobSummary` / `Job` records; this module only holds what is UI-side: the settings a page
edits and the folders they name.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modules.models.lora_files import LoraContext
from studio.paths import DataPaths
from studio.run_config import lora_context
from studio.settings import Settings, SettingsStore

if TYPE_CHECKING:  # only the annotation: importing the UI does not load the queue
    from studio.captioning.service import CaptionService
    from studio.jobs.service import QueueService

log = logging.getLogger(__name__)


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
            self._replace(settings, save)
        self._notify(settings)

    def apply(self, changes: dict[str, Any], save: bool = True) -> Settings:
        """Merges `changes` into the current settings (and saves them) as one step, so two saves at once (two
        fields of a page, two pages) never undo each other's change. ValidationError (nothing changed) when the
        result is invalid."""
        with self._lock:
            settings = self.merged(changes)
            self._replace(settings, save)
        self._notify(settings)
        return settings

    def merged(self, changes: dict[str, Any]) -> Settings:
        """The current settings with `changes` merged in (nothing saved); ValidationError when invalid."""
        data = self._settings.model_dump()
        data.update(changes)
        return Settings.model_validate(data)

    def _replace(self, settings: Settings, save: bool) -> None:
        """Under the lock."""
        self._settings = settings
        if save:
            data = settings.model_dump()
            for key, value in self.run_overrides.items():
                if data.get(key) == value:
                    data[key] = getattr(self._file_settings, key)
            to_save = Settings.model_validate(data)
            self.store.save(to_save)
            self._file_settings = to_save

    def _notify(self, settings: Settings) -> None:
        for fn in self.listeners:
            try:
                fn(settings)
            except Exception:  # a listener must not break saving
                log.exception("settings listener failed")


@dataclass
class Services:
    paths: DataPaths
    settings: SettingsHolder
    queue: QueueService
    captioner: CaptionService  # Caption, Describe video, Enhance (studio/captioning)

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
    def lora_context(self) -> LoraContext:
        """The LoRA folder and model set the Generate tab checks its LoRA list against (the queue's rule)."""
        return lora_context(self.settings.current, self.paths)

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
