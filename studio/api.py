"""HTTP API for the job queue: FastAPI routes under /api, served with the Gradio UI by studio/web/app.py.

    from studio.api import create_router
    app.include_router(create_router(service))   # studio.web.app.create_web_app adds the login, the
                                                 # Host/Origin guard and the UI around these routes

    POST   /api/uploads                    multipart "file" (image/video) -> 201 {"path": ...} for the params below
    POST   /api/jobs                       JSON GenerationParams (Content-Type: application/json), or
                                           {"params": {...}, "name": "...", "batch_inputs": [paths] |
                                            "batch_folder": "dir"} (studio/jobs/batch.py: one job per file)
                                           -> 201 {"id": ...} ({"ids": [...], "group_id": ...} for a batch)
                                           | 422 {"errors": [{field, message}]} | 415
                                           (input files must lie inside the data directory: upload them first)
    GET    /api/jobs[?status=PENDING]      {"jobs": [...]}: running, pending in run order, the rest newest first
    GET    /api/jobs/{id}                  the job (params, status, progress, error, outputs)
    POST   /api/jobs/{id}/cancel | retry | duplicate | move?direction=up|down ;  DELETE /api/jobs/{id}
    PUT    /api/jobs/{id}                  edit a PENDING job in place (body as POST /api/jobs) -> the job | 409 once
                                           it started | 422 {"errors": [...]}
    POST   /api/jobs/{id}/continue?mode=Video F1|Video   extend a COMPLETED job's video with its settings -> 201
    POST   /api/groups/{group_id}/cancel   Cancel group: every pending/running job of a batch -> {"cancelled": n}
    GET    /api/jobs/{id}/files/{name}     download one of the job's files (outputs, preview) by base name
    GET    /api/jobs/{id}/preview          the latest preview image of a running job
    GET    /api/queue                      counts; POST /api/queue/pause | resume | cancel-pending | clear-finished | load
    GET    /api/queue/export               zip; POST /api/queue/import (multipart file field "file")

Request bodies are limited while they stream in (413): uploads and imports by the one upload limit
(studio/limits.py), job parameters by MAX_JSON_BYTES.

`gradio_endpoints(service)` gives the same core functions as plain callables for named Gradio endpoints.
"""

from __future__ import annotations

import dataclasses

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from modules.framepack.inputs import check_file
from studio.jobs.archive import ArchiveError, ImportResult
from studio.jobs.batch import parse_add_options
from studio.jobs.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from studio.jobs.model import JobStatus, JobValidationError
from studio.jobs.service import QueueService, dump_job
from studio.limits import MAX_JSON_BYTES, MAX_UPLOAD_BYTES, MULTIPART_OVERHEAD_BYTES

log = logging.getLogger(__name__)

PREFIX = "/api"
COPY_CHUNK = 1 << 20


def _job_or_404(service: QueueService, job_id: str):
    job = service.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job


