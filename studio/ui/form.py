"""Generate-form values <-> GenerationParams: the pure part of the Generate tab (no Gradio), tested directly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, get_args

from modules.framepack.grid_axes import parse_axis_values
from modules.framepack.metadata import parse_metadata
from modules.framepack.params import GenerationParams, GenerationType, GridParameter

# GenerationParams fields that map one-to-one onto a form control.
SCALAR_FIELDS = (
    "generation_type", "prompt", "negative_prompt", "blend_sections",
    "end_frame_strength", "end_frame_embedding_blend", "num_context_frames", "combine_with_source",
    "latent_image", "seed", "total_seconds", "width", "height", "steps", "cfg", "distilled_cfg", "cfg_rescale",
    "latent_window_size", "cache_type", "teacache_threshold", "magcache_threshold",
    "magcache_max_consecutive_skips", "magcache_retention_ratio", "grid_model",
)
INT_FIELDS = {n for n in SCALAR_FIELDS if GenerationParams.model_fields[n].annotation is int}
GRID_PARAMETERS: tuple[str, ...] = get_args(GridParameter)
GRID_NONE = "(none)"


def parse_keyframe_seconds(text: str, count: int) -> list[float]:
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    if len(parts) != count:
        raise ValueError(f"keyframes: {count} image(s) but {len(parts)} time(s); give one time in seconds per image")
    try:
        return [float(p) for p in parts]
    except ValueError as exc:
        raise ValueError(f"keyframes: times must be numbers ({exc})") from exc


def build_params(values: dict[str, Any], *, start_image: Path | None, end_image: Path | None,
                 input_video: Path | None, keyframes: list[tuple[Path, float]],
                 loras: list[tuple[str, float]], grid_x: tuple[str, str] | None, grid_y: tuple[str, str] | None,
                 randomize_seed: bool, system_prompt: str | None, rng: random.Random | None = None) -> GenerationParams:
    """Validated parameters from the form; raises ValidationError / ValueError listing the bad fields."""
    data: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        if name in values and values[name] is not None:
            v = values[name]
            if name in INT_FIELDS and isinstance(v, float) and v.is_integer():
                v = int(v)
            data[name] = v
    gen_type = GenerationType(data.get("generation_type", GenerationType.ORIGINAL.value))
    if randomize_seed:
        hi = 2**31 - 1  # keeps seeds readable in the UI; any value in the field's range is valid
        data["seed"] = (rng or random.SystemRandom()).randint(0, hi)
    # Only the inputs the chosen type shows are sent, so hidden leftovers never change a job.
    if gen_type.is_video:
        data["input_video"] = input_video
    elif start_image is not None:
        data["start_image"] = start_image
    if gen_type.uses_end_frame and end_image is not None:
        data["end_image"] = end_image
    if gen_type != GenerationType.GRID and keyframes:
        data["keyframes"] = [{"image": p, "seconds": s} for p, s in keyframes]
    data["loras"] = [{"name": n, "weight": w} for n, w in loras]
    if gen_type == GenerationType.GRID:
        if grid_x is None or grid_x[0] in (None, "", GRID_NONE):
            raise ValueError("grid_x: choose the X-axis parameter")
        data["grid_x"] = {"parameter": grid_x[0], "values": parse_axis_values(grid_x[0], grid_x[1])}
        if grid_y is not None and grid_y[0] not in (None, "", GRID_NONE):
            data["grid_y"] = {"parameter": grid_y[0], "values": parse_axis_values(grid_y[0], grid_y[1])}
    if system_prompt:
        data["system_prompt"] = system_prompt
    return GenerationParams.model_validate(data)


def params_from_metadata(text: str) -> tuple[GenerationParams, list[str]]:
    """Parameters and notes from uploaded sidecar text, read leniently (the one parser: metadata.parse_metadata),
    so an old or foreign sidecar still fills what it can. MetadataError (a ValueError) when nothing usable."""
    return parse_metadata(text, lenient=True)


def form_values(params: GenerationParams) -> dict[str, Any]:
    """The scalar form values of a parameter set (enums as their labels)."""
    dumped = params.model_dump(mode="json")
    return {name: dumped[name] for name in SCALAR_FIELDS}
