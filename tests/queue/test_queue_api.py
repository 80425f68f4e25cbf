"""HTTP API routes (FastAPI TestClient over a service with the fake engine)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from queue_helpers import wait_status
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.api import gradio_endpoints, mount_api
from studio.jobs.model import JobStatus


@pytest.fixture()
def image(data_image):
    """API tests name the copy inside the data directory (conftest's data_image)."""
    return data_image


def _p(image: Path, prompt: str, **kw) -> dict:
    return {"prompt": prompt, "start_image": str(image), "total_seconds": 2, "steps": 3, **kw}


def test_add_list_get_and_validation(api, image):
    svc, c = api
    r = c.post("/api/jobs", json=_p(image, "hello"))
    assert r.status_code == 201
    job_id = r.json()["id"]
    r = c.post("/api/jobs", json={"prompt": 1, "steps": 0, "nope": True})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"prompt", "steps", "nope"}
    r = c.post("/api/jobs", content=b"{broken", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    jobs = c.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in jobs] == [job_id] and jobs[0]["status"] == "PENDING"
    assert c.get("/api/jobs", params={"status": "COMPLETED"}).json()["jobs"] == []
    j = c.get(f"/api/jobs/{job_id}").json()
    assert j["params"]["prompt"] == "hello" and j["params"]["start_image"].startswith(str(svc.paths.kept_inputs_dir))
    assert c.get("/api/jobs/unknown").status_code == 404
    assert c.get("/api/queue").json()["pending"] == 1


def test_upload_and_paths_outside_the_data_dir(api, image, tmp_path):
    svc, c = api
    outside = tmp_path / "outside.png"
    outside.write_bytes(image.read_bytes())
    r = c.post("/api/jobs", json=_p(outside, "x"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "start_image"
    r = c.post("/api/uploads", files={"file": ("my photo.png", outside.read_bytes(), "image/png")})
    assert r.status_code == 201
    path = Path(r.json()["path"])
    assert path.is_relative_to(svc.paths.root) and path.suffix == ".png" and " " not in path.name
    assert c.post("/api/jobs", json=_p(path, "uploaded")).status_code == 201
    r = c.post("/api/uploads", files={"file": ("evil.png", b"<script>", "image/png")})
    assert r.status_code == 400
    assert len(list((svc.paths.root / "temp" / "api-uploads").iterdir())) == 1


def test_an_image_as_input_video_is_refused(api, image, small_video):
    """POST /api/jobs: the same input checker as the UI, naming the field in a sentence."""
    svc, c = api
    r = c.post("/api/jobs", json={"prompt": "x", "generation_type": "Video", "input_video": str(image)})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "input_video", "message": "start.png is an image, not a video"}]
    video = image.with_name("clip.mp4")
    video.write_bytes(small_video.read_bytes())
    r = c.post("/api/jobs", json=_p(video, "x"))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "start_image", "message": "clip.mp4 is a video, not an image"}]
    assert svc.list() == []


