"""The prompt helpers over HTTP, beside the queue API (same login, Host/Origin guard and JSON-only bodies):

    POST /api/caption         {"image": path}                                   -> {"prompt": ...}
    POST /api/describe-video  {"video": path, "seconds": 5, "timestamped": false}
                                                                                -> {"description": ..., "prompt": ...}
    POST /api/enhance         {"prompt": "a cat dances"}                        -> {"prompt": ...}

Files must lie inside the data directory (upload them with POST /api/uploads first). A bad request answers
422 {"errors": [{field, message}]}; a captioner that cannot answer (weights missing, no text) 503 {"detail"}.
The model runs on a worker thread of the server, so a caption never blocks the queue routes."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modules.errors import field_messages
from modules.framepack.inputs import InputError
from studio.api import is_json
from studio.captioning.service import CaptionerError, CaptionService
from studio.jobs.files import OUTSIDE_ROOTS_MESSAGE, outside
from studio.limits import MAX_JSON_BYTES


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaptionRequest(_Request):
    image: str = Field(min_length=1)


class DescribeRequest(_Request):
    video: str = Field(min_length=1)
    seconds: float = Field(5.0, gt=0, le=120, description="the extension's length, for its prompt")
    timestamped: bool = False


class EnhanceRequest(_Request):
    prompt: str


def _errors(fields: dict[str, str], status: int = 422) -> JSONResponse:
    return JSONResponse({"detail": "invalid request",
                         "errors": [{"field": f, "message": m} for f, m in fields.items()]}, status)


async def _parse(request: Request, model: type[_Request]) -> _Request | JSONResponse:
    if not is_json(request):
        return JSONResponse({"detail": "send the request as Content-Type: application/json"}, 415)
    try:
        return model.model_validate(json.loads(await request.body() or b"null"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _errors({"body": f"malformed JSON: {exc}"})
    except ValidationError as exc:
        return _errors({m.field: m.message for m in field_messages(exc, "body")})


def create_caption_router(captioner: CaptionService, data_root: Path) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["prompt helpers"], max_body_size=MAX_JSON_BYTES)

    async def answer(work, *files: tuple[str, str]) -> JSONResponse:
        for field, path in files:  # where first: the answer must not tell whether a path outside exists
            if outside(Path(path), [data_root]):
                return _errors({field: OUTSIDE_ROOTS_MESSAGE})
        try:
            return JSONResponse(await run_in_threadpool(work))
        except InputError as exc:
            return _errors(exc.fields)
        except CaptionerError as exc:
            return JSONResponse({"detail": str(exc)}, 503)

    @router.post("/caption")
    async def caption(request: Request) -> JSONResponse:
        req = await _parse(request, CaptionRequest)
        if isinstance(req, JSONResponse):
            return req
        return await answer(lambda: {"prompt": captioner.caption(Path(req.image))}, ("image", req.image))

    @router.post("/describe-video")
    async def describe_video(request: Request) -> JSONResponse:
        req = await _parse(request, DescribeRequest)
        if isinstance(req, JSONResponse):
            return req

        def work() -> dict:
            d = captioner.describe(Path(req.video), req.seconds, req.timestamped)
            return {"description": d.description, "prompt": d.prompt}

        return await answer(work, ("video", req.video))

    @router.post("/enhance")
    async def enhance(request: Request) -> JSONResponse:
        req = await _parse(request, EnhanceRequest)
        if isinstance(req, JSONResponse):
            return req
        return await answer(lambda: {"prompt": captioner.enhance(req.prompt)})

    return router
