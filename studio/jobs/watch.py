"""Which running jobs someone is watching: only those get a growing preview video.

The UI's live view (a gr.Timer, so only while a page is open) and the API's preview routes touch a job; the
worker asks before each preview. Unwatched (CLI, API without a viewer), a job encodes every frame once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class PreviewWatch:
    WINDOW_S = 10.0  # a viewer polls about every second; a closed page stops counting after this long

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, job_id: str) -> None:
        with self._lock:
            now = self._clock()
            self._seen = {j: t for j, t in self._seen.items() if now - t < self.WINDOW_S}  # forget old jobs
            self._seen[job_id] = now

    def wanted(self, job_id: str) -> bool:
        with self._lock:
            seen = self._seen.get(job_id)
            return seen is not None and self._clock() - seen < self.WINDOW_S
