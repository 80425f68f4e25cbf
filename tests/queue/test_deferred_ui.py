"""The server answers before the interface is built (studio/web/deferred_ui.py): a starting page at /, 503 for
the interface's other routes, the API working; then the interface; a failed build leaves the API running and
says why on the page."""

from __future__ import annotations

import contextlib
import threading

import pytest
from fastapi.testclient import TestClient

from studio.web.app import WebOptions, create_web_app
from studio.web.deferred_ui import GradioUI
from studio.web.files import ServedFiles
from tests.hang import HANG_S

HOST = "http://localhost:7860"


def _tiny_blocks():
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Markdown("the studio itself")
    return demo


@contextlib.contextmanager
def _released(event: threading.Event):
    """Whatever the test asserts, the build ends, so that the server can shut down."""
    try:
        yield
    finally:
        event.set()


def test_starting_page_then_the_interface(make_service):
    svc = make_service()  # with its worker: pausing it is a change made through the API
    release = threading.Event()

    def build():
        assert release.wait(HANG_S), "the test never released the build"
        return _tiny_blocks(), {}

    app = create_web_app(svc, WebOptions(), GradioUI(build, ServedFiles(list, svc.paths.root)))
    with TestClient(app, base_url=HOST) as c, _released(release):
        page = c.get("/")
        assert page.status_code == 200 and 'id="fp-starting"' in page.text
        assert "fetch(location.href" in page.text and page.headers["cache-control"] == "no-store"  # polls /
        other = c.get("/config")
        assert other.status_code == 503 and other.headers["retry-after"] == "1"
        assert c.post("/gradio_api/queue/join", json={}).status_code == 503
        # The API and the queue do not wait for the interface.
        assert c.get("/api/jobs").json() == {"jobs": []}
        assert c.post("/api/queue/pause").status_code == 200 and svc.paused
        # A foreign page still cannot drive it while it starts.
        assert c.get("/", headers={"host": "evil.example"}).status_code == 403

        release.set()
        app.state.ui.wait_ready(HANG_S)
        page = c.get("/")
        assert page.status_code == 200 and "fp-starting" not in page.text
        assert "the studio itself" in c.get("/config").text


def test_a_failed_build_says_why_and_keeps_the_api(make_service):
    svc = make_service(start=False)

    def build():
        raise ValueError("theme 'x' does not exist")

    app = create_web_app(svc, WebOptions(), GradioUI(build, ServedFiles(list, svc.paths.root)))
    with TestClient(app, base_url=HOST) as c:
        with pytest.raises(RuntimeError, match="theme 'x' does not exist"):
            app.state.ui.wait_ready(HANG_S)
        page = c.get("/")
        assert page.status_code == 500 and "theme &#x27;x&#x27; does not exist" in page.text
        assert "fetch(" not in page.text and "refresh" not in page.text  # no reload loop on a failure
        assert c.get("/config").status_code == 500
        assert c.get("/api/jobs").status_code == 200
