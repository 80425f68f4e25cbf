"""Errors the HTTP API answers the same way on every route.

A full data directory is 507 Insufficient Storage with a sentence saying what to do, whichever layer noticed
it: the queue's StorageFullError (store, job folders, import) or a bare OSError ENOSPC/EDQUOT from a route
that writes a file itself (uploads).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from studio.jobs.storage import STORAGE_FULL_MESSAGE, is_storage_full

log = logging.getLogger(__name__)

INSUFFICIENT_STORAGE = 507


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OSError, _os_error)  # StorageFullError is an OSError


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_storage_full(exc):
        raise exc  # any other OSError stays an ordinary 500, logged with its traceback
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": STORAGE_FULL_MESSAGE}, status_code=INSUFFICIENT_STORAGE)
