"""Running a Grid job: every cell through the engine, then one labelled grid video.

The axes and the expansion into cells live in grid_axes.py (checked when the job is added); the labelled
video is composed by modules/media/grid_video.py. :func:`run_grid` runs every cell through
``engine.generate`` (so each cell is an ordinary job with its own MP4 and sidecar, in ``<grid>_cells/``),
re-emitting progress with a section offset so the whole grid reads as one job; then it writes the grid MP4
with the same thumbnail and sidecar writers as every job (outputs.py) and ends with a DoneEvent whose video
is the grid. Finished cells are recorded in the work folder, so running the same job again skips them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modules.cancel import CancelToken
from modules.framepack import metadata as meta
from modules.framepack.events import DoneEvent, Event, GenerationResult, SectionEvent, StageEvent, StepEvent
from modules.framepack.grid_axes import LABELS, GridCell, expand_grid, format_value
from modules.framepack.inputs import check_inputs
from modules.framepack.naming import default_stem
from modules.framepack.outputs import OutputOptions, output_stem, write_sidecar, write_thumbnail
from modules.framepack.params import FPS, GenerationParams
from modules.framepack.sections import section_count
from modules.media.grid_video import compose_grid_video
from modules.media.video_io import atomic_output, probe_video

log = logging.getLogger(__name__)

STATE_NAME = "grid_state.json"  # finished cells, in the grid job's work folder


def _load_state(work_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((work_dir / STATE_NAME).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(work_dir: Path, state: dict[str, Any]) -> None:
    with atomic_output(work_dir / STATE_NAME) as tmp:
        tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")


def _cell_label(params: GenerationParams, cell: GridCell) -> str:
    label = f"{params.grid_x.parameter}={format_value(cell.x_value)}"  # type: ignore[union-attr]
    if params.grid_y is not None:
        label += f", {params.grid_y.parameter}={format_value(cell.y_value)}"
    return label


class _Progress:
    """Re-emits a cell's events as parts of the one grid job (sections offset by the cells before it)."""

    def __init__(self, cells: list[GridCell]) -> None:
        self.estimates = [section_count(c.params.total_seconds, c.params.latent_window_size) for c in cells]
        self.count = len(cells)

    def relay(self, n: int, ev: Event) -> Event | None:
        offset, total = sum(self.estimates[:n]), sum(self.estimates)
        if isinstance(ev, StepEvent):
            if ev.total_sections != self.estimates[n]:  # trust the engine over the estimate
                self.estimates[n] = ev.total_sections
                total = sum(self.estimates)
            return StepEvent(offset + ev.section, total, ev.step, ev.total_steps, ev.eta_seconds, ev.preview)
        if isinstance(ev, SectionEvent):
            return SectionEvent(offset + ev.section, total, ev.frames_so_far, ev.preview_video)
        if isinstance(ev, StageEvent):
            return StageEvent(f"[cell {n + 1}/{self.count}] {ev.message}")
        return None


def _run_cell(engine: Any, cell: GridCell, cell_out: OutputOptions, cancel: CancelToken, n: int,
              progress: _Progress) -> Iterator[Event]:
    """One cell through the engine; `done = yield from _run_cell(...)` is what the grid records of it."""
    result: GenerationResult | None = None
    for ev in engine.generate(cell.params, cell_out, cancel):
        if isinstance(ev, DoneEvent):
            result = ev.result
        elif (relayed := progress.relay(n, ev)) is not None:
            yield relayed
    if result is None:
        raise RuntimeError(f"grid cell {n + 1}: the engine finished without a result")
    return {"video": str(result.video), "metadata": str(result.metadata) if result.metadata else None,
            "frames": result.frames, "seed": result.seed, "skipped_steps": result.skipped_steps,
            "width": result.width, "height": result.height}


