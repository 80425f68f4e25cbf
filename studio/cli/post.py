"""`python -m studio post <operation> INPUT [options] -o OUT`: run one post-processing operation.

Flags come from each operation's options model (one flag per field, nested filter settings
flattened), so they never drift from the engine's defaults and ranges. Also:
`post presets list|show|save|delete`, `post clear-temp`, `post save FILE`.
"""

from __future__ import annotations

import argparse
import json
import logging
import types
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from studio.paths import DataPaths, resolve_data_dir
from studio.settings import SettingsStore

log = logging.getLogger(__name__)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel], skip: set[str] = frozenset()) -> None:
    """One flag per field of `model` (nested models flattened); defaults stay None = model default."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            group = parser.add_argument_group(name)
            _add_model_flags(group, ann)  # type: ignore[arg-type]
            continue
        args = typing.get_args(ann)
        if typing.get_origin(ann) in (typing.Union, types.UnionType):
            ann = next(a for a in args if a is not type(None))
            args = typing.get_args(ann)
        help_text = (field.description or "") + f" (default: {field.default})"
        kw: dict = {"default": None, "help": help_text, "dest": name}
        if ann is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(ann) is typing.Literal:
            kinds = {type(a) for a in args}
            kw["type"] = float if kinds == {int, float} else kinds.pop() if len(kinds) == 1 else str
            kw["choices"] = [kw["type"](a) for a in args]
        elif ann in (int, float, str):
            kw["type"] = ann
        parser.add_argument(_flag(name), **kw)


def _model_values(model: type[BaseModel], ns: argparse.Namespace) -> dict:
    out: dict = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested = _model_values(ann, ns)
            if nested:
                out[name] = nested
            continue
        value = getattr(ns, name, None)
        if value is not None:
            out[name] = value
    return out


class ProgressBars:
    """Progress callback drawing one tqdm bar per stage (download, upscale, ...); `download --post` uses it too."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.stage = ""

    def __call__(self, p) -> None:
        if p.stage != self.stage or self.bar is None:
            self.close()
            self.stage = p.stage
            unit = "B" if p.stage.startswith("download") else "frame"
            self.bar = tqdm(total=p.total or None, desc=p.stage, unit=unit, unit_scale=unit == "B",
                            dynamic_ncols=True)
        if p.total and self.bar.total != p.total:
            self.bar.total = p.total
        self.bar.n = p.done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _paths(args: argparse.Namespace) -> DataPaths:
    return DataPaths(resolve_data_dir(args.data_dir))


def _run_operation(args: argparse.Namespace) -> int:
    from modules.postprocess.common import PostProcessError
    from modules.postprocess.operations import get_operation
    from modules.postprocess.presets import PresetStore
    from modules.postprocess.tiny import weight_source

    op = get_operation(args.operation)
    paths = _paths(args)
    settings = SettingsStore(paths.settings_file).load()
    values = _model_values(op.options, args)
    if "crf" in op.options.model_fields and "crf" not in values:
        values["crf"] = settings.mp4_crf
    if op.name == "filters" and args.preset:
        try:
            base = PresetStore(paths.presets_dir).load(args.preset).model_dump()
        except PostProcessError as exc:
            raise SystemExit(f"error: {exc}") from None
        base.update(values.get("settings", {}))
        values["settings"] = base
    try:
        options = op.options.model_validate(values)
    except ValidationError as exc:
        raise SystemExit(f"invalid options for {op.name}: {exc}") from None
    inputs = [Path(p) for p in args.input]
    source: object
    if op.input_kind == "video":
        if len(inputs) != 1:
            raise SystemExit(f"{op.name} takes exactly one input video")
        source = inputs[0]
    elif op.input_kind == "images" and len(inputs) == 1 and inputs[0].is_dir():
        source = inputs[0]
    else:
        source = inputs
    extras = {}
    if op.needs_weights:
        folder = Path(args.weights_dir) if args.weights_dir else paths.postprocess_weights_dir
        extras["weights"] = weight_source(folder, args.models or settings.models,
                                          allow_unverified=args.allow_unverified_weights)
    bars = ProgressBars()
    try:
        result = op.run(source, options, Path(args.output), progress=bars, **extras)
    except (PostProcessError, ValueError) as exc:
        bars.close()
        raise SystemExit(f"error: {exc}") from None
    bars.close()
    print(result)
    return 0