def is_json(request: Request) -> bool:
    """Whether the body is declared JSON: a form or text/plain body is what a cross-site form or no-cors fetch
    sends, so the state-changing routes take nothing else (also studio/captioning/api.py)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def _save_upload(file: UploadFile, dest: Path) -> None:
    with open(dest, "wb") as out:
        while chunk := await file.read(COPY_CHUNK):
            out.write(chunk)


def _import_answer(result: ImportResult) -> dict:
    """Load / import: the added ids, the statuses kept (FAILED stays FAILED) and each skipped entry with why."""
    return {"added": result.added, "kept": result.kept, "skipped": len(result.skipped),
            "skipped_jobs": [s.model_dump() for s in result.skipped], "message": result.message}


def create_router(service: QueueService, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> APIRouter:
    # The body limit applies while the request streams in, before a handler runs (multipart is spooled first).
    router = APIRouter(prefix=PREFIX, tags=["queue"], max_body_size=max_upload_bytes + MULTIPART_OVERHEAD_BYTES)

    @router.post("/jobs", status_code=201, max_body_size=MAX_JSON_BYTES)
    async def add_job(request: Request) -> JSONResponse:
        if not is_json(request):  # a form or text/plain body is what a cross-site form or no-cors fetch sends
            return JSONResponse({"detail": "send the job parameters as Content-Type: application/json"}, 415)
        raw = await request.body()
        try:
            data = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return JSONResponse({"detail": "invalid job parameters",
                                 "errors": [{"field": "body", "message": f"malformed JSON: {exc}"}]}, 422)
        options: dict = {}
        if isinstance(data, dict) and isinstance(data.get("params"), dict):
            # {"params": {...}, "name": ..., "batch_inputs": [...] | "batch_folder": ...} (batch.AddOptions);
            # the bare parameter object is accepted too.
            options = {k: v for k, v in data.items() if k != "params"}
            data = data["params"]
        roots = [service.paths.root]
        try:
            opts = parse_add_options(options)
            if opts.batch_inputs or opts.batch_folder is not None:
                ids = service.add_batch(data, opts, allowed_roots=roots)
                group = service.get(ids[0]).group_id
                return JSONResponse({"ids": ids, "group_id": group, "status": JobStatus.PENDING.value}, 201)
            job_id = service.add(data, allowed_roots=roots, name=opts.name, gpu=opts.gpu)
        except JobValidationError as exc:
            return JSONResponse({"detail": "invalid job parameters", "errors": exc.as_dicts()}, 422)
        return JSONResponse({"id": job_id, "status": JobStatus.PENDING.value}, 201)

    @router.post("/uploads", status_code=201)
    async def upload(file: UploadFile) -> JSONResponse:
        """Stores an input image or video in the data directory; use the returned path in add_job's params."""
        suffix = Path(file.filename or "").suffix.lower()
        if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            suffix = ""
        folder = service.paths.api_uploads_dir
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{uuid.uuid4().hex[:16]}{suffix}"
        try:
            await _save_upload(file, dest)
            kind = "video" if suffix in VIDEO_SUFFIXES and suffix != ".gif" else "image"
            why = check_file(dest, kind)
            if why and check_file(dest, "video" if kind == "image" else "image") is not None:
                raise HTTPException(400, f"not a readable image or video: {why}")
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return JSONResponse({"path": str(dest)}, 201)

    @router.get("/jobs")
    def list_jobs(status: list[JobStatus] | None = Query(None)) -> JSONResponse:
        # JSONResponse directly: FastAPI's generic encoder costs more than the query for 1,000 jobs.
        return JSONResponse({"jobs": [dump_job(j) for j in service.list(status)]})

    @router.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        return dump_job(_job_or_404(service, job_id))

    @router.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict:
        _job_or_404(service, job_id)
        if not service.cancel(job_id):
            raise HTTPException(409, "the job has already finished")
        return {"ok": True, "status": service.store.status(job_id).value}

    @router.post("/groups/{group_id}/cancel")
    def cancel_group(group_id: str) -> dict:
        """Cancel group: every pending job of a batch, its running one within a sampler step."""
        return {"ok": True, "cancelled": service.cancel_group(group_id)}

    @router.post("/jobs/{job_id}/retry")
    def retry_job(job_id: str) -> dict:
        job = _job_or_404(service, job_id)
        if not service.retry(job_id):
            raise HTTPException(409, f"only FAILED, CANCELLED or INTERRUPTED jobs can be retried (this one is "
                                     f"{job.status.value})")
        return {"ok": True, "status": JobStatus.PENDING.value}

    @router.post("/jobs/{job_id}/duplicate", status_code=201)
    def duplicate_job(job_id: str) -> dict:
        _job_or_404(service, job_id)
        try:
            new_id = service.duplicate(job_id)
        except JobValidationError as exc:  # its input files are gone
            raise HTTPException(409, exc.as_dicts()) from None
        return {"id": new_id}

    @router.put("/jobs/{job_id}", max_body_size=MAX_JSON_BYTES)
    async def edit_job(job_id: str, request: Request) -> JSONResponse:
        """Edit a PENDING job in place (same id and queue position): the body as for POST /api/jobs (the bare
        parameters or {"params": {...}}), checked the same way; 409 once the job has started."""
        from studio.jobs.edit import EditRefused

        _job_or_404(service, job_id)
        if not is_json(request):
            return JSONResponse({"detail": "send the job parameters as Content-Type: application/json"}, 415)
        try:
            data = json.loads(await request.body() or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return JSONResponse({"detail": "invalid job parameters",
                                 "errors": [{"field": "body", "message": f"malformed JSON: {exc}"}]}, 422)
        if isinstance(data, dict) and isinstance(data.get("params"), dict):
            data = data["params"]
        try:
            job = service.edit(job_id, data, allowed_roots=[service.paths.root])
        except JobValidationError as exc:
            return JSONResponse({"detail": "invalid job parameters", "errors": exc.as_dicts()}, 422)
        except EditRefused as exc:
            return JSONResponse({"detail": str(exc), "status": exc.status.value if exc.status else None},
                                409 if exc.status else 404)
        return JSONResponse(dump_job(job))

    @router.post("/jobs/{job_id}/continue", status_code=201)
    def continue_job(job_id: str, mode: str = Query("Video F1", pattern="^(Video F1|Video)$")) -> dict:
        """Continue from this video: queues the extension of a COMPLETED job's video with its settings
        (mode Video F1 or Video; the new job's continued_from names the video) -> 201 {"id": ...}."""
        from studio.jobs.continuation import ContinueError

        _job_or_404(service, job_id)
        try:
            new_id = service.continue_job(job_id, mode)
        except ContinueError as exc:
            raise HTTPException(409, str(exc)) from None
        except JobValidationError as exc:  # the queue's input checker refused the extension
            raise HTTPException(409, exc.as_dicts()) from None
        return {"id": new_id, "status": JobStatus.PENDING.value}

    @router.post("/jobs/{job_id}/move")
    def move_job(job_id: str, direction: str = Query(..., pattern="^(up|down)$")) -> dict:
        _job_or_404(service, job_id)
        ok = service.move_up(job_id) if direction == "up" else service.move_down(job_id)
        return {"ok": ok}

    @router.delete("/jobs/{job_id}")
    def remove_job(job_id: str) -> dict:
        _job_or_404(service, job_id)
        if not service.remove(job_id):
            raise HTTPException(409, "a running job cannot be removed; cancel it first")
        return {"ok": True}

    @router.get("/jobs/{job_id}/files/{name}")
    def job_file(job_id: str, name: str) -> FileResponse:
        service.watch(job_id)  # a client fetching the growing preview video wants the next one too
        path = service.job_file(job_id, name)
        if path is None:
            raise HTTPException(404, "no such file for this job")
        return FileResponse(path, filename=path.name)

    @router.get("/jobs/{job_id}/preview")
    def job_preview(job_id: str) -> FileResponse:
        job = _job_or_404(service, job_id)
        service.watch(job_id)
        p = job.progress.preview_image if job.progress else None
        if not p or not Path(p).is_file():
            raise HTTPException(404, "no preview yet")
        return FileResponse(p, media_type="image/png", headers={"Cache-Control": "no-store"})

    @router.get("/queue")
    def queue_counts() -> dict:
        c = service.counts()
        running = service.workers.current_job_ids
        return {**c.model_dump(), "current": running[0] if running else None,
                "workers": [dataclasses.asdict(w) for w in service.workers.info()]}

    @router.post("/queue/pause")
    def pause() -> dict:
        service.pause()
        return {"paused": service.paused}

    @router.post("/queue/resume")
    def resume() -> dict:
        service.resume()
        return {"paused": service.paused}

    @router.post("/queue/cancel-pending")
    def cancel_pending() -> dict:
        return {"cancelled": service.cancel_pending()}

    @router.post("/queue/clear-finished")
    def clear_finished() -> dict:
        return {"removed": service.clear_finished()}

    @router.post("/queue/load")
    def load_queue() -> dict:
        try:
            result = service.load_queue()
        except ArchiveError as exc:
            raise HTTPException(400, str(exc)) from None
        return _import_answer(result)

    @router.get("/queue/export")
    def export_queue() -> FileResponse:
        tmp = Path(tempfile.mkdtemp(prefix="fp-export-"))
        name = f"fp-studio-queue-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        path = service.export_zip(tmp / name)
        return FileResponse(path, filename=name, media_type="application/zip",
                            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))

    @router.post("/queue/import")
    async def import_queue(file: UploadFile) -> dict:
        suffix = ".zip" if (file.filename or "").lower().endswith(".zip") else ".json"
        tmp = Path(tempfile.mkdtemp(prefix="fp-import-"))
        try:
            dest = tmp / f"upload{suffix}"
            await _save_upload(file, dest)
            try:
                result = service.import_file(dest)
            except ArchiveError as exc:
                raise HTTPException(400, str(exc).replace(dest.name, file.filename or dest.name)) from None
            return _import_answer(result)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return router


