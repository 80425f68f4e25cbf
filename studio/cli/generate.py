"""`python -m studio generate`: one generation job from the command line, with a progress bar.

Every GenerationParams field is a flag derived from the model (`--total-seconds`, `--cache-type`, ...);
only the values given are passed, so the defaults live in the model alone. Complex fields take JSON
(`--loras '[{"name": "a.safetensors", "weight": 0.8}]'`), with shorthands `--lora NAME[:WEIGHT]` and
`--keyframe IMAGE@SECONDS`. Rerunning an interrupted command resumes from its last finished section.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import json
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

log = logging.getLogger(__name__)

ALIASES = {"start_image": ["--image"], "total_seconds": ["--seconds"], "end_image": ["--end-image"]}
DTYPES = ("auto", "float32", "bfloat16", "float16")


def _unwrap_optional(ann: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def add_param_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per GenerationParams field, typed from its annotation; defaults stay in the model."""
    from modules.framepack.params import GenerationParams

    group = parser.add_argument_group("generation parameters (defaults from GenerationParams)")
    for name, field in GenerationParams.model_fields.items():
        flags = [f"--{name.replace('_', '-')}"] + [a for a in ALIASES.get(name, []) if a != f"--{name.replace('_', '-')}"]
        ann = _unwrap_optional(field.annotation)
        default_txt = field.default.value if isinstance(field.default, enum.Enum) else field.default
        help_txt = (field.description or name.replace("_", " ")) + (
            f" (default: {default_txt})" if field.default_factory is None else "")
        kw: dict[str, Any] = dict(dest=name, default=argparse.SUPPRESS, help=help_txt)
        if ann is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(ann, type) and issubclass(ann, enum.Enum):
            kw["choices"] = [e.value for e in ann]
        elif typing.get_origin(ann) is typing.Literal:
            kw["choices"] = list(typing.get_args(ann))
        elif ann in (int, float, str):
            kw["type"] = ann
        elif ann is Path:
            kw["type"] = Path
        else:
            kw["type"] = _json_arg
            kw["metavar"] = "JSON"
        group.add_argument(*flags, **kw)


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate a video (FramePack)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_param_flags(p)
    p.add_argument("--lora", action="append", default=[], metavar="NAME[:WEIGHT]", help="add a LoRA (repeatable)")
    p.add_argument("--keyframe", action="append", default=[], metavar="IMAGE@SECONDS",
                   help="pin an image to a time (repeatable)")
    p.add_argument("--models", choices=["real", "tiny"], default=None, help="model set (default: settings)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the settings' output dir)")
    p.add_argument("--name", default=None, help="output file stem (sanitised); default: time_seed_id")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bf16 on CUDA, float32 on CPU")
    p.add_argument("--save-latents", action="store_true", help="also write the history latents (safetensors)")
    p.add_argument("--data-dir", default=None, help="data directory (settings, outputs, loras)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="scratch/resume folder (default: <data>/temp/work/<job hash>)")
    p.add_argument("--params", type=Path, default=None,
                   help="start from a metadata JSON (sidecar); flags override its values")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_params(args: argparse.Namespace):
    """GenerationParams from --params JSON plus the flags given (flags win)."""
    from modules.framepack.metadata import params_from_metadata
    from modules.framepack.params import GenerationParams

    data: dict[str, Any] = {}
    if args.params is not None:
        data = params_from_metadata(args.params).model_dump(mode="json", exclude_unset=True)
    for name in GenerationParams.model_fields:
        if hasattr(args, name):
            value = getattr(args, name)
            data[name] = str(value) if isinstance(value, Path) else value
    for item in args.lora:
        lname, _, weight = item.partition(":")
        data.setdefault("loras", []).append({"name": lname, "weight": float(weight) if weight else 1.0})
    for item in args.keyframe:
        image, sep, secs = item.rpartition("@")
        if not sep:
            raise ValueError(f"--keyframe {item!r}: expected IMAGE@SECONDS")
        data.setdefault("keyframes", []).append({"image": image, "seconds": float(secs)})
    return GenerationParams.model_validate(data)


def _dtype(name: str):
    import torch
    return None if name == "auto" else getattr(torch, name)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from modules.cancel import CancelledError
    from modules.errors import field_messages
    from modules.framepack.engine import Engine
    from modules.framepack.events import DoneEvent, SectionEvent, StageEvent, StepEvent
    from modules.framepack.inputs import InputError
    from modules.framepack.metadata import MetadataError
    from modules.models.loader import ModelNotAvailableError
    from modules.models.manager import ModelManager
    from modules.models.registry import ModelSet
    from studio.cli import print_field_errors
    from studio.paths import DataPaths, resolve_data_dir
    from studio.run_config import output_options, runtime_config
    from studio.settings import SettingsStore

    paths = DataPaths(resolve_data_dir(args.data_dir))
    settings = SettingsStore(paths.settings_file).load()
    try:
        params = build_params(args)
    except ValidationError as exc:
        print_field_errors(field_messages(exc))
        return 2
    except (MetadataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = settings.apply_to(params)

    model_set = ModelSet(args.models) if args.models else settings.models
    job_hash = hashlib.sha256((params.model_dump_json() + model_set.value).encode()).hexdigest()[:16]
    work_dir = args.work_dir or paths.cli_work_dir / job_hash
    out = output_options(settings, paths, work_dir, output_dir=args.out, save_latents=args.save_latents,
                         name=args.name)
    manager = ModelManager(runtime_config(settings, paths, device=args.device, dtype=_dtype(args.dtype),
                                          model_set=model_set))

    bar = None
    try:
        for event in Engine(manager).generate(params, out):
            if isinstance(event, StageEvent):
                log.info("%s", event.message)
            elif isinstance(event, StepEvent):
                if bar is None and not args.no_progress:
                    bar = tqdm(total=event.total_sections * event.total_steps, unit="step", file=sys.stderr)
                if bar is not None:
                    bar.n = event.section * event.total_steps + event.step
                    bar.set_postfix(section=f"{event.section + 1}/{event.total_sections}",
                                    eta=f"{event.eta_seconds or 0:.0f}s")
                    bar.refresh()
            elif isinstance(event, SectionEvent):
                log.debug("section %d/%d: %d frames", event.section + 1, event.total_sections, event.frames_so_far)
            elif isinstance(event, DoneEvent):
                if bar is not None:
                    bar.close()
                    bar = None
                stats = event.result.info.get("stats", {})
                log.info("finished in %.1f s, peak RSS of the job %.0f MiB", stats.get("wall_seconds", 0.0),
                         stats.get("peak_rss_mb", 0.0))
                print(event.result.video)
        return 0
    except InputError as exc:
        print_field_errors(exc.fields.items())
        return 2
    except ModelNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (KeyboardInterrupt, CancelledError):
        print(f"interrupted; run the same command again to resume from {work_dir}", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
