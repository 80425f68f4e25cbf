"""The web server's guards over real HTTP (uvicorn on 127.0.0.1): Host and Origin checks, JSON-only job
routes, the login, upload limits enforced while a body streams in, the served-file allow-list, and one
answer for every input path outside the data directory.

Browser tests at the end: a hostile page served from another localhost port tries to drive the studio.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from modules.media.video_io import write_video
from studio.jobs.files import OUTSIDE_ROOTS_MESSAGE
from studio.limits import MAX_UPLOAD_BYTES
from studio.web.auth import COOKIE
from tests.conftest import make_test_frames
from tests.hang import HANG_S
from tests.ui.conftest import TINY

EVIL = "http://evil.example"
SMALL_LIMIT = 1024 * 1024  # the upload limit of the `small_limit` server


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _other_port_origin(url: str) -> str:
    """Another port on the same host: same site for the browser (cookies go along), another origin."""
    port = urlsplit(url).port
    return f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}"


@contextmanager
def _queue_unchanged(service):
    """Asserts that the block changed no job (added, removed, cancelled) and did not pause or resume."""
    before = [(j.id, j.status) for j in service.list()]
    paused = service.paused
    yield
    assert [(j.id, j.status) for j in service.list()] == before
    assert service.paused == paused


def _job(start_image: str | Path, prompt: str = "guard test") -> dict:
    return {"prompt": prompt, "start_image": str(start_image), **TINY}


# -- cross-origin requests and DNS rebinding ----------------------------------------------------------------

def _posts(url: str, media: dict) -> list[tuple[str, dict]]:
    """Every shape of cross-site write a browser can send without a preflight, plus a JSON one."""
    body = '{"prompt": "cross-site", "start_image": "%s"}' % media["start"]
    return [
        ("/api/jobs", {"content": body, "headers": {"content-type": "text/plain"}}),
        ("/api/jobs", {"data": {"prompt": "cross-site"}}),
        ("/api/jobs", {"content": body, "headers": {"content-type": "application/json"}}),
        ("/api/uploads", {"files": {"file": ("x.png", media["start"].read_bytes(), "image/png")}}),
        ("/api/queue/pause", {}),
        ("/api/queue/cancel-pending", {}),
        ("/api/queue/clear-finished", {}),
        ("/api/queue/import", {"files": {"file": ("q.json", b'{"jobs": []}', "application/json")}}),
        ("/gradio_api/queue/join", {"content": "{}", "headers": {"content-type": "text/plain"}}),
        ("/gradio_api/upload", {"files": {"files": ("x.png", media["start"].read_bytes(), "image/png")}}),
    ]


def _post_from(url: str, origin: str, path: str, kw: dict) -> httpx.Response:
    kw = {**kw, "headers": {**kw.get("headers", {}), "origin": origin}}
    return httpx.post(url.rstrip("/") + path, timeout=HANG_S, **kw)


def test_cross_origin_writes_are_refused(studio, media):
    svc = studio.queue_service
    uploads = studio.paths.api_uploads_dir
    uploads_before = sorted(uploads.iterdir()) if uploads.exists() else []
    origins = (EVIL, _other_port_origin(studio.url), "null")
    # With the worker paused, a pending and a cancelled job that cancel-pending / clear-finished would change.
    svc.pause()
    pending = svc.add(_job(media["start"], "guard: must stay pending"))
    finished = svc.add(_job(media["start"], "guard: must stay listed"))
    svc.cancel(finished)
    try:
        with _queue_unchanged(svc):
            for origin in origins:
                for path, kw in _posts(studio.url, media):
                    r = _post_from(studio.url, origin, path, kw)
                    assert r.status_code == 403, (origin, path, r.status_code, r.text[:200])
                    assert "access-control-allow-origin" not in r.headers
    finally:
        svc.remove(pending)
        svc.remove(finished)
        svc.resume()
    with _queue_unchanged(svc):  # running: a cross-site pause must not stop it
        for origin in origins:
            assert _post_from(studio.url, origin, "/api/queue/pause", {}).status_code == 403
        # No Origin, but the browser says another site started it.
        r = httpx.post(studio.url + "api/queue/pause", headers={"sec-fetch-site": "same-site"}, timeout=HANG_S)
        assert r.status_code == 403
    assert not svc.paused
    assert (sorted(uploads.iterdir()) if uploads.exists() else []) == uploads_before


def test_same_origin_and_non_browser_clients_pass(studio):
    svc = studio.queue_service
    own = _origin(studio.url)
    try:
        r = httpx.post(studio.url + "api/queue/pause", headers={"origin": own, "sec-fetch-site": "same-origin"},
                       timeout=HANG_S)
        assert r.status_code == 200 and r.json() == {"paused": True} and svc.paused
        r = httpx.post(studio.url + "api/queue/resume", timeout=HANG_S)  # curl and scripts send no Origin
        assert r.status_code == 200 and r.json() == {"paused": False} and not svc.paused
    finally:
        svc.resume()


@pytest.mark.parametrize("path", ["/", "/api/jobs", "/api/queue", "/gradio_api/info", "/config", "/openapi.json"])
def test_foreign_host_names_are_refused(studio, path):
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, so the page is 'same-origin' with its own
    name; the Host header still names the attacker's domain."""
    port = urlsplit(studio.url).port
    for host, origin in ((f"evil.example:{port}", None), (f"evil.example:{port}", f"http://evil.example:{port}"),
                         (f"localhost.evil.example:{port}", None)):
        headers = {"host": host, **({"origin": origin} if origin else {})}
        r = httpx.get(studio.url.rstrip("/") + path, headers=headers, timeout=HANG_S)
        assert r.status_code == 403, (host, path, r.status_code)
        assert "access-control-allow-origin" not in r.headers
        assert "jobs" not in r.text
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(studio.url.rstrip("/") + path, headers={"host": host}, timeout=HANG_S).status_code == 200


