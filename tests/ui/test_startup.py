"""Start-up stays light: `python app.py` answers at once (a starting page while the interface is built), then
serves the interface without importing torch or the other heavy libraries (about 870 MiB and seconds on 2
cores); a job, a post-processing operation or a model listing loads them when it needs them.

The app runs in a fresh subprocess (other tests' imports would fill this process's sys.modules), started
through app.main exactly as `python app.py --models tiny --data-dir ... --port 0` starts it. A probe thread in
that process waits for the listening socket, fetches the first page, writes what it saw (status, page, heavy
modules loaded) to a JSON file, then interrupts the server like Ctrl+C does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.hang import HANG_S
from tests.loras import write_lora

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "spandrel", "diffusers", "transformers", "accelerate", "cv2", "safetensors")
TABS = ("Generate", "Queue", "Outputs", "Post-processing", "Settings")
LORA = "Startup-Probe_style.safetensors"
JUNK = "Startup-Probe_junk.safetensors"

PROBE = textwrap.dedent("""
    import json, os, signal, sys, threading

    import httpx, psutil

    import app
    from tests.hang import HANG_S, wait_until

    data_dir, report, heavy = sys.argv[1], sys.argv[2], sys.argv[3].split(",")

    def listening_port():
        ports = [c.laddr.port for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        return ports[0] if ports else None

    def probe():
        try:
            port = wait_until(listening_port, lambda: "the server never listened")
            url = f"http://127.0.0.1:{port}/"
            first = httpx.get(url, timeout=HANG_S)

            def studio_page():  # the starting page reloads itself until the interface is built
                page = httpx.get(url, timeout=HANG_S)
                return page if page.status_code != 200 or "fp-starting" not in page.text else None

            page = wait_until(studio_page, lambda: "the interface never replaced the starting page")
            result = {"first_status": first.status_code, "first_page": first.text,
                      "status": page.status_code, "page": page.text,
                      "loaded": sorted(m for m in heavy if m in sys.modules)}
        except BaseException as exc:
            result = {"error": repr(exc)}
        with open(report, "w", encoding="utf-8") as fh:
            json.dump(result, fh)
        os.kill(os.getpid(), signal.SIGINT)  # uvicorn stops as on Ctrl+C; app.main then closes the studio

    threading.Thread(target=probe, daemon=True).start()
    sys.exit(app.main(["--models", "tiny", "--data-dir", data_dir, "--port", "0"]))
""")


@pytest.fixture(scope="module")
def first_page(tmp_path_factory) -> dict:
    """What the freshly started app served as its first page, and which heavy modules it had loaded then."""
    data = tmp_path_factory.mktemp("startup-data")
    # Listed and checked (header only, against the tiny transformer's config.json) without importing torch.
    write_lora(data / "loras" / LORA)
    (data / "loras" / JUNK).write_bytes(b"\0" * 16)
    report = data.parent / "startup-report.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(data), str(report), ",".join(HEAVY)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(report.read_text(encoding="utf-8"))
    assert "error" not in result, (result, proc.stderr[-4000:])
    return result


def test_the_first_answer_is_a_page(first_page):
    # The starting page (the interface is still being built) or already the interface.
    assert first_page["first_status"] == 200
    assert "fp-starting" in first_page["first_page"] or '"Generate"' in first_page["first_page"]


def test_first_page_is_served_with_all_tabs_and_the_lora_list(first_page):
    assert first_page["status"] == 200
    page = first_page["page"]
    missing = [tab for tab in TABS if f'"{tab}"' not in page]
    assert not missing, missing
    assert LORA in page  # the Generate tab's LoRA dropdown lists the folder's file
    assert f"Not offered: {JUNK}: not a valid safetensors file" in page  # and names the unusable one


def test_start_up_imports_no_torch(first_page):
    assert first_page["loaded"] == []
