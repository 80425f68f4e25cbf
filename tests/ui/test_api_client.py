"""Every public named endpoint of the studio, called through gradio_client against the real app.

The worker is paused while these run, so no job here costs a generation.
"""

from __future__ import annotations

import json

import httpx
import pytest
from gradio_client import Client

from tests.hang import HANG_S
from tests.ui.conftest import TINY

# The public API (named endpoints); the test below fails when one is added without a test here.
TESTED = {"/add_job", "/list_jobs", "/get_job", "/cancel_job", "/retry_job"}


@pytest.fixture(scope="module")
def client(studio):
    studio.queue_service.pause()
    c = Client(studio.url, verbose=False, analytics_enabled=False, download_files=False)
    yield c
    for job in studio.queue_service.list():
        if job.status.value == "PENDING" and job.title.startswith("api test"):
            studio.queue_service.remove(job.id)
    studio.queue_service.resume()


def test_public_endpoints_are_exactly_the_tested_ones(client):
    api = client.view_api(print_info=False, return_format="dict")
    public = set(api["named_endpoints"])
    assert public == TESTED, f"untested or missing endpoints: {public ^ TESTED}"
    assert not api["unnamed_endpoints"]


def test_add_get_list_cancel_retry(client, studio, media):
    # The README's flow: upload the start image first (POST /api/uploads), then name the returned path.
    before = len(studio.queue_service.list())
    outside = {"prompt": "api test outside", "start_image": str(media["start"]), **TINY}
    with pytest.raises(Exception, match="inside the data directory"):
        client.predict(json.dumps(outside), api_name="/add_job")
    assert len(studio.queue_service.list()) == before
    r = httpx.post(studio.url.rstrip("/") + "/api/uploads", timeout=HANG_S,
                   files={"file": ("start.png", media["start"].read_bytes(), "image/png")})
    assert r.status_code == 201, r.text
    params = {"prompt": "api test job", "start_image": r.json()["path"], **TINY}
    job_id = client.predict(json.dumps(params), api_name="/add_job")
    assert isinstance(job_id, str) and len(job_id) >= 8

    job = client.predict(job_id, api_name="/get_job")
    assert job["id"] == job_id and job["status"] == "PENDING"
    assert job["params"]["width"] == 64 and job["params"]["prompt"] == "api test job"
    # The start image was copied into the job folder (the queue owns its inputs).
    assert job["params"]["start_image"] != params["start_image"]

    jobs = client.predict(api_name="/list_jobs")
    assert job_id in [j["id"] for j in jobs]

    assert client.predict(job_id, api_name="/cancel_job") is True
    assert client.predict(job_id, api_name="/get_job")["status"] == "CANCELLED"
    assert client.predict(job_id, api_name="/retry_job") is True
    assert client.predict(job_id, api_name="/get_job")["status"] == "PENDING"
    assert client.predict(job_id, api_name="/cancel_job") is True
    assert client.predict(job_id, api_name="/retry_job") is True  # left PENDING; fixture removes it


def test_add_job_rejects_invalid_fields(client, studio):
    before = len(studio.queue_service.list())
    bad = {"prompt": "api test bad", "steps": 0, "width": 99999, "no_such_field": 1}
    with pytest.raises(Exception) as info:
        client.predict(json.dumps(bad), api_name="/add_job")
    text = str(info.value)
    for name in ("steps", "width", "no_such_field"):
        assert name in text
    assert len(studio.queue_service.list()) == before


def test_get_unknown_job_and_cancel_unknown(client):
    assert client.predict("doesnotexist", api_name="/get_job") is None
    assert client.predict("doesnotexist", api_name="/cancel_job") is False
    assert client.predict("doesnotexist", api_name="/retry_job") is False
