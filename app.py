"""FP-Studio: `python app.py` opens the studio at http://127.0.0.1:7860.

Flags: --port, --listen (serve on 0.0.0.0), --auth user:pass (or FP_STUDIO_AUTH), --models tiny|real,
--data-dir (or FP_STUDIO_DATA_DIR), --share (off unless given).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FP-Studio web UI")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1", metavar="ADDR",
                   help="serve on all interfaces (0.0.0.0) or ADDR; default 127.0.0.1 only")
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="require a login (or env FP_STUDIO_AUTH)")
    p.add_argument("--models", choices=["tiny", "real"], default=None, help="model set (default: the setting)")
    p.add_argument("--data-dir", default=None, help="data directory (settings, queue, outputs, ...)")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from studio.ui.server import AUTH_ENV, create_studio, parse_auth

    try:
        auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    studio = create_studio(args.data_dir, args.models)
    demo = studio.demo
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=args.listen, server_port=args.port, share=args.share, auth=auth,
                prevent_thread_lock=True, **studio.launch_kwargs())
    studio.mount_api()
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        studio.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
