"""Request size limits, stated once. README.md ("Security") documents them.

MAX_UPLOAD_BYTES is the one upload limit: Gradio's own uploads (max_file_size), POST /api/uploads and
POST /api/queue/import. The server refuses a larger request while it streams in: first by its Content-Length,
then by a running count of the bytes received (see studio/web/app.py).
"""

from __future__ import annotations

MAX_UPLOAD_BYTES = 2 * 1024**3  # 2 GiB: one input video or queue archive
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # the multipart framing around a file of exactly MAX_UPLOAD_BYTES
MAX_JSON_BYTES = 4 * 1024**2  # POST /api/jobs: parameters, never files