def test_cors_never_echoes_another_origin(studio):
    for method, path in (("GET", "api/jobs"), ("GET", "gradio_api/info"), ("GET", "config"),
                         ("OPTIONS", "api/jobs"), ("OPTIONS", "gradio_api/queue/join")):
        r = httpx.request(method, studio.url + path, timeout=HANG_S,
                          headers={"origin": EVIL, "access-control-request-method": "POST"})
        assert r.status_code == 403, (method, path, r.status_code)
        assert "access-control-allow-origin" not in r.headers, (method, path)


def test_extra_host_names_come_from_the_flag(monkeypatch):
    import app as app_main
    from studio.web.guard import HostPolicy

    assert app_main.host_list(app_main.parse_args(["--allowed-hosts", "studio.lan, gpu-box"]).allowed_hosts) == (
        "studio.lan", "gpu-box")
    policy = HostPolicy("127.0.0.1", ("studio.lan",))
    assert policy.allows("studio.lan:7860") and policy.allows("STUDIO.LAN")
    assert not policy.allows("studio.lan.evil.example") and not policy.allows("192.168.1.20:7860")
    # On all interfaces an address literal is this machine (it cannot be rebound); names still need the flag.
    assert HostPolicy("0.0.0.0").allows("192.168.1.20:7860") and not HostPolicy("0.0.0.0").allows("gpu-box")
    assert HostPolicy("192.168.1.20").allows("192.168.1.20:7860")


def test_job_routes_take_json_only(studio, media):
    with _queue_unchanged(studio.queue_service):
        for headers in ({"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"},
                        {"content-type": "multipart/form-data; boundary=x"}, {}):
            r = httpx.post(studio.url + "api/jobs", content=b'{"prompt": "x"}', headers=headers, timeout=HANG_S)
            assert r.status_code == 415, (headers, r.status_code, r.text)


