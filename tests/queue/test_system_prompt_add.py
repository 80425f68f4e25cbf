"""Issue 14 (4): POST /api/jobs with the system prompt override set in Settings, in both forms; a template that
somehow escaped the Settings check never turns an add into a 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.api import mount_api
from studio.settings import Settings

JSON_FORM = json.dumps({"template": "Describe: {} :end", "crop_start": 3})


@pytest.fixture()
def image(data_image):
    """API tests name the copy inside the data directory (conftest's data_image)."""
    return data_image


def _client(make_service, fake_engine, settings: Settings):
    svc = make_service(fake_engine, start=False, settings=settings)
    app = FastAPI()
    mount_api(app, svc)
    return svc, TestClient(app)


def _p(image: Path, **kw) -> dict:
    return {"prompt": "hello", "start_image": str(image), "total_seconds": 2, "steps": 3, **kw}


@pytest.mark.parametrize("template", [JSON_FORM, "Plain {} template"])
def test_api_add_records_the_override_in_either_form(make_service, fake_engine, image, template):
    svc, c = _client(make_service, fake_engine, Settings(override_system_prompt=True, system_prompt_template=template))
    with c:
        r = c.post("/api/jobs", json=_p(image))
        assert r.status_code == 201, r.text
        assert c.get(f"/api/jobs/{r.json()['id']}").json()["params"]["system_prompt"] == template
        # A job's own override wins; a bad one is the client's error (422), naming the field.
        r = c.post("/api/jobs", json=_p(image, system_prompt=JSON_FORM))
        assert r.status_code == 201 and svc.get(r.json()["id"]).params.system_prompt == JSON_FORM
        r = c.post("/api/jobs", json=_p(image, system_prompt='{"template": "no placeholder"}'))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "system_prompt"


def test_api_add_never_fails_on_an_unchecked_settings_template(make_service, fake_engine, image):
    # model_construct skips validation, as a settings object built without the check would.
    bad = Settings.model_construct(**{**Settings().model_dump(), "override_system_prompt": True,
                                      "system_prompt_template": "no placeholder"})
    svc, c = _client(make_service, fake_engine, bad)
    with c:
        r = c.post("/api/jobs", json=_p(image))
        assert r.status_code == 201, r.text
        assert svc.get(r.json()["id"]).params.system_prompt is None  # the model's default template
