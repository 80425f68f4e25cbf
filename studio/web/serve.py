"""uvicorn serving one ASGI app: in the foreground (app.py: Ctrl+C and SIGTERM shut it down) or on a thread
(tests, and anything else that keeps running alongside it)."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 3  # handlers still running when shutdown starts get this long to finish
START_TIMEOUT_S = 120


class _Server(uvicorn.Server):
    async def shutdown(self, sockets=None) -> None:
        # Open pages hold event streams (Gradio's heartbeat) that never end on their own. Closing their
        # connections ends them cleanly; otherwise uvicorn waits out the grace period and cancels them
        # with an error per page.
        for connection in list(self.server_state.connections):
            connection.transport.close()
        await super().shutdown(sockets)


class WebServer:
    def __init__(self, app, host: str, port: int) -> None:
        self.app = app
        self.host = host
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
        self._server = _Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the chosen one when started with port 0)."""
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serves until Ctrl+C / SIGTERM."""
        self._server.run()

    def start(self) -> str:
        """Serves on a daemon thread; returns the URL once the server accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="web-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the web server did not start on {self.host}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start within {START_TIMEOUT_S} s")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