def _run_presets(args: argparse.Namespace) -> int:
    from modules.postprocess.filters import FilterSettings
    from modules.postprocess.presets import PresetStore

    store = PresetStore(_paths(args).presets_dir)
    try:
        if args.action == "list":
            for name in store.names():
                print(name)
        elif args.action == "show":
            print(json.dumps(store.load(args.name).model_dump(), indent=2))
        elif args.action == "save":
            print(store.save(args.name, FilterSettings.model_validate(_model_values(FilterSettings, args))))
        elif args.action == "delete":
            store.delete(args.name)
    except (ValueError, ValidationError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0


def _run_clear_temp(args: argparse.Namespace) -> int:
    from modules.postprocess.housekeeping import clear_folder

    paths = _paths(args)
    folder = paths.resolve(SettingsStore(paths.settings_file).load().postprocess_temp_dir)
    print(f"removed {clear_folder(folder)} entries from {folder}")
    return 0


def _run_save(args: argparse.Namespace) -> int:
    from modules.postprocess.housekeeping import save_to_folder

    paths = _paths(args)
    folder = paths.resolve(SettingsStore(paths.settings_file).load().postprocess_output_dir)
    print(save_to_folder(Path(args.file), folder))
    return 0


def register(subparsers) -> None:
    from modules.postprocess.filters import FilterSettings
    from modules.postprocess.operations import OPERATIONS

    post = subparsers.add_parser("post", help="post-process videos (upscale, RIFE, filters, speed, ...)")
    ops = post.add_subparsers(dest="operation", required=True)
    for op in OPERATIONS.values():
        p = ops.add_parser(op.name, help=op.summary, description=op.summary)
        nargs = "+" if op.input_kind in ("videos", "images") else 1
        p.add_argument("input", nargs=nargs,
                       help={"video": "input video", "videos": "input videos, in order",
                             "images": "a folder of images, or image files in order"}[op.input_kind])
        p.add_argument("-o", "--output", required=True,
                       help="output folder (a unique sub-folder is created)" if op.output_kind == "folder"
                       else "output file")
        p.add_argument("--data-dir", default=None, help="FP-Studio data directory (settings, presets, weights)")
        if op.name == "filters":
            p.add_argument("--preset", default=None, help="start from this preset (built-in or user)")
        if op.needs_weights:
            p.add_argument("--weights-dir", default=None, help="where weights are cached (default: DATA/weights/postprocess)")
            p.add_argument("--allow-unverified-weights", action="store_true",
                           help="load weights that have no published sha256 (not recommended)")
            p.add_argument("--models", choices=["real", "tiny"], default=None,
                           help="real weights, or tiny random networks of the same architectures that need no "
                           "download (default: the `models` setting)")
        _add_model_flags(p, op.options)
        p.set_defaults(func=_run_operation)

    pre = ops.add_parser("presets", help="list, show, save or delete filter presets")
    pre.add_argument("action", choices=["list", "show", "save", "delete"])
    pre.add_argument("name", nargs="?", default="")
    pre.add_argument("--data-dir", default=None)
    _add_model_flags(pre, FilterSettings)
    pre.set_defaults(func=_run_presets)

    clr = ops.add_parser("clear-temp", help="delete everything in the post-processing temp folder")
    clr.add_argument("--data-dir", default=None)
    clr.set_defaults(func=_run_clear_temp)

    sav = ops.add_parser("save", help="copy a processed file to the permanent post-processing folder")
    sav.add_argument("file")
    sav.add_argument("--data-dir", default=None)
    sav.set_defaults(func=_run_save)
