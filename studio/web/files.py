"""Which files the web server hands out: an allow-list by folder and by kind, checked before Gradio's file
route sees the request, whatever the folder settings say.

A file is served only if its real path (symlinks followed) lies inside one of the app's served folders
(outputs, post-processing results, job folders, the app's thumbnails and scratch, Gradio's upload folder),
no part of the path below that folder is hidden (a leading dot: temp and partial files), and its extension
is one the app writes for display or download: images, videos, JSON sidecars and zip exports. A served
folder that is the data directory itself (or holds it, e.g. an output folder set to ".") serves only images
and videos from it, so settings.json, queue.json, the database and its -wal/-shm/backup/lock files, presets
and LoRAs are never served. Anything else, remote URLs and Gradio's proxy included, is refused with 403.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from studio.jobs.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES

MEDIA_SUFFIXES = frozenset(IMAGE_SUFFIXES | VIDEO_SUFFIXES)
SERVED_SUFFIXES = MEDIA_SUFFIXES | {".json", ".zip"}
# Gradio's routes that read a file (or URL) named in the request path; everything after the prefix is it.
FILE_ROUTE_PREFIXES = ("/gradio_api/file=", "/gradio_api/file/")
REFUSED_PREFIXES = ("/gradio_api/proxy=",)  # fetches URLs for Spaces; nothing here needs it


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


class ServedFiles:
    """`folders()` gives the served folders now (settings may move the output folder at run time)."""

    def __init__(self, folders: Callable[[], Iterable[Path]], data_dir: Path) -> None:
        self.folders = folders
        self.data_dir = _real(data_dir)

    def allows(self, requested: str) -> bool:
        if not requested or "://" in requested or not Path(requested).is_absolute():
            return False
        path = _real(requested)
        suffix = path.suffix.lower()
        if suffix not in SERVED_SUFFIXES:
            return False
        for folder in map(_real, self.folders()):
            if not path.is_relative_to(folder) or path == folder:
                continue
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            if self.data_dir.is_relative_to(folder) and suffix not in MEDIA_SUFFIXES:
                continue  # the data directory's own JSON files are private
            return True
        return False


class FileRouteGuard:
    """ASGI middleware: refuses Gradio file-route requests for anything ServedFiles does not allow."""

    def __init__(self, app: ASGIApp, served: ServedFiles) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            refused = path.startswith(REFUSED_PREFIXES)
            for prefix in FILE_ROUTE_PREFIXES:
                if path.startswith(prefix):
                    refused = not self.served.allows(path[len(prefix):])
                    break
            if refused:
                await JSONResponse({"detail": "file not served"}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