def mount_api(app: FastAPI, service: QueueService) -> APIRouter:
    """Adds the bare /api routes to `app` (tests, benchmarks); a served app comes from create_web_app."""
    router = create_router(service)
    app.include_router(router)
    return router


def gradio_endpoints(service: QueueService) -> dict[str, Callable]:
    """JSON-in/JSON-out functions for named Gradio endpoints (`api_name=` the key).

    add_job raises gr.Error whose message is the JSON list of invalid fields (gradio_client raises it as
    AppError with that message). Register with `gr.api(fn, api_name=name)` inside the Blocks."""

    def add_job(params_json: str) -> str:
        # As over HTTP: remote callers may only name files inside the data directory (or Gradio's upload
        # folder), never make the server read arbitrary files.
        roots = [service.paths.root]
        if os.environ.get("GRADIO_TEMP_DIR"):
            roots.append(Path(os.environ["GRADIO_TEMP_DIR"]))
        try:
            return service.add(params_json if isinstance(params_json, str) else json.dumps(params_json),
                               allowed_roots=roots)
        except JobValidationError as exc:
            import gradio as gr  # gr.Error reaches the client even without show_error

            raise gr.Error(json.dumps(exc.as_dicts())) from None

    def list_jobs() -> list[dict]:
        return [dump_job(j) for j in service.list()]

    def get_job(job_id: str) -> dict | None:
        job = service.get(job_id)
        return dump_job(job) if job else None

    def cancel_job(job_id: str) -> bool:
        return service.cancel(job_id)

    def retry_job(job_id: str) -> bool:
        return service.retry(job_id)

    return {"add_job": add_job, "list_jobs": list_jobs, "get_job": get_job, "cancel_job": cancel_job,
            "retry_job": retry_job}
