"""Wiring: settings -> queue service + worker -> Gradio app -> the one web app and its server (used by app.py
and the tests)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from modules.errors import format_errors
from modules.models.registry import ModelSet
from studio.captioning.service import CaptionService
from studio.paths import DataPaths, resolve_data_dir
from studio.settings import Settings, SettingsStore
from studio.ui.services import Services, SettingsHolder

if TYPE_CHECKING:
    from studio.web.app import WebOptions
    from studio.web.deferred_ui import GradioUI
    from studio.web.serve import WebServer

log = logging.getLogger(__name__)


@dataclass
class Studio:
    services: Services
    queue_service: Any
    paths: DataPaths
    upload_dir: Path | None = None  # Gradio's upload folder, fixed before the app is built
    server: WebServer | None = None  # once serving
    url: str | None = None
    _demo: Any = None
    _demo_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def demo(self) -> Any:
        """The Gradio Blocks, built on first use (seconds: gradio's import; the server answers before)."""
        with self._demo_lock:
            if self._demo is None:
                from studio.api import gradio_endpoints
                from studio.ui.app import build_app

                self._demo = build_app(self.services, gradio_endpoints(self.queue_service))
            return self._demo

    def served_folders(self) -> list[Path]:
        """The folders whose media the web server may hand out (studio/web/files.py decides per file): the
        outputs, job folders and the jobs' kept inputs, the app's display scratch (gallery thumbnails,
        post-processing results, queue exports) and Gradio's upload folder. Never the data directory as a whole."""
        s = self.services
        folders = {s.output_dir, s.post_output_dir, self.paths.jobs_dir, self.paths.kept_inputs_dir, s.thumbs_dir,
                   s.post_temp_dir, self.paths.exports_dir, self.upload_dir or s.gradio_temp_dir}
        return sorted(folders)

    def gradio_ui(self) -> GradioUI:
        """The UI as create_web_app mounts it. Gradio serves only allowed paths, its upload folder and the
        system temp folder, and a data dir elsewhere (Docker: /data) is none of those, hence allowed_paths."""
        from studio.web.deferred_ui import GradioUI
        from studio.web.files import ServedFiles

        return GradioUI(self._built_ui, ServedFiles(self.served_folders, self.paths.root))

    def _built_ui(self) -> tuple[Any, dict[str, Any]]:
        from studio.ui.app import CSS, theme_for

        options = {"allowed_paths": [str(p) for p in self.served_folders()],
                   "theme": theme_for(self.services.settings.current.theme), "css": CSS, "footer_links": [],
                   "show_error": True}
        return self.demo, options

    def web_server(self, options: WebOptions | None = None) -> WebServer:
        """The web app (UI + /api) on a server that is not started yet; the UI builds once it runs."""
        from studio.web.app import WebOptions, create_web_app
        from studio.web.serve import WebServer

        options = options or WebOptions()
        app = create_web_app(self.queue_service, options, self.gradio_ui(), self.services.captioner)
        self.server = WebServer(app, options.listen, options.port)
        return self.server

    def serve(self, options: WebOptions | None = None) -> str:
        """Serves on a background thread (tests); returns the URL once the UI is ready too."""
        self.url = self.web_server(options).start()
        self.server.app.state.ui.wait_ready()
        return self.url

    def close(self) -> None:
        try:
            if self._demo is not None:
                self._demo.close(verbose=False)  # Gradio's queue first: no new events while the server stops
            if self.server is not None:
                self.server.stop()
        finally:
            self.queue_service.close()


def create_studio(data_dir: str | os.PathLike | None = None, models: str | None = None,
                  engine_provider: Any = None, start_worker: bool = True, *, gpus: str | None = None,
                  workers: int | None = None, **service_kw: Any) -> Studio:
    """gpus / workers: the --gpus / --workers flags (this run only, never saved); ValueError names a bad one."""
    from studio.jobs.service import QueueService

    paths = DataPaths(resolve_data_dir(data_dir))
    store = SettingsStore(paths.settings_file)
    file_settings = store.load()
    flags = {"models": ModelSet(models) if models else None, "gpus": gpus, "workers": workers}
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:  # flags apply to this run; never saved
        settings = Settings.model_validate({**file_settings.model_dump(), **overrides})
    except ValidationError as exc:
        raise ValueError(format_errors(exc)[0]) from None
    holder = SettingsHolder(store, settings, overrides, file_settings)
    # Relative folders in Settings are inside the data directory; the worker gets them resolved.
    provider = lambda: paths.resolved_settings(holder.current)  # noqa: E731
    service = QueueService(paths, settings_provider=provider, engine_provider=engine_provider, **service_kw)
    captioner = CaptionService.for_pool(provider, service.workers)
    services = Services(paths=paths, settings=holder, queue=service, captioner=captioner)
    gradio_tmp = services.gradio_temp_dir
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_tmp)  # before any component is built
    if start_worker:
        try:
            service.start()  # ValueError when the gpus setting names a GPU that is not there
        except BaseException:
            service.close()
            raise
    return Studio(services, service, paths, upload_dir=gradio_tmp)

