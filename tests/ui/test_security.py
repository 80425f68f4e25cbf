"""The server only serves the outputs and job folders: traversal and absolute paths are refused.
(Host/Origin checks, the login, upload limits and the file allow-list: test_web_guard.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
import pytest

import app as app_main
from modules.media.video_io import write_video
from studio.limits import MAX_UPLOAD_BYTES
from studio.web.auth import parse_auth
from tests.conftest import make_test_frames
from tests.hang import HANG_S, wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = "top-secret-settings-marker"


@pytest.fixture(scope="module")
def served(studio):
    """A file in the outputs folder (must be served) and private files in the data dir (must not)."""
    video = write_video(studio.services.output_dir / "served.mp4", make_test_frames(4, 32, 32), fps=30)
    settings = studio.paths.settings_file
    if not settings.exists():
        settings.write_text(json.dumps({"system_prompt_template": SECRET}))
    secret_note = studio.paths.root / "private.txt"
    secret_note.write_text(SECRET)
    return {"video": video, "settings": settings, "db": studio.paths.queue_db, "note": secret_note}


def _get(base: str, path: str) -> httpx.Response:
    # Raw path: httpx must not normalise the `..` away before the server sees it.
    url = httpx.URL(base.rstrip("/") + "/").copy_with(raw_path=path.encode())
    return httpx.get(url, follow_redirects=False, timeout=HANG_S)


def _refused(r: httpx.Response) -> bool:
    return r.status_code in (400, 401, 403, 404, 405) and SECRET not in r.text and "root:" not in r.text


def test_outputs_are_served(studio, served):
    r = _get(studio.url, "/gradio_api/file=" + str(served["video"]))
    assert r.status_code == 200 and r.content[4:8] == b"ftyp"


@pytest.mark.parametrize("template", [
    "/gradio_api/file=../../../../../../etc/passwd",
    "/gradio_api/file=..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file={outputs}/../../../../../../etc/passwd",
    "/gradio_api/file={outputs}/../private.txt",
    "/gradio_api/file={outputs}/..%2Fprivate.txt",
    "/gradio_api/file={note}",
    "/gradio_api/file={settings}",
    "/gradio_api/file={db}",
    "/file=/etc/passwd",
    "/file={note}",
])
def test_file_route_refuses(studio, served, template):
    path = template.format(outputs=studio.services.output_dir, note=served["note"], settings=served["settings"],
                           db=served["db"])
    r = _get(studio.url, path)
    assert _refused(r), (path, r.status_code, r.text[:200])


def test_job_download_route_refuses_traversal(studio, media):
    svc = studio.queue_service
    svc.pause()
    try:
        job_id = svc.add({"prompt": "security", "start_image": str(media["start"]), "width": 64, "height": 64})
        svc.cancel(job_id)
        for name in ("../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
                     "..%2F..%2Fsettings.json", "%2E%2E", "..%5C..%5Csettings.json"):
            r = _get(studio.url, f"/api/jobs/{job_id}/files/{name}")
            assert _refused(r), (name, r.status_code, r.text[:200])
        r = _get(studio.url, "/api/jobs/" + urllib.parse.quote("../../etc", safe="") + "/files/passwd")
        assert _refused(r)
        svc.remove(job_id)
    finally:
        svc.resume()


def test_served_folders_and_mount_options(studio):
    _, mount_options = studio.gradio_ui().build()
    allowed = set(mount_options["allowed_paths"])
    assert allowed == {str(studio.services.output_dir), str(studio.services.post_output_dir),
                       str(studio.paths.jobs_dir), str(studio.paths.kept_inputs_dir), str(studio.services.thumbs_dir),
                       str(studio.services.post_temp_dir), str(studio.paths.root / "exports"),
                       str(studio.services.gradio_temp_dir)}
    assert {str(p) for p in studio.served_folders()} == allowed
    # never the data directory itself (settings, queue.db, LoRAs) nor the folder above it
    assert not any(studio.paths.root.is_relative_to(p) for p in map(Path, allowed))
    assert str(studio.paths.root) not in allowed
    assert studio.demo.max_file_size == MAX_UPLOAD_BYTES  # applied by mount_gradio_app: the one limit


def test_flags_default_to_localhost_and_parse_auth(monkeypatch):
    args = app_main.parse_args([])
    assert args.listen == "127.0.0.1" and args.port == 7860 and not args.share
    assert app_main.parse_args(["--listen"]).listen == "0.0.0.0"
    assert app_main.parse_args(["--models", "tiny", "--data-dir", "/x"]).models == "tiny"
    assert parse_auth("me:secret") == ("me", "secret")
    assert parse_auth(None) is None
    for bad in ("nocolon", ":pw", "user:"):
        with pytest.raises(ValueError):
            parse_auth(bad)


def test_app_py_starts_on_localhost_with_env_auth(tmp_path):
    """The real entry point: `python app.py --models tiny --data-dir ... --port ...` with FP_STUDIO_AUTH."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FP_STUDIO_AUTH": "me:pw", "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("GRADIO_TEMP_DIR", None)
    log = (tmp_path / "app.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--models", "tiny", "--data-dir",
                             str(tmp_path / "data"), "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def answer() -> list[httpx.Response]:
        """The first answer of the server (a list, so it is truthy), [] while it is not listening yet."""
        try:
            return [httpx.get(base + "/api/jobs", timeout=HANG_S)]
        except httpx.TransportError:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-2000:]  # it died: no point waiting
            return []

    try:
        (r,) = wait_until(answer, interval=0.5,
                          describe=lambda: "app.py did not start\n" + (tmp_path / "app.log").read_text()[-2000:])
        assert r.status_code == 401
        for path in ("/gradio_api/info", "/openapi.json", "/docs"):
            assert httpx.get(base + path, timeout=HANG_S).status_code == 401, path
        with httpx.Client(base_url=base, timeout=HANG_S) as c:
            assert c.post("/login", data={"username": "me", "password": "wrong"}).status_code >= 400
            assert c.post("/login", data={"username": "me", "password": "pw"}).status_code == 200
            assert c.get("/api/jobs").json() == {"jobs": []}
            assert c.get("/").status_code == 200
            assert c.get("/openapi.json").status_code == 200
            # The one server answers only to its own names and origin.
            assert c.get("/api/jobs", headers={"host": f"evil.example:{port}"}).status_code == 403
            assert c.post("/api/queue/pause", headers={"origin": f"http://localhost:{port + 1}"}).status_code == 403
        # Served on the loopback interface only (no --listen): another local address is refused.
        try:
            other = socket.gethostbyname(socket.gethostname())
        except OSError:
            other = None
        if other and not other.startswith("127."):
            # Short on purpose: nothing listens there, so the connection is refused at once (or, behind a
            # filter that drops it, times out); either is the TransportError this asserts.
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://{other}:{port}/", timeout=5)
    finally:
        proc.terminate()
        try:
            proc.wait(HANG_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
