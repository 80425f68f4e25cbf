"""`python -m studio caption [IMAGE|VIDEO] [--enhance TEXT]`: the Generate tab's prompt helpers on the command line.

An image gets a caption (a FramePack prompt: subject, setting, a plausible motion); a video gets a description
and a prompt that continues it (`--seconds`, `--timestamped`); `--enhance` rewrites a short prompt, keeping its
timestamps. Each prompt is printed on its own line (the description goes to stderr), or all of it as one JSON
object with `--json`. The model is the `captioner_model` setting (`--model` for this run); fetch it first with
`python -m studio download --captioner`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("caption", help="caption an image, describe a video, or enhance a prompt",
                              description=__doc__)
    p.add_argument("file", nargs="?", type=Path, help="an image to caption or a video to describe")
    p.add_argument("--enhance", metavar="TEXT", default=None, help="a short prompt to rewrite (timestamps kept)")
    p.add_argument("--seconds", type=float, default=5.0, help="a video's extension length, for its prompt (5)")
    p.add_argument("--timestamped", action="store_true", help="a video's prompt as [0s: ...] [3s: ...] segments")
    p.add_argument("--model", default=None, help="captioner model repo (default: the captioner_model setting)")
    p.add_argument("--models", choices=["real", "tiny"], default=None, help="model set (default: settings)")
    p.add_argument("--data-dir", default=None, help="data directory whose settings.json is read")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of plain lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from modules.framepack.inputs import InputError, check_image_file, check_video_file
    from studio.captioning.service import CaptionerError, CaptionService
    from studio.cli import print_field_errors
    from studio.paths import DataPaths, resolve_data_dir
    from studio.settings import Settings, SettingsStore

    if args.file is None and args.enhance is None:
        print("error: give an IMAGE or VIDEO, or --enhance TEXT", file=sys.stderr)
        return 2
    paths = DataPaths(resolve_data_dir(args.data_dir))
    overrides = {k: v for k, v in (("models", args.models), ("captioner_model", args.model)) if v}
    try:
        settings = Settings.model_validate({**SettingsStore(paths.settings_file).load().model_dump(), **overrides})
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    service = CaptionService(lambda: paths.resolved_settings(settings))
    result: dict[str, str] = {}
    with tqdm(total=0, unit="tok", desc="Writing", disable=None) as bar:
        def on_token(done: int, limit: int) -> None:
            bar.total = limit
            bar.n = done
            bar.refresh()

        try:
            if args.file is not None:
                not_image = check_image_file(args.file)
                if not_image is None:
                    result["prompt"] = service.caption(args.file, on_token)
                elif check_video_file(args.file) is None:
                    d = service.describe(args.file, args.seconds, args.timestamped, on_token)
                    result.update(description=d.description, prompt=d.prompt)
                else:
                    raise InputError({"file": f"not a readable image or video ({not_image})"})
            if args.enhance is not None:
                result["enhanced"] = service.enhance(args.enhance, on_token)
        except InputError as exc:
            print_field_errors(("file" if f in ("image", "video") else "enhance" if f == "prompt" else f, m)
                               for f, m in exc.fields.items())
            return 2
        except CaptionerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    if "description" in result:
        print(f"description: {result['description']}", file=sys.stderr)
    for key in ("prompt", "enhanced"):
        if key in result:
            print(result[key])
    return 0
