"""Cooperative cancellation shared by generation and post-processing."""

from __future__ import annotations

import threading


class CancelledError(Exception):
    """Raised when the job's cancel token is set; no final file is written."""


class CancelToken:
    """Set from any thread; long-running work checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("cancelled by user")
