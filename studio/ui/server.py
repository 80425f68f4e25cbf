"""Wiring: settings -> queue service + worker -> Gradio app -> the one web app and its server (used by app.py
and the tests)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules.models.registry import ModelSet
from studio.paths import DataPaths, resolve_data_dir
from studio.settings import SettingsStore
from studio.ui.services import Services, SettingsHolder

if TYPE_CHECKING:
    from studio.web.app import GradioUI, WebOptions
    from studio.web.serve import WebServer

log = logging.getLogger(__name__)


@dataclass
class Studio:
    services: Services
    queue_service: Any
    demo: Any
    paths: DataPaths
    upload_dir: Path | None = None  # Gradio's upload folder, fixed when the app was built
    server: WebServer | None = None  # once serving
    url: str | None = None

    def served_folders(self) -> list[Path]:
        """The folders whose media the web server may hand out (studio/web/files.py decides per file): the
        outputs and job folders, the app's display scratch (gallery thumbnails, post-processing results,
        queue exports) and Gradio's upload folder. Never the data directory as a whole."""
        s = self.services
        folders = {s.output_dir, s.post_output_dir, self.paths.jobs_dir, s.thumbs_dir, s.post_temp_dir,
                   self.paths.exports_dir, self.upload_dir or s.gradio_temp_dir}
        return sorted(folders)

    def gradio_ui(self) -> GradioUI:
        """The UI as create_web_app mounts it. Gradio serves only allowed paths, its upload folder and the
        system temp folder, and a data dir elsewhere (Docker: /data) is none of those, hence allowed_paths."""
        from studio.ui.app import CSS, theme_for
        from studio.web.app import GradioUI
        from studio.web.files import ServedFiles

        s = self.services
        allowed = [str(p) for p in self.served_folders()]
        options = {"allowed_paths": allowed, "theme": theme_for(s.settings.current.theme), "css": CSS,
                   "footer_links": [], "show_error": True}
        return GradioUI(self.demo, ServedFiles(self.served_folders, self.paths.root), options)

    def web_server(self, options: WebOptions | None = None) -> WebServer:
        """The web app (UI + /api) on a server that is not started yet."""
        from studio.web.app import WebOptions, create_web_app
        from studio.web.serve import WebServer

        options = options or WebOptions()
        app = create_web_app(self.queue_service, options, self.gradio_ui())
        self.server = WebServer(app, options.listen, options.port)
        return self.server

    def serve(self, options: WebOptions | None = None) -> str:
        """Serves on a background thread (tests); returns the URL."""
        self.url = self.web_server(options).start()
        return self.url

    def close(self) -> None:
        try:
            self.demo.close(verbose=False)  # Gradio's queue first: no new events while the server stops
            if self.server is not None:
                self.server.stop()
        finally:
            self.queue_service.close()


def create_studio(data_dir: str | os.PathLike | None = None, models: str | None = None,
                  engine_provider: Any = None, start_worker: bool = True, **service_kw: Any) -> Studio:
    from studio.jobs.service import QueueService

    paths = DataPaths(resolve_data_dir(data_dir))
    store = SettingsStore(paths.settings_file)
    file_settings = store.load()
    overrides = {"models": ModelSet(models)} if models else {}
    settings = file_settings.model_copy(update=overrides)  # flags apply to this run; never saved
    holder = SettingsHolder(store, settings, overrides, file_settings)
    # Relative folders in Settings are inside the data directory; the worker gets them resolved.
    provider = lambda: paths.resolved_settings(holder.current)  # noqa: E731
    service = QueueService(paths, settings_provider=provider, engine_provider=engine_provider, **service_kw)
    services = Services(paths=paths, settings=holder, queue=service)
    gradio_tmp = services.gradio_temp_dir
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_tmp)  # before any component is built
    if start_worker:
        service.start()

    from studio.api import gradio_endpoints
    from studio.ui.app import build_app

    demo = build_app(services, gradio_endpoints(service))
    return Studio(services, service, demo, paths, upload_dir=gradio_tmp)

