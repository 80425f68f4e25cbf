"""FP-Studio: `python app.py` opens the studio at http://127.0.0.1:7860.

Flags: --port, --listen (serve on 0.0.0.0), --auth user:pass (or FP_STUDIO_AUTH), --allowed-hosts NAME,...
(or FP_STUDIO_ALLOWED_HOSTS), --models tiny|real, --data-dir (or FP_STUDIO_DATA_DIR), --share (off unless given).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
from urllib.parse import urlsplit

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ALLOWED_HOSTS_ENV = "FP_STUDIO_ALLOWED_HOSTS"

log = logging.getLogger("fp_studio")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FP-Studio web UI")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1", metavar="ADDR",
                   help="serve on all interfaces (0.0.0.0) or ADDR; default 127.0.0.1 only")
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="require a login (or env FP_STUDIO_AUTH)")
    p.add_argument("--allowed-hosts", default=None, metavar="NAME,...",
                   help="extra host names the server answers to, e.g. its LAN name or a reverse proxy's "
                        f"(or env {ALLOWED_HOSTS_ENV}); localhost and IP addresses need none")
    p.add_argument("--models", choices=["tiny", "real"], default=None, help="model set (default: the setting)")
    p.add_argument("--gpus", default=None, metavar="all|none|0,2",
                   help="GPUs to run jobs on, one worker each (default: the setting, all visible GPUs)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="workers on the CPU when no GPU is used (tiny models, tests; default: the setting, 1)")
    p.add_argument("--cluster", nargs="?", const="", default=None, metavar="auto|ray://HOST:10001",
                   help="also run jobs on every GPU of a Ray cluster (pip install -r requirements-cluster.txt); "
                        "without a value: RAY_ADDRESS, else auto")
    p.add_argument("--data-dir", default=None, help="data directory (settings, queue, outputs, ...)")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def host_list(value: str | None) -> tuple[str, ...]:
    return tuple(h.strip() for h in (value or "").split(",") if h.strip())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from studio.ui.server import create_studio
    from studio.web.app import WebOptions
    from studio.web.auth import AUTH_ENV, parse_auth

    try:
        auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hosts = host_list(args.allowed_hosts if args.allowed_hosts is not None else os.environ.get(ALLOWED_HOSTS_ENV))
    if args.share:
        hosts += share_host(args.listen, args.port, auth is not None)
    options = WebOptions(listen=args.listen, port=args.port, auth=auth, allowed_hosts=hosts)
    if args.cluster is not None:
        from studio.cluster.connect import ClusterUnavailable, require_ray

        try:
            require_ray()
        except ClusterUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        studio = create_studio(args.data_dir, args.models, gpus=args.gpus, workers=args.workers)
    except ValueError as exc:  # a --gpus naming no visible GPU, a bad --workers: one sentence naming it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # uvicorn shuts down on SIGTERM (docker stop) and then raises it again: make that an interrupt, so the
    # studio below is still closed (the running job is left INTERRUPTED and resumes on retry).
    signal.signal(signal.SIGTERM, _interrupt)
    if args.cluster is not None:  # the actors load their models for minutes: the studio serves meanwhile
        threading.Thread(target=_join_cluster, args=(studio.queue_service, args.cluster), name="fp-studio-cluster",
                         daemon=True).start()
    try:
        server = studio.web_server(options)
        log.info("FP-Studio on http://%s:%d/%s", "127.0.0.1" if args.listen == "0.0.0.0" else args.listen,
                 args.port, " (login required)" if auth else "")
        server.run()  # until Ctrl+C / SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        studio.close()
    return 0


def _join_cluster(service: object, address: str) -> None:
    from studio.cluster.connect import ClusterUnavailable
    from studio.cluster.growth import WATCH_S, join_service

    try:
        join_service(service, address or None, watch_s=WATCH_S)  # "" -> RAY_ADDRESS, else "auto"; until closed
    except ClusterUnavailable as exc:
        log.error("%s", exc)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def share_host(listen: str, port: int, has_auth: bool) -> tuple[str, ...]:
    """Opens a gradio.live tunnel to this server; its host name must then be allowed."""
    from gradio import networking

    if not has_auth:
        log.warning("--share without --auth: anyone with the link can use this studio")
    try:
        url = networking.setup_tunnel("127.0.0.1" if listen == "0.0.0.0" else listen, port,
                                      secrets.token_urlsafe(32), None, None)
    except (RuntimeError, OSError) as exc:  # no network, or the share server refused: serve locally only
        log.error("no share link: %s", exc)
        return ()
    log.info("public share link: https://%s/", urlsplit(url).hostname)
    return (urlsplit(url).hostname or "",)


if __name__ == "__main__":
    raise SystemExit(main())
