"""UI test fixtures: one real studio (tiny models, temp data dir) per session, Debian's Chromium for Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.conftest import GOLDEN_DIR, make_test_frames  # noqa: E402
from tests.hang import HANG_S  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-results" / "ui"

# Tiny job sizes: every generation in these tests costs seconds on a CPU.
TINY = {"width": 64, "height": 64, "total_seconds": 1, "latent_window_size": 3, "steps": 2}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        # Under CI a missing browser is a failure: a whole area of tests must never vanish silently.
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: Debian chromium is missing at {CHROMIUM} (scripts/test.sh installs it)")
        pytest.skip("Debian chromium not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Inputs for the forms: start/end images, a small 64x64 video, and a text file posing as a PNG."""
    from modules.media.video_io import write_video

    d = tmp_path_factory.mktemp("media")
    start = shutil.copy(GOLDEN_DIR / "start_image_64x64.png", d / "start.png")
    end = shutil.copy(GOLDEN_DIR / "end_image_64x64.png", d / "end.png")
    video = write_video(d / "source.mp4", make_test_frames(n=9, h=64, w=64), fps=30, crf=10)
    fake = d / "not_an_image.png"
    fake.write_text("this is not an image\n")
    return {"start": Path(start), "end": Path(end), "video": Path(video), "fake": fake}


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    """The real app on the tiny models with its worker: the one web app (UI + /api), served in-process by
    uvicorn on a free port of 127.0.0.1 (st.url)."""
    from studio.ui.server import create_studio
    from studio.web.app import WebOptions

    data = tmp_path_factory.mktemp("studio-data")
    st = create_studio(data, "tiny", poll_interval=0.2)
    st.serve(WebOptions(port=0))
    yield st
    st.close()


@pytest.fixture(autouse=True)
def _expect_waits_up_to_the_hang_limit():
    """Playwright's expect() waits for its condition; only a hang (tests/hang.py) fails it, never a slow machine
    (the CI box has 2 shared cores, maybe with a second test run beside this one)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=HANG_S * 1000)
    yield


@pytest.fixture()
def page(page):
    """pytest-playwright's page, whose actions (click, fill, goto, wait_for_function...) wait for their element
    or load up to the hang limit instead of Playwright's 30 s."""
    page.set_default_timeout(HANG_S * 1000)
    page.set_default_navigation_timeout(HANG_S * 1000)
    return page


@pytest.fixture()
def keep_gradio_temp():
    """create_studio points GRADIO_TEMP_DIR at its data dir; a second app in a test must not move the
    session app's upload folder, so the variable is put back afterwards."""
    saved = os.environ.get("GRADIO_TEMP_DIR")
    yield
    if saved is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved
