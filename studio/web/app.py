"""The one web app: the /api routes and, when a UI is given, the Gradio Blocks mounted at / — one FastAPI
app, one login, one Host/Origin guard, one upload limit.

Request path, outermost first:
    HostOriginGuard   foreign Host or another origin's request -> 403            (studio/web/guard.py)
    LoginRequired     with --auth: no session -> 401, or 303 to /login for pages  (studio/web/auth.py)
    FileRouteGuard    Gradio's file routes serve allow-listed files only          (studio/web/files.py)
    body limit        a body over the upload limit -> 413 while it streams in (FastAPI max_body_size)
    routes            /login, /api/..., /docs, then Gradio's own routes
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from studio.api import create_router
from studio.api_errors import register_error_handlers
from studio.jobs.service import QueueService
from studio.limits import MAX_UPLOAD_BYTES, MULTIPART_OVERHEAD_BYTES
from studio.web.auth import LoginRequired, SessionAuth
from studio.web.files import FileRouteGuard, ServedFiles
from studio.web.guard import HostOriginGuard, HostPolicy

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 7860


class WebOptions(BaseModel):
    """How the server is exposed (from app.py's flags)."""

    model_config = ConfigDict(frozen=True)

    listen: str = DEFAULT_LISTEN
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)  # 0: any free port (tests)
    auth: tuple[str, str] | None = None
    allowed_hosts: tuple[str, ...] = ()  # extra Host names (LAN name, reverse proxy, share link)
    max_upload_bytes: int = Field(MAX_UPLOAD_BYTES, gt=0)


@dataclass
class GradioUI:
    """What the Studio hands over to be mounted at /."""

    demo: Any  # gr.Blocks
    served: ServedFiles
    mount_options: dict[str, Any] = field(default_factory=dict)  # theme, css, allowed_paths, ...


def create_web_app(service: QueueService, options: WebOptions, ui: GradioUI | None = None) -> FastAPI:
    auth = SessionAuth(*options.auth) if options.auth else None
    app = FastAPI(title="FP-Studio", max_body_size=options.max_upload_bytes + MULTIPART_OVERHEAD_BYTES)
    register_error_handlers(app)
    if auth is not None:
        app.include_router(auth.router())
    app.include_router(create_router(service, max_upload_bytes=options.max_upload_bytes))
    if ui is not None:
        import gradio as gr

        ui.demo.queue(default_concurrency_limit=4)
        gr.mount_gradio_app(app, ui.demo, path="/", server_name=options.listen, server_port=options.port,
                            auth_dependency=auth.user if auth else None, max_file_size=options.max_upload_bytes,
                            **ui.mount_options)
        app.add_middleware(FileRouteGuard, served=ui.served)
    if auth is not None:
        app.add_middleware(LoginRequired, auth=auth)
    app.add_middleware(HostOriginGuard, policy=HostPolicy(options.listen, options.allowed_hosts))
    return app
