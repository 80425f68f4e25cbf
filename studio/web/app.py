"""The one web app: the /api routes and, when a UI is given, the Gradio Blocks mounted at / — one FastAPI
app, one login, one Host/Origin guard, one upload limit. The UI is built after the server answers
(studio/web/deferred_ui.py): until then / is a self-reloading "starting" page.

Request path, outermost first:
    HostOriginGuard   foreign Host or another origin's request -> 403            (studio/web/guard.py)
    LoginRequired     with --auth: no session -> 401, or 303 to /login for pages  (studio/web/auth.py)
    FileRouteGuard    Gradio's file routes serve allow-listed files only          (studio/web/files.py)
    body limit        a body over the upload limit -> 413 while it streams in (FastAPI max_body_size)
    routes            /login, /api/..., /docs, then Gradio's own routes (or the starting page)
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from studio.api import create_router
from studio.api_errors import register_error_handlers
from studio.captioning.api import create_caption_router
from studio.captioning.service import CaptionService
from studio.jobs.service import QueueService
from studio.limits import MAX_UPLOAD_BYTES, MULTIPART_OVERHEAD_BYTES
from studio.web.auth import LoginRequired, SessionAuth
from studio.web.deferred_ui import DeferredUI, GradioUI
from studio.web.files import FileRouteGuard
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


def create_web_app(service: QueueService, options: WebOptions, ui: GradioUI | None = None,
                   captioner: CaptionService | None = None) -> FastAPI:
    """The app; with a UI, `app.state.ui` is its DeferredUI (built once the server runs: `wait_ready()`); with a
    captioner, the prompt helpers' routes (studio/captioning/api.py)."""
    auth = SessionAuth(*options.auth) if options.auth else None
    deferred = None
    if ui is not None:
        deferred = DeferredUI(ui, {"server_name": options.listen, "server_port": options.port,
                                   "auth_dependency": auth.user if auth else None,
                                   "max_file_size": options.max_upload_bytes})
    app = FastAPI(title="FP-Studio", max_body_size=options.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
                  lifespan=deferred.lifespan if deferred else None)
    app.state.ui = deferred
    register_error_handlers(app)
    if auth is not None:
        app.include_router(auth.router())
    app.include_router(create_router(service, max_upload_bytes=options.max_upload_bytes))
    if captioner is not None:
        app.include_router(create_caption_router(captioner, service.paths.root))
    if deferred is not None:
        app.mount("/", deferred)  # after the routes above: /login and /api match first
        app.add_middleware(FileRouteGuard, served=ui.served)
    if auth is not None:
        app.add_middleware(LoginRequired, auth=auth)
    app.add_middleware(HostOriginGuard, policy=HostPolicy(options.listen, options.allowed_hosts))
    return app
