"""Start-up: seconds from launching `app.py` to the first page answered, and the idle process's memory.

    .venv/bin/python bench/startup.py [--runs 3] [--idle 10]

Each run launches `app.py --models tiny --data-dir <new temp dir> --port <free port>` as it is launched by a
user, polls GET / until it answers 200 (the seconds to that answer are the start-up time: the starting page
while the interface is built, studio/web/deferred_ui.py), then until / is the interface itself (printed beside
it), leaves the studio idle for --idle seconds, reads the process's RSS (psutil) and whether libtorch is mapped
into it, then stops it with SIGTERM (as `docker stop` does). The load average is printed beside every run: on a shared machine it
says more about the seconds than the code does.

Goals (issue 13): first page at most 3 s on 2 CPU cores, idle RSS at most 300 MB, torch not loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
GOAL_FIRST_PAGE_S = 3.0
GOAL_RSS_MB = 300.0
POLL_S = 0.05
GIVE_UP_S = 300.0  # a launch that has not answered by then has hung (or died: its exit is noticed at once)
STARTING_MARK = 'id="fp-starting"'  # the starting page's paragraph
HEAVY_LIBS = ("libtorch", "spandrel", "cv2")  # mapped-file markers of the heavy libraries

log = logging.getLogger("bench.startup")


@dataclass
class Run:
    first_page_s: float
    interface_s: float
    rss_mb: float
    heavy: list[str]
    load_at_launch: float
    load_at_idle: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_page(proc: subprocess.Popen, url: str, started: float, interface: bool) -> float:
    """Seconds from `started` to the first 200 on `url` (any page), or to the interface itself (not the
    starting page studio/web/deferred_ui.py answers while the Gradio UI is built)."""
    with httpx.Client(timeout=GIVE_UP_S) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode} before answering")
            try:
                page = client.get(url)
                if page.status_code == 200 and not (interface and STARTING_MARK in page.text):
                    return time.perf_counter() - started
            except httpx.TransportError:  # not listening yet
                pass
            if time.perf_counter() - started > GIVE_UP_S:
                raise RuntimeError(f"no page within {GIVE_UP_S:.0f} s")
            time.sleep(POLL_S)


def heavy_mapped(pid: int) -> list[str]:
    """Which heavy libraries the process has mapped (from outside: no import of them here)."""
    paths = [m.path for m in psutil.Process(pid).memory_maps(grouped=True)]
    return [lib for lib in HEAVY_LIBS if any(lib in p for p in paths)]


def one_run(idle_s: float) -> Run:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fp-startup-") as data:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        load_at_launch = os.getloadavg()[0]
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--models", "tiny", "--data-dir", data,
                                 "--port", str(port)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            first = wait_page(proc, f"http://127.0.0.1:{port}/", started, interface=False)
            ui = wait_page(proc, f"http://127.0.0.1:{port}/", started, interface=True)
            time.sleep(idle_s)  # idle: the worker thread polls an empty queue, nobody has the page open
            rss_mb = psutil.Process(proc.pid).memory_info().rss / 1e6
            heavy = heavy_mapped(proc.pid)
            load_at_idle = os.getloadavg()[0]
        except BaseException:
            proc.kill()
            log.error("app.py stderr:\n%s", proc.communicate()[1][-4000:])
            raise
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate()
        if proc.returncode != 0:
            log.warning("app.py exited with %d after SIGTERM:\n%s", proc.returncode, err[-2000:])
    return Run(first, ui, rss_mb, heavy, load_at_launch, load_at_idle)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds idle before reading the memory")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll

    runs = []
    for i in range(args.runs):
        log.info("run %d/%d: launching app.py", i + 1, args.runs)
        runs.append(one_run(args.idle))
        log.info("run %d/%d: first page %.2f s, RSS %.0f MB", i + 1, args.runs, runs[-1].first_page_s,
                 runs[-1].rss_mb)

    print(f"\nCPU cores: {os.cpu_count()}; goals: first page <= {GOAL_FIRST_PAGE_S:g} s on 2 cores, "
          f"idle RSS <= {GOAL_RSS_MB:g} MB, no torch\n")
    print("| run | first page (s) | interface (s) | idle RSS (MB) | heavy libs mapped | "
          "load avg (1 min) at launch / idle |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(runs, 1):
        print(f"| {i} | {r.first_page_s:.2f} | {r.interface_s:.2f} | {r.rss_mb:.0f} | {', '.join(r.heavy) or 'none'} | "
              f"{r.load_at_launch:.2f} / {r.load_at_idle:.2f} |")
    if len(runs) > 1:
        print(f"| median | {statistics.median(r.first_page_s for r in runs):.2f} | "
              f"{statistics.median(r.interface_s for r in runs):.2f} | "
              f"{statistics.median(r.rss_mb for r in runs):.0f} | | |")
    print(f"\nload average now (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
