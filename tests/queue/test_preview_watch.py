"""Only a watched job builds a growing preview video: the UI's live view and the API's preview routes say
who watches, the worker hands the engine that answer (OutputOptions.preview_wanted)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.api import mount_api
from studio.jobs.watch import PreviewWatch
from studio.settings import Settings


def test_a_watch_lasts_its_window_then_ends():
    now = [100.0]
    watch = PreviewWatch(clock=lambda: now[0])
    assert not watch.wanted("a")
    watch.touch("a")
    now[0] += PreviewWatch.WINDOW_S - 0.5
    assert watch.wanted("a") and not watch.wanted("b")
    now[0] += 1.0
    assert not watch.wanted("a")  # the page was closed: previews stop


def test_the_worker_asks_the_service_whether_the_job_is_watched(make_service, fake_engine, paths, image):
    svc = make_service(fake_engine)
    job = svc.get(svc.add({"prompt": "p", "start_image": str(image), "total_seconds": 1, "steps": 1}))
    out = svc.workers.members[0]._output_options(job, Settings())
    assert out.preview_wanted is not None and not out.preview_wanted()  # the CLI's answer too: nobody
    svc.watch(job.id)
    assert out.preview_wanted()


def test_the_api_preview_routes_count_as_watching(make_service, fake_engine, data_image):
    svc = make_service(fake_engine, start=False)
    job_id = svc.add({"prompt": "p", "start_image": str(data_image), "total_seconds": 1, "steps": 1})
    app = FastAPI()
    mount_api(app, svc)
    with TestClient(app) as client:
        assert not svc.preview_watch.wanted(job_id)
        assert client.get(f"/api/jobs/{job_id}/preview").status_code == 404  # none yet, but now watched
        assert svc.preview_watch.wanted(job_id)
