"""Job metadata: the sidecar JSON (everything to reproduce the job) and the MP4 comment.

Neither holds times, ids, process or memory figures or the output's own file name, so the same job gives
the same bytes every run. The sidecar adds the reproducible run facts (which steps the cache skipped).
Both parse back into GenerationParams with `parse_metadata` (strict, or lenient for the Generate form).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import platform
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modules.errors import format_errors
from modules.framepack.params import FORM_DRAFT, GenerationParams

FORMAT = "fp-studio/1"
_LIBS = ("torch", "diffusers", "transformers", "av", "numpy")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBS:  # all ship with the app
        out[name] = str(importlib.import_module(name).__version__)
    return out


def file_sha256(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reproduction(params: GenerationParams, derived: dict[str, Any]) -> dict[str, Any]:
    """The fields that determine the output bytes: parameters, derived sizes, model set, input hashes."""
    inputs = {"start_image": file_sha256(params.start_image), "end_image": file_sha256(params.end_image),
              "input_video": file_sha256(params.input_video),
              "keyframes": [file_sha256(k.image) for k in params.keyframes]}
    return {"format": FORMAT, "params": params.model_dump(mode="json"), "derived": derived,
            "input_sha256": inputs, "versions": library_versions()}


def comment_text(repro: dict[str, Any]) -> str:
    return json.dumps(repro, sort_keys=True, separators=(",", ":"))


def sidecar(repro: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {**repro, "run": run}


def write_sidecar(path: Path, data: dict[str, Any]) -> Path:
    from modules.media.video_io import atomic_output
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return Path(path)


class MetadataError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid metadata: " + "; ".join(problems))


PARAMS_KEYS = ("params", "parameters", "generation_params")  # ours first; other tools' names after
_INPUT_FILE_FIELDS = ("start_image", "end_image", "input_video", "keyframes")


def parse_metadata(data: dict[str, Any] | str | Path, *, lenient: bool = False) -> tuple[GenerationParams, list[str]]:
    """GenerationParams from a sidecar (a dict, JSON text or a file; ours holds them under "params", a bare
    parameter object works too), and notes.

    The one metadata parser. Strict (the default; CLI --params, reproduction): every unknown or bad field is an
    error. lenient (the Generate form loading an old or foreign sidecar): unknown fields and input files that
    no longer exist are dropped, each with a note, so what can be used still fills the form; a Video job whose
    source video is gone keeps its type (a form draft, FORM_DRAFT: the form asks for a video before adding)."""
    raw = _params_object(_json_object(data))
    notes: list[str] = []
    if lenient:
        raw, notes = _usable_part(raw)
    try:
        return GenerationParams.model_validate(raw, context={FORM_DRAFT: lenient}), notes
    except ValidationError as exc:
        raise MetadataError(format_errors(exc)) from exc


def params_from_metadata(data: dict[str, Any] | str | Path) -> GenerationParams:
    """GenerationParams from a sidecar, strictly (parse_metadata)."""
    return parse_metadata(data)[0]


def _json_object(data: dict[str, Any] | str | Path) -> dict[str, Any]:
    # A Path is a file to read; a str is JSON text (never taken for a path: the UI passes uploaded text).
    if isinstance(data, Path):
        try:
            data = json.loads(Path(data).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MetadataError([f"file: not readable JSON ({exc})"]) from exc
    elif isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise MetadataError([f"json: not valid JSON ({exc.msg} at line {exc.lineno})"]) from exc
    if not isinstance(data, dict):
        raise MetadataError(["root: a JSON object is expected"])
    return data


def _params_object(data: dict[str, Any]) -> dict[str, Any]:
    for key in PARAMS_KEYS:
        if key in data:
            if not isinstance(data[key], dict):
                raise MetadataError([f"{key}: a JSON object is expected"])
            return data[key]
    return data


def _usable_part(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The known fields whose files still exist, and a note for everything left out."""
    known = set(GenerationParams.model_fields)
    unknown = sorted(k for k in raw if k not in known)
    if unknown and not set(raw) & known:
        raise MetadataError([f"no FP-Studio parameters found (fields: {', '.join(unknown[:10])})"])
    notes = [f"ignored fields: {', '.join(unknown)}"] if unknown else []
    clean = {k: v for k, v in raw.items() if k in known}
    for key in _INPUT_FILE_FIELDS:
        if key in clean and not _files_exist(clean[key]):
            notes.append(f"{key}: file not found, left empty")
            clean.pop(key)
    return clean, notes


def _files_exist(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return all(isinstance(k, dict) and Path(str(k.get("image", ""))).is_file() for k in value)
    return Path(str(value)).is_file()
