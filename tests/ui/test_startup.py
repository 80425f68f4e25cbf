"""Start-up stays light: `python app.py` serves the first page without importing torch or the other heavy
libraries (about 870 MiB and seconds on 2 cores); a job, a post-processing operation or a model listing loads
them when it needs them.

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

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "spandrel", "diffusers", "transformers", "accelerate", "cv2", "safetensors")
TABS = ("Generate", "Queue", "Outputs", "Post-processing", "Settings")
LORA = "Startup-Probe_style.safetensors"

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
            page = httpx.get(f"http://127.0.0.1:{port}/", timeout=HANG_S)
            result = {"status": page.status_code, "page": page.text,
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
    (data / "loras").mkdir()
    (data / "loras" / LORA).write_bytes(b"\0" * 16)  # listed by name; never read while only listing
    report = data.parent / "startup-report.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(data), str(report), ",".join(HEAVY)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(report.read_text(encoding="utf-8"))
    assert "error" not in result, (result, proc.stderr[-4000:])
    return result


def test_first_page_is_served_with_all_tabs_and_the_lora_list(first_page):
    assert first_page["status"] == 200
    page = first_page["page"]
    missing = [tab for tab in TABS if f'"{tab}"' not in page]
    assert not missing, missing
    assert LORA in page  # the Generate tab's LoRA dropdown lists the folder's file


def test_start_up_imports_no_torch(first_page):
    assert first_page["loaded"] == []