def test_run_download_cancel_retry(api, image):
    svc, c = api
    job_id = c.post("/api/jobs", json=_p(image, "run me")).json()["id"]
    svc.start()
    wait_status(svc, job_id, JobStatus.COMPLETED)
    j = c.get(f"/api/jobs/{job_id}").json()
    name = Path(j["output_video"]).name
    r = c.get(f"/api/jobs/{job_id}/files/{name}")
    assert r.status_code == 200 and r.content == Path(j["output_video"]).read_bytes()
    assert c.get(f"/api/jobs/{job_id}/preview").status_code == 200
    # anything that is not one of the job's own files is refused
    for bad in ("..%2F..%2Fsettings.json", "%2Fetc%2Fpasswd", "%2E%2E", "queue.db", "start_image.png"):
        assert c.get(f"/api/jobs/{job_id}/files/{bad}").status_code == 404, bad
    r = c.get(f"/api/jobs/{job_id}/files/../../../etc/passwd")  # normalised by the client: not a file route
    assert r.status_code == 404 and b"root:" not in r.content
    assert c.post(f"/api/jobs/{job_id}/cancel").status_code == 409
    assert c.post(f"/api/jobs/{job_id}/retry").status_code == 409
    svc.pause()
    other = c.post("/api/jobs", json=_p(image, "cancel me")).json()["id"]
    r = c.post(f"/api/jobs/{other}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    assert c.post(f"/api/jobs/{other}/retry").json()["status"] == "PENDING"
    dup = c.post(f"/api/jobs/{other}/duplicate").json()["id"]
    assert c.post(f"/api/jobs/{dup}/move", params={"direction": "up"}).json()["ok"]
    assert [j["id"] for j in c.get("/api/jobs", params={"status": "PENDING"}).json()["jobs"]] == [dup, other]
    assert c.post("/api/queue/cancel-pending").json()["cancelled"] == 2
    assert c.post("/api/queue/clear-finished").json()["removed"] == 3
    assert c.get("/api/jobs").json()["jobs"] == []


def test_export_import_routes(api, image):
    svc, c = api
    c.post("/api/jobs", json=_p(image, "exported"))
    r = c.get("/api/queue/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert "jobs.json" in zf.namelist()
    r2 = c.post("/api/queue/import", files={"file": ("q.zip", r.content, "application/zip")})
    assert r2.status_code == 200 and len(r2.json()["added"]) == 1
    bad = c.post("/api/queue/import", files={"file": ("q.json", b"{oops", "application/json")})
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["detail"]
    assert len(c.get("/api/jobs").json()["jobs"]) == 2


def test_gradio_endpoint_functions(make_service, fake_engine, image):
    svc = make_service(fake_engine, start=False)
    fns = gradio_endpoints(svc)
    job_id = fns["add_job"](json.dumps(_p(image, "g")))
    with pytest.raises(Exception, match="steps"):
        fns["add_job"](json.dumps({"steps": -1}))
    assert fns["get_job"](job_id)["status"] == "PENDING"
    assert [j["id"] for j in fns["list_jobs"]()] == [job_id]
    assert fns["cancel_job"](job_id) and fns["retry_job"](job_id)
    # Like POST /api/jobs: a file outside the data directory is refused and nothing is queued.
    outside = image.parent.parent.parent / "outside.png"
    outside.write_bytes(image.read_bytes())
    with pytest.raises(Exception, match="start_image.*inside the data directory"):
        fns["add_job"](json.dumps(_p(outside, "outside")))
    assert [j["id"] for j in fns["list_jobs"]()] == [job_id]


def test_routes_on_a_gradio_app_and_auth(make_service):
    import gradio as gr

    from studio.web.deferred_ui import GradioUI
    from studio.web.files import ServedFiles

    svc = make_service(start=False)
    with gr.Blocks() as demo:
        gr.Markdown("studio")
    app = FastAPI()
    mount_api(app, svc)
    app = gr.mount_gradio_app(app, demo, path="/")
    with TestClient(app) as c:
        assert c.get("/api/jobs").json() == {"jobs": []} and c.get("/").status_code == 200

    # The served app: one login for the API and the UI (studio/web/auth.py), and the Host/Origin guard.
    from studio.web.app import WebOptions, create_web_app

    served = create_web_app(svc, WebOptions(auth=("u", "p")),
                            GradioUI(lambda: (demo, {}), ServedFiles(list, svc.paths.root)))
    with TestClient(served, base_url="http://localhost:7860") as c:
        served.state.ui.wait_ready()
        assert c.get("/api/jobs").status_code == 401 and c.get("/config").status_code == 401
        assert c.post("/login", data={"username": "u", "password": "p"}).status_code == 200
        assert c.get("/api/jobs").status_code == 200 and c.get("/config").status_code == 200
        assert c.post("/api/queue/pause", headers={"origin": "http://localhost:8000"}).status_code == 403
        assert not svc.paused
    with TestClient(served, base_url="http://evil.example:7860") as c:
        assert c.get("/login").status_code == 403


def test_job_parameters_only_as_json(api, image):
    svc, c = api
    body = json.dumps(_p(image, "form"))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = c.post("/api/jobs", content=body, headers={"content-type": ctype})
        assert r.status_code == 415, ctype
    r = c.post("/api/jobs", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 201
    assert len(svc.list()) == 1


def test_refusals_name_the_field(api, image):
    """Issue 14: a malformed timestamped prompt is a 422 naming `prompt` with a sentence; Original with
    Endframe without an end image is accepted (the end frame is optional)."""
    svc, c = api
    r = c.post("/api/jobs", json=_p(image, "[0s: a cat sits [1s: broken"))
    assert r.status_code == 422
    [err] = r.json()["errors"]
    assert err["field"] == "prompt" and "never closed" in err["message"]
    assert not err["message"].startswith("prompt:")
    assert svc.list() == []
    r = c.post("/api/jobs", json=_p(image, "no end frame", generation_type="Original with Endframe"))
    assert r.status_code == 201, r.json()
    assert c.get(f"/api/jobs/{r.json()['id']}").json()["params"]["end_image"] is None
