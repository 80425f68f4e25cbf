"""The starting page (studio/web/deferred_ui.py) turns into the interface by itself, in Debian's Chromium: the
build is held until the page shows that it is starting, then released; nobody reloads the page."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import Page, expect

from tests.hang import HANG_S

pytestmark = pytest.mark.browser


def test_the_starting_page_becomes_the_interface_by_itself(page: Page, tmp_path, keep_gradio_temp):
    import gradio as gr

    from studio.ui.server import create_studio
    from studio.web.app import WebOptions, create_web_app
    from studio.web.deferred_ui import GradioUI
    from studio.web.files import ServedFiles
    from studio.web.serve import WebServer

    st = create_studio(tmp_path / "data", "tiny", start_worker=False)
    release = threading.Event()

    def build():
        assert release.wait(HANG_S), "the test never released the build"
        with gr.Blocks() as demo:
            gr.Markdown("the studio itself", elem_id="built")
        return demo, {}

    app = create_web_app(st.queue_service, WebOptions(), GradioUI(build, ServedFiles(list, st.paths.root)))
    server = WebServer(app, "127.0.0.1", 0)
    try:
        page.goto(server.start())
        expect(page.locator("#fp-starting")).to_contain_text("Starting")
        release.set()
        expect(page.locator("#built")).to_contain_text("the studio itself")
        expect(page.locator("#fp-starting")).to_have_count(0)
    finally:
        release.set()
        server.stop()
        st.close()
