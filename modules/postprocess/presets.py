"""Filter presets: built-ins defined here, user presets as JSON files in the presets folder.

User presets live in `<presets_dir>/filters/<name>.json` (the data directory's `presets/`, shared
with the generation presets, hence the sub-folder). Built-in names cannot be overwritten or deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

from pydantic import ValidationError

from .common import PostProcessError
from .filters import FilterSettings

log = logging.getLogger(__name__)

BUILTIN_PRESETS: dict[str, FilterSettings] = {
    "none": FilterSettings(),
    "cinematic": FilterSettings(contrast=1.1, saturation=0.9, s_curve=0.6, vignette=0.4, film_grain=6),
    "vivid": FilterSettings(contrast=1.15, saturation=1.4, sharpen=0.6),
    "warm": FilterSettings(temperature=35, saturation=1.05),
    "cool": FilterSettings(temperature=-35),
    "vintage": FilterSettings(contrast=0.9, saturation=0.6, temperature=25, vignette=0.6, film_grain=14),
    "black_and_white": FilterSettings(saturation=0.0, contrast=1.15, s_curve=0.4),
    "soft": FilterSettings(blur=1.2, brightness=0.03, contrast=0.95),
    "sharp_clean": FilterSettings(denoise=3, sharpen=1.0),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
SUBFOLDER = "filters"


class PresetError(PostProcessError):
    """Unknown, invalid or protected preset."""


class PresetStore:
    def __init__(self, presets_dir: Path) -> None:
        self.folder = Path(presets_dir) / SUBFOLDER

    def _path(self, name: str) -> Path:
        if not _NAME.match(name) or name.endswith("."):
            raise PresetError(f"invalid preset name {name!r}: use letters, digits, space, _ . - (max 64)")
        return self.folder / f"{name}.json"

    def user_names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if _NAME.match(p.stem) and not p.name.startswith("."))

    def names(self) -> list[str]:
        """Built-in presets first, then user presets (alphabetical)."""
        return list(BUILTIN_PRESETS) + [n for n in self.user_names() if n not in BUILTIN_PRESETS]

    def load(self, name: str) -> FilterSettings:
        if name in BUILTIN_PRESETS:
            return BUILTIN_PRESETS[name].model_copy()
        path = self._path(name)
        if not path.is_file():
            raise PresetError(f"unknown preset {name!r}; available: {', '.join(self.names())}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return FilterSettings.model_validate(data.get("settings", data) if isinstance(data, dict) else data)
        except (ValueError, ValidationError) as exc:
            raise PresetError(f"preset {name!r} is not a valid filter preset ({path.name}): {exc}") from exc

    def save(self, name: str, settings: FilterSettings) -> Path:
        if name in BUILTIN_PRESETS:
            raise PresetError(f"{name!r} is a built-in preset; choose another name")
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"kind": "fp-studio-filter-preset", "version": 1, "name": name,
                              "settings": settings.model_dump()}, indent=2)
        fd, tmp = tempfile.mkstemp(prefix=".preset-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("saved filter preset %s", path)
        return path

    def delete(self, name: str) -> None:
        if name in BUILTIN_PRESETS:
            raise PresetError(f"{name!r} is a built-in preset and cannot be deleted")
        path = self._path(name)
        if not path.is_file():
            raise PresetError(f"unknown preset {name!r}")
        path.unlink()
