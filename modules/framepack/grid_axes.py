"""Grid job axes: one base job, one or two varied parameters, expanded into every cell's full parameters.

:func:`expand_grid` turns a Grid job into cells (row-major: Y outer, X inner), each a full GenerationParams of
type Original (Original with Endframe when the base job has an end frame) or F1, per ``grid_model``. Values
are parsed per parameter (ints, floats, prompts) and validated against the same field ranges as ordinary jobs;
``lora_weight`` needs a LoRA in the base job and sets the weight of every selected LoRA; ``end_frame_strength``
needs an end frame; ``teacache_threshold`` turns TeaCache on. The input checker (inputs.py) expands every
Grid job, so a grid with a cell out of range is refused when it is added, naming the cell and the field.
Running the cells and the grid video live in grid.py.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modules.errors import format_errors
from modules.framepack.params import CacheType, GenerationParams, GenerationType, GridAxis
from modules.framepack.prompts import PromptError, parse_timestamped_prompt

log = logging.getLogger(__name__)

MAX_CELLS = 64  # 8 x 8: beyond that the tiles become unreadable and the job takes hours

_INT = {"steps", "seed", "latent_window_size", "blend_sections"}
_FLOAT = {"distilled_cfg", "cfg", "teacache_threshold", "total_seconds", "lora_weight", "end_frame_strength"}
_TEXT = {"prompt"}

LABELS = {
    "steps": "Steps", "distilled_cfg": "Distilled CFG", "cfg": "CFG", "seed": "Seed",
    "teacache_threshold": "TeaCache thresh", "total_seconds": "Length (s)", "prompt": "Prompt",
    "latent_window_size": "Latent window", "lora_weight": "LoRA weight", "blend_sections": "Blend sections",
    "end_frame_strength": "End frame infl.",
}


class GridError(ValueError):
    """A Grid job whose axes or values cannot be run; the message names the axis and the value."""


@dataclass
class GridCell:
    x_index: int
    y_index: int
    x_value: Any
    y_value: Any  # None without a Y axis
    params: GenerationParams


# --- values ----------------------------------------------------------------------------------------------

def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("not a whole number")
    if isinstance(v, int):
        return v
    f = _to_float(v)
    if not f.is_integer():
        raise ValueError("not a whole number")
    return int(f)


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("not a number")
    try:
        f = float(v.strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None
    if not math.isfinite(f):
        raise ValueError("not a finite number")
    return f


def parse_value(parameter: str, value: Any) -> Any:
    """One axis value as the parameter's type (ValueError with a short reason otherwise)."""
    if parameter in _INT:
        return _to_int(value)
    if parameter in _FLOAT:
        return _to_float(value)
    if parameter in _TEXT:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("an empty prompt")
        parse_timestamped_prompt(value)  # raises PromptError (a ValueError) with the reason
        return value.strip()
    raise ValueError(f"unknown grid parameter {parameter!r}")


def parse_axis_values(parameter: str, text: str) -> list[Any]:
    """Values typed into one text box: numbers separated by commas, semicolons or spaces, prompts one per line.

    ValueError naming the parameter and the value that is wrong, or saying that none was given."""
    text = (text or "").strip()
    if parameter in _TEXT:
        items = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        items = [t for t in re.split(r"[,;\s]+", text) if t]
    if not items:
        raise ValueError(f"grid values for {parameter}: enter at least one value")
    values = []
    for v in items:
        try:
            values.append(parse_value(parameter, v))
        except ValueError as exc:
            raise ValueError(f"grid values for {parameter}: {v!r} is {exc}") from exc
    return values


def format_value(value: Any) -> str:
    """How a value is shown in labels and messages."""
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- expansion -------------------------------------------------------------------------------------------

def cell_generation_type(params: GenerationParams) -> GenerationType:
    if params.grid_model == "F1":
        return GenerationType.F1
    return GenerationType.ORIGINAL_ENDFRAME if params.end_image is not None else GenerationType.ORIGINAL


def _override(base: dict[str, Any], parameter: str, value: Any) -> None:
    if parameter == "lora_weight":
        base["loras"] = [{**spec, "weight": value} for spec in base["loras"]]
    elif parameter == "teacache_threshold":
        base["teacache_threshold"] = value
        base["cache_type"] = CacheType.TEACACHE
    else:
        base[parameter] = value


def _axis_values(axis_name: str, axis: GridAxis, params: GenerationParams) -> list[Any]:
    p = axis.parameter
    if p == "lora_weight" and not params.loras:
        raise GridError(f"{axis_name} (lora_weight): the base job has no LoRA selected")
    if p == "end_frame_strength" and params.end_image is None:
        raise GridError(f"{axis_name} (end_frame_strength): the base job has no end frame")
    values = []
    for v in axis.values:
        try:
            values.append(parse_value(p, v))
        except (ValueError, TypeError, PromptError) as exc:
            raise GridError(f"{axis_name} ({p}): value {v!r}: {exc}") from exc
    dupes = sorted({format_value(v) for v in values if values.count(v) > 1})
    if dupes:
        raise GridError(f"{axis_name} ({p}): repeated value(s) {', '.join(dupes)}")
    return values


def expand_grid(params: GenerationParams) -> list[GridCell]:
    """Every combination of the X (and Y) values as full job parameters, row-major (module docstring)."""
    if params.grid_x is None:
        raise GridError("grid_x: a Grid job needs at least the X axis")
    if params.grid_y is not None and params.grid_y.parameter == params.grid_x.parameter:
        raise GridError(f"grid_y ({params.grid_y.parameter}): the same parameter as the X axis")
    if params.input_video is not None:
        log.info("grid: the input video is ignored (grids run image-to-video cells)")
    xs = _axis_values("grid_x", params.grid_x, params)
    ys = _axis_values("grid_y", params.grid_y, params) if params.grid_y is not None else [None]
    if len(xs) * len(ys) > MAX_CELLS:
        raise GridError(f"grid: {len(xs)} x {len(ys)} = {len(xs) * len(ys)} cells; at most {MAX_CELLS}")

    base = params.model_dump()
    base.update(generation_type=cell_generation_type(params), grid_x=None, grid_y=None, input_video=None)
    cells = []
    for yi, yv in enumerate(ys):
        for xi, xv in enumerate(xs):
            d = {**base, "loras": [dict(s) for s in base["loras"]]}
            _override(d, params.grid_x.parameter, xv)
            if params.grid_y is not None:
                _override(d, params.grid_y.parameter, yv)
            try:
                cell_params = GenerationParams.model_validate(d)
            except ValidationError as exc:
                what = f"grid_x={format_value(xv)}"
                if params.grid_y is not None:
                    what += f", grid_y={format_value(yv)}"
                raise GridError(f"grid cell {what}: {format_errors(exc)[0]}") from exc
            cells.append(GridCell(xi, yi, xv, yv, cell_params))
    return cells
