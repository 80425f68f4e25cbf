"""Wiring: settings -> queue service + worker -> Gradio app -> launch options (used by app.py and the tests)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from modules.models.registry import ModelSet
from studio.paths import DataPaths, resolve_data_dir
from studio.settings import SettingsStore
from studio.ui.services import Services, SettingsHolder

log = logging.getLogger(__name__)

MAX_FILE_SIZE = "2gb"  # uploads larger than this are refused by Gradio before they reach a handler
AUTH_ENV = "FP_STUDIO_AUTH"


@dataclass
class Studio:
    services: Services
    queue_service: Any
    demo: Any
    paths: DataPaths

    def launch_kwargs(self) -> dict[str, Any]:
        from studio.ui.app import CSS, theme_for

        s = self.services
        # The outputs and job folders, plus the app's own display scratch (gallery thumbnails, post-processing
        # results, queue exports): Gradio serves only allowed paths, its upload folder, the working directory
        # and the system temp folder, and a data dir elsewhere (Docker: /data) is none of those.
        exports = self.paths.exports_dir
        allowed = {str(s.output_dir), str(s.post_output_dir), str(self.paths.jobs_dir), str(s.thumbs_dir),
                   str(s.post_temp_dir), str(exports)}
        # Only the outputs and job folders are served; everything else in the data dir (settings, database,
        # LoRAs, temp) stays private even if a folder setting points inside it.
        blocked = [str(self.paths.settings_file), str(self.paths.queue_db), str(s.lora_dir)]
        return {"allowed_paths": sorted(allowed), "blocked_paths": blocked, "max_file_size": MAX_FILE_SIZE,
                "theme": theme_for(s.settings.current.theme), "css": CSS, "footer_links": [],
                "show_error": True}

    def mount_api(self) -> None:
        """The queue's HTTP routes on the running server (call after launch())."""
        try:
            from studio.api import mount_api
        except ImportError:
            log.warning("studio.api not available: HTTP API not mounted")
            return
        mount_api(self.demo.app, self.queue_service)
        # Gradio registers a catch-all route; keep the API routes ahead of it.
        routes = self.demo.app.router.routes
        api = [r for r in routes if getattr(r, "path", "").startswith("/api/")]
        rest = [r for r in routes if r not in api]
        routes[:] = api + rest

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            self.queue_service.close()


def create_studio(data_dir: str | os.PathLike | None = None, models: str | None = None,
                  engine_provider: Any = None, start_worker: bool = True, **service_kw: Any) -> Studio:
    from studio.jobs.service import QueueService
    from studio.ui.queue_adapter import QueueAdapter

    paths = DataPaths(resolve_data_dir(data_dir))
    store = SettingsStore(paths.settings_file)
    file_settings = store.load()
    overrides = {"models": ModelSet(models)} if models else {}
    settings = file_settings.model_copy(update=overrides)  # flags apply to this run; never saved
    holder = SettingsHolder(store, settings, overrides, file_settings)
    # Relative folders in Settings are inside the data directory; the worker gets them resolved.
    provider = lambda: _resolved(holder.current, paths)  # noqa: E731
    service = QueueService(paths, settings_provider=provider, engine_provider=engine_provider, **service_kw)
    services = Services(paths=paths, settings=holder, queue=QueueAdapter(service))
    gradio_tmp = services.gradio_temp_dir
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_tmp)  # before any component is built
    if start_worker:
        service.start()

    from studio.api import gradio_endpoints
    from studio.ui.app import build_app

    demo = build_app(services, gradio_endpoints(service))
    return Studio(services, service, demo, paths)


def _resolved(settings, paths: DataPaths):
    update = {}
    for name in ("output_dir", "lora_dir", "gradio_temp_dir", "postprocess_output_dir", "postprocess_temp_dir"):
        update[name] = str(paths.resolve(getattr(settings, name)))
    if settings.metadata_dir:
        update["metadata_dir"] = str(paths.resolve(settings.metadata_dir))
    return settings.model_copy(update=update)


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be user:password")
    return user, password
