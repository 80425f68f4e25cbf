"""The Gradio UI at /, built after the server already answers.

Importing gradio and building the Blocks takes most of the start-up (about 2 s of 3 on two cores, mostly
gradio's own import), while the queue worker, the /api routes and the login need none of it. So the server
starts first: until the UI is ready, a page request to / gets a small "starting" page (naming the step) that
reloads itself as soon as the interface is there, any other request under / gets 503 with Retry-After; then
every request goes to the UI, mounted with `gr.mount_gradio_app` on an inner FastAPI app whose lifespan
(Gradio's queue and startup events) runs inside the outer app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.types import Receive, Scope, Send

from studio.web.files import ServedFiles

log = logging.getLogger(__name__)

CONCURRENT_UI_EVENTS = 4  # Gradio events handled at once (each tab's handlers are short or report progress)
RELOAD_S = 1  # Retry-After for the interface's other routes while it starts
POLL_MS = 200  # the starting page asks this often whether the interface is there
STARTING_ID = "fp-starting"  # the starting page's message element: a page without it is the interface

# The starting page asks for / until the answer is no longer itself, then reloads into it: the interface shows
# about POLL_MS after it is ready (a reload each second cost up to a second more). Gradio needs JavaScript anyway.
_POLL_JS = """<script>
(function poll() {
  setTimeout(function () {
    fetch(location.href, {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (text) {
      if (text.indexOf('id="%s"') < 0) { location.reload(); } else { poll(); }
    }, poll);
  }, %d);
})();
</script>""" % (STARTING_ID, POLL_MS)


@dataclass
class GradioUI:
    """What the Studio hands over to be mounted at /: the files it may serve (known at once) and how to build
    the Blocks and their mount options (slow: run on a thread while the server answers)."""

    build: Callable[[], tuple[Any, dict[str, Any]]]  # -> (gr.Blocks, mount_gradio_app keyword arguments)
    served: ServedFiles


@dataclass
class DeferredUI:
    """An ASGI app: the starting page until `start()` has built and started the UI, then the UI."""

    ui: GradioUI
    mount_kw: dict[str, Any] = field(default_factory=dict)  # server name/port, auth dependency, upload limit
    _app: FastAPI | None = None
    _error: str | None = None
    _ready: threading.Event = field(default_factory=threading.Event)  # set when ready or failed

    def wait_ready(self, timeout: float | None = None) -> None:
        """Blocks until the UI serves (tests, `Studio.serve`); raises if building it failed."""
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the interface was not ready within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"the interface failed to start: {self._error}")

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """The outer app's lifespan: builds the UI in the background, runs its lifespan until shutdown."""
        stopping = asyncio.Event()
        self._ready.clear()
        task = asyncio.create_task(self._run(stopping))
        try:
            yield
        finally:
            stopping.set()
            await task

    async def _run(self, stopping: asyncio.Event) -> None:
        try:
            app = await asyncio.to_thread(self._build)  # CPU-bound import and build: the loop keeps serving
            async with app.router.lifespan_context(app):  # Gradio's queue and startup events
                self._app = app
                self._ready.set()
                log.info("interface ready")
                await stopping.wait()
                self._app = None  # stopped with its lifespan; a new lifespan builds it again
        except Exception as exc:  # the API and the worker go on; the page says why the UI is missing
            log.exception("building the interface failed")
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    def _build(self) -> FastAPI:
        import gradio as gr

        demo, options = self.ui.build()
        demo.queue(default_concurrency_limit=CONCURRENT_UI_EVENTS)
        inner = FastAPI()
        gr.mount_gradio_app(inner, demo, path="/", **self.mount_kw, **options)
        return inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is not None:
            await self._app(scope, receive, send)
        elif scope["type"] == "http":
            await self._not_ready(scope)(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later

    def _not_ready(self, scope: Scope) -> HTMLResponse | PlainTextResponse:
        if self._error is not None:
            body = f"The interface failed to start: {self._error}. The log has the details."
            if scope["path"] == "/":
                return HTMLResponse(_page(body, reload=False), status_code=500)
            return PlainTextResponse(body, status_code=500)
        if scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            return HTMLResponse(_page("Starting: loading the interface…", reload=True),
                                headers={"Cache-Control": "no-store"})
        return PlainTextResponse("The interface is starting.", status_code=503,
                                 headers={"Retry-After": str(RELOAD_S)})


def _page(message: str, reload: bool) -> str:
    poll = _POLL_JS if reload else ""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>FP-Studio</title></head>'
            f'<body style="font-family:sans-serif;margin:3em"><h2>FP-Studio</h2>'
            f'<p id="{STARTING_ID}">{html.escape(message)}</p>{poll}</body></html>')
