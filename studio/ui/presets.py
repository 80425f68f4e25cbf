"""Generate-tab presets: named parameter sets per generation type, stored as JSON under presets/generate/<type>/."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[\w\- .]{1,64}$")


class PresetError(ValueError):
    pass


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "default"


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name) or name.startswith("."):
        raise PresetError("Preset name: use 1-64 letters, digits, spaces, '-', '_' or '.'")
    return name


class PresetStore:
    def __init__(self, root: Path) -> None:
        self.root = root / "generate"

    def _dir(self, gen_type: str) -> Path:
        return self.root / _slug(gen_type)

    def names(self, gen_type: str) -> list[str]:
        d = self._dir(gen_type)
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []

    def save(self, gen_type: str, name: str, values: dict[str, Any]) -> str:
        name = _check_name(name)
        d = self._dir(gen_type)
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".preset-", suffix=".json", dir=d)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(values, fh, indent=2, default=str)
        os.replace(tmp, d / f"{name}.json")
        return name

    def load(self, gen_type: str, name: str) -> dict[str, Any]:
        name = _check_name(name)
        path = self._dir(gen_type) / f"{name}.json"
        if not path.is_file():
            raise PresetError(f"Preset {name!r} not found for {gen_type}")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise PresetError(f"Preset {name!r} is not a JSON object")
        return data

    def delete(self, gen_type: str, name: str) -> None:
        name = _check_name(name)
        (self._dir(gen_type) / f"{name}.json").unlink(missing_ok=True)
