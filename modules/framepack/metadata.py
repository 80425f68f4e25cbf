"""Job metadata: the sidecar JSON (everything to reproduce the job) and the MP4 comment.

Neither holds times, ids, process or memory figures or the output's own file name, so the same job gives
the same bytes every run. The sidecar adds the reproducible run facts (which steps the cache skipped).
Both parse back into GenerationParams with `params_from_metadata`.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modules.framepack.params import GenerationParams

FORMAT = "fp-studio/1"
_LIBS = ("torch", "diffusers", "transformers", "av", "numpy")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBS:
        try:
            mod = __import__(name)
            out[name] = str(getattr(mod, "__version__", "?"))
        except ImportError:
            pass
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


def params_from_metadata(data: dict[str, Any] | str | Path) -> GenerationParams:
    """GenerationParams from a sidecar (ours: under "params"; or a bare parameter object)."""
    # A str is JSON text when it starts like JSON (object or array), else a file path.
    if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith(("{", "["))):
        try:
            data = json.loads(Path(data).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MetadataError([f"file: not readable JSON ({exc})"]) from exc
    elif isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise MetadataError([f"json: {exc}"]) from exc
    if not isinstance(data, dict):
        raise MetadataError(["root: a JSON object is expected"])
    raw = data.get("params", data)
    if not isinstance(raw, dict):
        raise MetadataError(["params: a JSON object is expected"])
    try:
        return GenerationParams.model_validate(raw)
    except ValidationError as exc:
        raise MetadataError([f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                             for e in exc.errors()]) from exc