def run_grid(engine: Any, params: GenerationParams, out: OutputOptions, cancel: CancelToken,
             clock: Callable[[], float] = time.monotonic) -> Iterator[Event]:
    """Run a Grid job (module docstring); `engine.generate(cell_params, cell_out, cancel)` runs each cell."""
    started = clock()
    cells = expand_grid(params)
    for cell in cells:  # every cell's inputs are checked before the first one runs (InputError names fields)
        check_inputs(cell.params)
    work_dir = Path(out.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(work_dir)
    if state.get("params") != params.model_dump(mode="json"):
        state = {"params": params.model_dump(mode="json"), "cells": {}}  # another job: start afresh
    stem = state.get("stem") or output_stem(out, f"grid_{default_stem(params.seed)}")
    state["stem"] = stem
    _save_state(work_dir, state)
    cells_dir = Path(out.output_dir) / f"{stem}_cells"

    progress = _Progress(cells)
    results: list[dict[str, Any]] = []
    for n, cell in enumerate(cells):
        cancel.raise_if_cancelled()
        key, label = f"{cell.x_index},{cell.y_index}", _cell_label(params, cell)
        done = state["cells"].get(key)
        if done and Path(done["video"]).is_file():
            yield StageEvent(f"Grid cell {n + 1}/{len(cells)} ({label}): already done")
        else:
            yield StageEvent(f"Grid cell {n + 1}/{len(cells)} ({label})")
            # A cell is an ordinary job of the grid's output settings, named after the grid.
            cell_out = dataclasses.replace(out, output_dir=cells_dir, metadata_dir=None,
                                           work_dir=work_dir / f"cell_x{cell.x_index}_y{cell.y_index}",
                                           name=f"{stem}_x{cell.x_index}_y{cell.y_index}")
            done = yield from _run_cell(engine, cell, cell_out, cancel, n, progress)
            state["cells"][key] = done
            _save_state(work_dir, state)
        results.append({"x_index": cell.x_index, "y_index": cell.y_index, "x_value": cell.x_value,
                        "y_value": cell.y_value, "generation_type": cell.params.generation_type.value, **done})

    cancel.raise_if_cancelled()
    yield StageEvent("Composing the grid video")
    yield DoneEvent(_finish_grid(params, out, stem, cells_dir, results, round(clock() - started, 3)))


def _finish_grid(params: GenerationParams, out: OutputOptions, stem: str, cells_dir: Path,
                 results: list[dict[str, Any]], wall_seconds: float) -> GenerationResult:
    """The grid MP4 (with the reproduction comment), its thumbnail and sidecar, and the job's result."""
    x_param = params.grid_x.parameter  # type: ignore[union-attr]
    y_param = params.grid_y.parameter if params.grid_y is not None else None
    x_values = [r["x_value"] for r in results if r["y_index"] == 0]
    y_values = [r["y_value"] for r in results if r["x_index"] == 0] if y_param else None
    cols = len(x_values)
    tiles = [[Path(r["video"]) for r in results[row * cols:(row + 1) * cols]] for row in range(len(results) // cols)]
    grid = {"x": {"parameter": x_param, "values": x_values},
            "y": {"parameter": y_param, "values": y_values} if y_param else None,
            "cells": [{k: r[k] for k in ("x_index", "y_index", "x_value", "y_value", "generation_type", "seed",
                                         "frames")} for r in results]}
    repro = meta.reproduction(params, {"grid": grid})
    output_dir = Path(out.output_dir)
    video = compose_grid_video(
        tiles, LABELS.get(x_param, x_param), [format_value(v) for v in x_values],
        LABELS.get(y_param, y_param) if y_param else None,
        [format_value(v) for v in y_values] if y_values is not None else None,
        output_dir / f"{stem}.mp4", FPS, out.crf, comment=meta.comment_text(repro))
    info = probe_video(video)
    thumb = write_thumbnail(video, output_dir / f"{stem}.png")
    skipped = sum(int(r.get("skipped_steps") or 0) for r in results)
    run = {"skipped_steps": skipped, "cells": [{"x_index": r["x_index"], "y_index": r["y_index"],
                                                "skipped_steps": r.get("skipped_steps")} for r in results]}
    sidecar = write_sidecar(out, stem, repro, run)
    extra = [Path(r[k]) for r in results for k in ("video", "metadata") if r.get(k)]
    cell_files = [{"x_index": r["x_index"], "y_index": r["y_index"], "video": Path(r["video"]).name,
                   "metadata": Path(r["metadata"]).name if r.get("metadata") else None} for r in results]
    return GenerationResult(
        video=video, metadata=sidecar, thumbnail=thumb, frames=info.frames, fps=FPS, width=info.width,
        height=info.height, seed=params.seed, skipped_steps=skipped, extra_files=extra,
        info={"grid": grid, "cells_dir": str(cells_dir),
              "stats": {"wall_seconds": wall_seconds, "cells_dir": cells_dir.name, "cell_files": cell_files}})