# -- the login ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A second studio run with --auth me:pw and the output folder set to the data directory itself
    (FP_STUDIO_OUTPUT_DIR=.), no worker."""
    from studio.ui.server import create_studio
    from studio.web.app import WebOptions

    saved = os.environ.get("GRADIO_TEMP_DIR")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FP_STUDIO_OUTPUT_DIR", ".")
        st = create_studio(tmp_path_factory.mktemp("locked-data"), "tiny", start_worker=False)
    # create_studio points GRADIO_TEMP_DIR at its own data dir; the session studio keeps its own folder
    if saved is not None:
        os.environ["GRADIO_TEMP_DIR"] = saved
    st.serve(WebOptions(port=0, auth=("me", "pw")))
    yield st
    st.close()


@contextmanager
def _login(url: str):
    with httpx.Client(base_url=url, timeout=HANG_S) as c:
        r = c.post("/login", data={"username": "me", "password": "pw"})
        assert r.status_code == 200 and r.json() == {"success": True}
        yield c


@pytest.mark.parametrize("path", ["/api/jobs", "/api/queue", "/openapi.json", "/docs", "/redoc", "/config",
                                  "/gradio_api/info", "/gradio_api/openapi.json"])
def test_everything_needs_the_login(locked, path):
    r = httpx.get(locked.url.rstrip("/") + path, timeout=HANG_S)
    assert r.status_code == 401, (path, r.status_code)
    assert "jobs" not in r.text and "paths" not in r.text
    with _login(locked.url) as c:
        assert c.get(path).status_code == 200, path


def test_login_cookie_and_pages(locked):
    page = httpx.get(locked.url, headers={"accept": "text/html"}, timeout=HANG_S)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert 'name="password"' in httpx.get(locked.url + "login", timeout=HANG_S).text
    with httpx.Client(base_url=locked.url, timeout=HANG_S) as c:
        bad = c.post("/login", data={"username": "me", "password": "wrong"})
        assert bad.status_code == 401 and COOKIE not in c.cookies
        huge = c.post("/login", data={"username": "me", "password": "x" * 100_000})  # open to all: kept small
        assert huge.status_code == 413
        r = c.post("/login", data={"username": "me", "password": "pw"}, headers={"accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"].lower()
        assert "samesite=strict" in cookie and "httponly" in cookie and "path=/" in cookie
        assert c.get("/", headers={"accept": "text/html"}).status_code == 200
        # Logged in is not enough: another origin's request is still refused, and so is a login from one.
        assert c.post("/api/queue/pause", headers={"origin": _other_port_origin(locked.url)}).status_code == 403
        assert not locked.queue_service.paused
        r = c.post("/login", data={"username": "me", "password": "pw"}, headers={"origin": EVIL})
        assert r.status_code == 403
        assert c.get("/logout").status_code == 303
        assert c.get("/api/jobs").status_code == 401


def test_gradio_client_logs_in(locked):
    from gradio_client import Client

    client = Client(locked.url, auth=("me", "pw"), verbose=False, analytics_enabled=False, download_files=False)
    assert client.predict(api_name="/list_jobs") == []
    with pytest.raises(Exception):
        Client(locked.url, auth=("me", "wrong"), verbose=False, analytics_enabled=False)


# -- served files -------------------------------------------------------------------------------------------

def test_files_by_allow_list_with_output_folder_as_data_dir(locked):
    root = locked.paths.root
    assert locked.services.output_dir == root  # FP_STUDIO_OUTPUT_DIR=.
    locked.queue_service.add(_job(_an_image(root / "inputs" / "in.png"), "secret prompt in the database"))
    private = {
        "queue.db-wal": None, "queue.db-shm": None, "queue.db": None,
        "queue.db.bak-20260101-000000": b"secret prompt in the database",
        "queue.db.worker.lock": b"1234", "settings.json": b'{"system_prompt_template": "secret"}',
        "queue.json": b'{"jobs": [{"prompt": "secret"}]}', "presets/Original/mine.json": b'{"prompt": "secret"}',
        "loras/style.safetensors": b"\0" * 16, ".hidden.mp4": b"\0" * 16, "notes.txt": b"secret",
    }
    for name, content in private.items():
        p = root / name
        if content is not None:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content)
        assert p.exists(), name
    video = write_video(root / "clip.mp4", make_test_frames(4, 32, 32), fps=30)
    export = locked.paths.exports_dir / "queue-1.zip"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with _login(locked.url) as c:
        for name in private:
            r = c.get("/gradio_api/file=" + str(root / name))
            assert r.status_code == 403, (name, r.status_code)
            assert b"secret" not in r.content
        r = c.get("/gradio_api/file=" + str(video))
        assert r.status_code == 200 and r.content[4:8] == b"ftyp"
        assert c.get("/gradio_api/file=" + str(export)).status_code == 200
        for other in ("/gradio_api/file=" + EVIL + "/x.png", "/gradio_api/proxy=" + EVIL + "/x.png",
                      "/gradio_api/file=clip.mp4", "/gradio_api/file/" + str(root / "queue.db-wal")):
            assert c.get(other).status_code == 403, other


def _an_image(dest: Path) -> Path:
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(dest)
    return dest


def test_input_paths_outside_the_data_dir_get_one_answer(studio, tmp_path):
    """Missing, unreadable and readable files outside the data directory (and a link inside pointing out)
    are told apart by nothing: the location is checked before any file is opened."""
    unreadable = tmp_path / "unreadable.png"
    unreadable.write_text("not an image")
    link = studio.paths.root / "inputs" / "link-out.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(_an_image(tmp_path / "readable.png"))
    answers = set()
    with _queue_unchanged(studio.queue_service):
        for path in (tmp_path / "missing.png", unreadable, tmp_path / "readable.png", tmp_path, link,
                     "/etc/passwd"):
            r = httpx.post(studio.url + "api/jobs", json=_job(path), timeout=HANG_S)
            assert r.status_code == 422, (path, r.text)
            answers.add(r.text.replace(str(path), "<path>"))
    assert len(answers) == 1, answers
    assert OUTSIDE_ROOTS_MESSAGE in answers.pop()


# -- upload limits -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_limit(tmp_path_factory):
    """The API alone (no UI), served with a 1 MiB upload limit."""
    from studio.jobs.service import QueueService
    from studio.paths import DataPaths
    from studio.settings import Settings
    from studio.web.app import WebOptions, create_web_app
    from studio.web.serve import WebServer

    paths = DataPaths(tmp_path_factory.mktemp("small-limit-data"))
    service = QueueService(paths, settings_provider=Settings)
    server = WebServer(create_web_app(service, WebOptions(port=0, max_upload_bytes=SMALL_LIMIT)), "127.0.0.1", 0)
    server.start()
    yield server, service
    server.stop()
    service.close()


def _answer_before_body_ends(url: str, path: str, head: dict[str, str], body_start: bytes) -> int:
    """Sends the request line, headers and the start of a body that never ends; returns the status the server
    answers with while it is still waiting for the rest (a server that reads the whole body first would
    never answer: the socket timeout, the hang limit, fails the test)."""
    parts = urlsplit(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in head.items()), "", ""]
    with socket.create_connection((parts.hostname, parts.port), timeout=HANG_S) as sock:
        sock.sendall("\r\n".join(lines).encode() + body_start)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, "connection closed without an answer"
            answer += chunk
    return int(answer.split(b" ", 2)[1])


MULTIPART_HEAD = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
                  b"Content-Type: video/mp4\r\n\r\n")


@pytest.mark.parametrize("path", ["/api/uploads", "/api/queue/import", "/gradio_api/upload"])
def test_content_length_over_the_limit_is_refused_before_the_body(studio, path):
    assert studio.demo.max_file_size == MAX_UPLOAD_BYTES  # Gradio's own limit is the same one
    head = {"Content-Type": "multipart/form-data; boundary=xyz", "Content-Length": str(MAX_UPLOAD_BYTES + 2**20)}
    assert _answer_before_body_ends(studio.url, path, head, MULTIPART_HEAD) == 413


@pytest.mark.parametrize("path", ["/api/uploads", "/api/queue/import"])
def test_streamed_body_over_the_limit_is_refused_while_it_streams(small_limit, path):
    server, service = small_limit
    data = MULTIPART_HEAD + b"\0" * (SMALL_LIMIT + 128 * 1024)
    chunked = f"{len(data):x}\r\n".encode() + data + b"\r\n"  # one chunk, and no last chunk: the body goes on
    head = {"Content-Type": "multipart/form-data; boundary=xyz", "Transfer-Encoding": "chunked"}
    assert _answer_before_body_ends(server.url, path, head, chunked) == 413
    uploads = service.paths.api_uploads_dir
    assert not uploads.exists() or not any(uploads.iterdir())
    assert service.list() == []


def test_uploads_under_the_limit_pass(small_limit, media):
    server, service = small_limit
    r = httpx.post(server.url + "api/uploads", timeout=HANG_S,
                   files={"file": ("start.png", media["start"].read_bytes(), "image/png")})
    assert r.status_code == 201 and Path(r.json()["path"]).is_relative_to(service.paths.root)
    r = httpx.post(server.url + "api/jobs", json={"prompt": "x" * (5 * 2**20)}, timeout=HANG_S)
    assert r.status_code == 413  # job parameters have their own small limit


# -- in the browser: a hostile page on another localhost port ------------------------------------------------

HOSTILE_PAGE = """<!doctype html><title>working</title><script>
const studio = %(studio)r;
const job = JSON.stringify({prompt: "from a hostile page", start_image: %(image)r});
const shots = [
  fetch(studio + "api/jobs", {method: "POST", mode: "no-cors", credentials: "include", body: job}),
  fetch(studio + "api/jobs", {method: "POST", mode: "no-cors", credentials: "include", body: job,
                              headers: {"Content-Type": "text/plain"}}),
  fetch(studio + "api/queue/pause", {method: "POST", mode: "no-cors", credentials: "include"}),
  fetch(studio + "api/queue/cancel-pending", {method: "POST", mode: "no-cors", credentials: "include"}),
  fetch(studio + "api/jobs", {credentials: "include"}).then(r => r.text()).then(t => { window.stolen = t; }),
];
Promise.allSettled(shots).then(results => {
  window.outcomes = results.map(r => r.status);
  document.title = "done";
});
</script>"""


@contextmanager
def _hostile_site(studio_url: str, image: Path):
    """A page served from another port of 127.0.0.1 that fires cross-origin requests at the studio."""
    page = (HOSTILE_PAGE % {"studio": studio_url, "image": str(image)}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):  # keep pytest's output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _fire(page: Page, hostile_url: str) -> None:
    page.goto(hostile_url)
    expect(page).to_have_title("done")  # every request has been answered (or refused)
    assert page.evaluate("window.stolen") is None  # the read was blocked: no CORS header for that origin


@pytest.mark.browser
def test_hostile_page_cannot_drive_the_studio(page: Page, studio, media):
    svc = studio.queue_service
    image = studio.paths.root / "inputs" / "hostile.png"
    _an_image(image)
    with _queue_unchanged(svc), _hostile_site(studio.url, image) as hostile:
        assert urlsplit(hostile).port != urlsplit(studio.url).port
        _fire(page, hostile)
    assert not any(j.title.startswith("from a hostile") for j in svc.list())
    # The same request from the studio's own page goes through: the refusal was about the origin.
    page.goto(studio.url)
    try:
        status = page.evaluate("fetch('api/queue/pause', {method: 'POST'}).then(r => r.status)")
        assert status == 200 and svc.paused
    finally:
        svc.resume()


@pytest.mark.browser
def test_hostile_page_cannot_use_a_logged_in_session(page: Page, locked):
    page.goto(locked.url)
    expect(page).to_have_url(locked.url + "login")
    page.locator("#username").fill("me")
    page.locator("#password").fill("pw")
    page.locator("#login").click()
    expect(page.locator("#fp-header")).to_contain_text("Pending")  # the studio itself, logged in
    image = locked.paths.root / "inputs" / "hostile.png"
    _an_image(image)
    with _queue_unchanged(locked.queue_service), _hostile_site(locked.url, image) as hostile:
        _fire(page, hostile)
    assert not locked.queue_service.paused
