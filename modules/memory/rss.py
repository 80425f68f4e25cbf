"""Peak resident memory (RSS) of this process, for job metadata."""

from __future__ import annotations

import sys
import threading


def current_rss_mb() -> float:
    import psutil  # imported lazily: the GPU benchmark runs with torch alone

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """Highest RSS of the process since it started, in MiB."""
    import psutil

    info = psutil.Process().memory_info()
    peak = getattr(info, "peak_wset", None)  # Windows
    if peak is not None:
        return peak / 2**20
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        return info.rss / 2**20


class RSSMonitor:
    """Peak RSS over a span (one job), sampled in a daemon thread; the process-wide peak is monotonic.

    with RSSMonitor() as mon: ...; mon.peak_mb
    """

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        import psutil

        self._proc = psutil.Process()

    def sample(self) -> float:
        rss = self._proc.memory_info().rss / 2**20
        self.peak_mb = max(self.peak_mb, rss)
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> "RSSMonitor":
        self.sample()
        self._thread = threading.Thread(target=self._run, name="rss-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
