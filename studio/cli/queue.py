"""`python -m studio queue ...`: edit the job queue in the data directory's database, or serve it.

    queue add --json params.json [--set steps=10] [--prompt ...] [--image in.png] [--seconds 5] [--name NAME]
              [--batch FILE ... | --batch-folder DIR]          (a batch: one job per file, one group)
    queue cancel-group GROUP_ID
    queue edit ID [--json params.json] [--set steps=10] [--prompt ...]   a PENDING job, in place (refused once it started)
    queue continue ID [--mode "Video F1"|Video]    extend a COMPLETED job's video with its settings
    queue list [--status PENDING] [--json]        queue show ID
    queue cancel ID | retry ID | remove ID | cancel-pending | clear-finished
    queue export OUT.zip | import FILE.(json|zip) | load       (load = the data directory's queue.json)
    queue serve [--port 0] [--models tiny]        worker + HTTP API (no UI) on 127.0.0.1

The CLI may run while the app runs: the database is shared, the app's worker picks up added jobs and
honours cancels within one sampler step.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("queue", help="manage the job queue (add, list, cancel, export, import, serve)")
    p.add_argument("--data-dir", default=None, help="data directory (default: FP_STUDIO_DATA_DIR or the project)")
    sub = p.add_subparsers(dest="queue_cmd", required=True)

    a = sub.add_parser("add", help="validate and queue a job")
    a.add_argument("--json", dest="json_file", type=Path, help="GenerationParams as a JSON file ('-' = stdin)")
    a.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set one parameter (VALUE parsed as JSON when it can be, else a string); repeatable")
    a.add_argument("--prompt")
    a.add_argument("--image", help="start image")
    a.add_argument("--seconds", type=float, help="video length")
    a.add_argument("--type", dest="generation_type", help="generation type, e.g. Original, F1, Video")
    a.add_argument("--name", default="", help="job name: shown in the queue, the output file stem (sanitised)")
    a.add_argument("--gpu", default="", help="the worker to run on: any (default), a GPU number, or a worker name")
    a.add_argument("--batch", dest="batch_inputs", action="append", default=[], type=Path, metavar="FILE",
                   help="one job per file (start images, or videos for the Video types), same settings; repeatable")
    a.add_argument("--batch-folder", type=Path, metavar="DIR",
                   help="one job per image (or video) file in DIR, in name order, same settings")

    ls = sub.add_parser("list", help="list jobs: running, pending in run order, the rest newest first")
    ls.add_argument("--status", action="append", help="only these statuses (repeatable)")
    ls.add_argument("--json", action="store_true", help="JSON output")

    for name, helptext in (("show", "print one job as JSON"), ("cancel", "cancel a pending or running job"),
                           ("retry", "re-queue a failed, cancelled or interrupted job (resumes)"),
                           ("remove", "delete a job that is not running"),
                           ("duplicate", "queue a copy of a job")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("job_id")
    ed = sub.add_parser("edit", help="change a PENDING job in place (same id and place in the queue)")
    ed.add_argument("job_id")
    ed.add_argument("--json", dest="json_file", type=Path,
                    help="the new GenerationParams as a JSON file ('-' = stdin); default: the job's own")
    ed.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change one parameter")
    for flag in ("--prompt", "--image", "--seconds", "--type"):
        ed.add_argument(flag, dest={"--type": "generation_type"}.get(flag, flag[2:]),
                        type=float if flag == "--seconds" else None)
    co = sub.add_parser("continue", help="queue the extension of a COMPLETED job's video with its settings")
    co.add_argument("job_id")
    co.add_argument("--mode", choices=["Video F1", "Video"], default="Video F1", help="the extension's type")
    g = sub.add_parser("cancel-group", help="cancel every pending or running job of a batch")
    g.add_argument("group_id")
    sub.add_parser("cancel-pending", help="cancel every pending job")
    sub.add_parser("clear-finished", help="remove completed, failed and cancelled jobs")

    e = sub.add_parser("export", help="write jobs and their input files to one zip")
    e.add_argument("out", type=Path)
    i = sub.add_parser("import", help="import a .json or .zip (this project's export or FramePack-Studio's)")
    i.add_argument("file", type=Path)
    i.add_argument("--include-completed", action="store_true", help="re-queue jobs that had completed, too")
    sub.add_parser("load", help="import a queue.json placed in the data directory (like import)")

    sv = sub.add_parser("serve", help="run the worker and the HTTP API (no UI)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=7861, help="0 = a free port (see --port-file)")
    sv.add_argument("--port-file", type=Path, help="write the port here once listening")
    sv.add_argument("--models", choices=["real", "tiny"], help="override the model set setting")
    sv.add_argument("--device", default="auto")
    for child in sub.choices.values():  # --data-dir is accepted after the sub-command, too
        child.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=main)


def _service(args):
    from studio.jobs.service import QueueService
    from studio.paths import DataPaths, resolve_data_dir

    return QueueService(DataPaths(resolve_data_dir(args.data_dir)))


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _params_from_args(args) -> dict:
    data: dict = {}
    if args.json_file:
        text = sys.stdin.read() if str(args.json_file) == "-" else args.json_file.read_text(encoding="utf-8")
        data = json.loads(text)
        if not isinstance(data, dict):
            raise SystemExit("error: the JSON must hold an object of parameters")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --set expects FIELD=VALUE, got {item!r}")
        data[key.strip()] = _parse_value(value)
    for flag, field in (("prompt", "prompt"), ("image", "start_image"), ("seconds", "total_seconds"),
                        ("generation_type", "generation_type")):
        if getattr(args, flag) is not None:
            data[field] = getattr(args, flag)
    for field in ("start_image", "end_image", "input_video"):  # relative paths are relative to the shell
        if isinstance(data.get(field), str):
            data[field] = str(Path(data[field]).expanduser().resolve())
    return data


def _add(service, args) -> list[str]:
    """queue add: one job (with its --name), or a batch (--batch / --batch-folder: one job per file, one
    group, printed as "group <id>" before the ids)."""
    from studio.jobs.batch import parse_add_options

    opts = parse_add_options({"name": args.name, "gpu": args.gpu, "batch_inputs": [p.expanduser().resolve() for p in args.batch_inputs],
                              "batch_folder": args.batch_folder.expanduser().resolve() if args.batch_folder else None})
    if not opts.batch_inputs and opts.batch_folder is None:
        return [service.add(_params_from_args(args), name=opts.name, gpu=opts.gpu)]
    ids = service.add_batch(_params_from_args(args), opts)
    return [f"group {service.get(ids[0]).group_id}", *ids]


def _edit_or_continue(service, args) -> int:
    """queue edit (the job's parameters, or --json's, with the flags' changes) and queue continue; a refusal
    is one sentence on stderr (rc 1), bad parameters one line per field (rc 2)."""
    from studio.cli import print_field_errors
    from studio.jobs.continuation import ContinueError
    from studio.jobs.edit import EditRefused
    from studio.jobs.model import JobValidationError

    try:
        if args.queue_cmd == "continue":
            print(service.continue_job(args.job_id, args.mode))
            return 0
        job = service.get(args.job_id)
        data = {} if args.json_file or job is None else job.params.model_dump(mode="json")
        data.update(_params_from_args(args))
        print(service.edit(args.job_id, data).id)
        return 0
    except JobValidationError as exc:
        print_field_errors((e.field, e.message) for e in exc.errors)
        return 2
    except (EditRefused, ContinueError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1


def _fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def main(args) -> int:
    cmd = args.queue_cmd
    if cmd == "serve":
        return serve(args)
    from studio.cli import print_field_errors
    from studio.jobs.archive import ArchiveError
    from studio.jobs.model import JobValidationError
    from studio.jobs.service import dump_job

    service = _service(args)
    try:
        if cmd == "add":
            try:
                ids = _add(service, args)
            except JobValidationError as exc:
                print_field_errors((e.field, e.message) for e in exc.errors)
                return 2
            print("\n".join(ids))
        elif cmd in ("edit", "continue"):
            return _edit_or_continue(service, args)
        elif cmd == "cancel-group":
            print(f"cancelled {service.cancel_group(args.group_id)} job(s)")
        elif cmd == "list":
            jobs = service.list(args.status)
            if args.json:
                print(json.dumps([dump_job(j) for j in jobs], indent=2))
            else:
                print(f"{'ID':12}  {'STATUS':11}  {'TYPE':22}  {'CREATED':19}  {'ELAPSED':>8}  {'GROUP':12}  "
                      f"{'WORKER':8}  NAME / PROMPT")
                for j in jobs:
                    el = f"{j.elapsed_seconds:.1f}s" if j.elapsed_seconds is not None else "-"
                    label = f"{j.name}: {j.title}" if j.name else j.title
                    worker = j.worker or (f"->{j.gpu}" if j.gpu else "-")  # ran on, or asks for
                    print(f"{j.id:12}  {j.status.value:11}  {j.generation_type:22}  {_fmt_time(j.created_at):19}  "
                          f"{el:>8}  {j.group_id or '-':12}  {worker:8}  {label[:60]}")
        elif cmd == "show":
            job = service.get(args.job_id)
            if job is None:
                print(f"no job {args.job_id}", file=sys.stderr)
                return 1
            print(json.dumps(dump_job(job), indent=2))
        elif cmd in ("cancel", "retry", "remove"):
            ok = getattr(service, cmd)(args.job_id)
            print(f"{cmd}: {'ok' if ok else 'not possible (unknown job or wrong status)'}")
            return 0 if ok else 1
        elif cmd == "duplicate":
            new_id = service.duplicate(args.job_id)
            if new_id is None:
                print(f"no job {args.job_id}", file=sys.stderr)
                return 1
            print(new_id)
        elif cmd == "cancel-pending":
            print(f"cancelled {service.cancel_pending()} job(s)")
        elif cmd == "clear-finished":
            print(f"removed {service.clear_finished()} job(s)")
        elif cmd == "export":
            print(service.export_zip(args.out))
        elif cmd in ("import", "load"):
            try:
                result = (service.import_file(args.file, args.include_completed) if cmd == "import"
                          else service.load_queue())
            except ArchiveError as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return 2
            print(result.message)
            for job_id in result.added:
                print(job_id)
    finally:
        service.close()
    return 0


def serve(args) -> int:
    """Worker + HTTP API on one uvicorn server (the crash test and headless use; app.py adds the UI)."""
    import uvicorn

    from modules.models.registry import ModelSet
    from studio.jobs.service import QueueService
    from studio.jobs.worker import DefaultEngineProvider
    from studio.paths import DataPaths, resolve_data_dir
    from studio.settings import SettingsStore
    from studio.web.app import WebOptions, create_web_app

    paths = DataPaths(resolve_data_dir(args.data_dir))
    store = SettingsStore(paths.settings_file)

    def settings_provider():
        s = store.load()
        return s.model_copy(update={"models": ModelSet(args.models)}) if args.models else s

    service = QueueService(paths, settings_provider, DefaultEngineProvider(device=args.device))
    if not service.start():
        print("error: another process already runs the queue worker for this data directory", file=sys.stderr)
        return 1
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    if args.port_file:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, args.port_file)
    # The same Host/Origin guard and body limits as the studio's own server (no UI, no login).
    app = create_web_app(service, WebOptions(listen=args.host, port=port))
    print(f"FP-Studio queue API on http://{args.host}:{port}/api (data: {paths.root})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    # uvicorn re-raises the SIGTERM/SIGINT it caught once it has shut down; with these no-op handlers that
    # re-raise returns, so the service below is closed cleanly (the running job is left INTERRUPTED).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        service.close()  # a running job is cancelled and left INTERRUPTED; retry resumes it
    return 0
