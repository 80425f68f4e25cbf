"""Running a Grid job: every cell through the engine, then one labelled grid video.

The axes and the expansion into cells live in grid_axes.py (checked when the job is added).

* :func:`compose_grid_video` writes one MP4: a header row with the X labels, a left column with the Y labels,
  and every cell as a tile with a caption strip under it naming its values. Shorter cells hold their last
  frame until the longest one ends.
* :func:`run_grid` runs every cell through the engine (progress re-emitted with a section offset, so the
  whole grid reads as one job), keeps the individual videos in ``<grid>_cells/``, writes the grid MP4, a
  thumbnail and one metadata JSON describing the grid, and ends with a DoneEvent whose video is the grid.
  Finished cells are recorded in the work folder, so running the same job again skips them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from modules.framepack import naming
from modules.cancel import CancelToken
from modules.framepack.events import (
    DoneEvent, Event, GenerationResult, SectionEvent, StageEvent, StepEvent,
)
from modules.framepack.outputs import OutputOptions
from modules.framepack.grid_axes import LABELS, GridError, expand_grid, format_value
from modules.framepack.params import FPS, GenerationParams

log = logging.getLogger(__name__)

# --- composition -----------------------------------------------------------------------------------------

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BG = (24, 24, 24)
_FG = (235, 235, 235)


def _ascii(text: str) -> str:
    # Hershey fonts draw ASCII only.
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text.replace("\n", " "))


def _even_up(n: int) -> int:
    return n + (n % 2)


@dataclass
class _Font:
    scale: float
    line_h: int

    @classmethod
    def for_tile(cls, tile_w: int) -> "_Font":
        scale = min(0.8, max(0.3, tile_w / 400))
        (_, h), base = cv2.getTextSize("Ag", _FONT, scale, 1)
        return cls(scale, h + base + 3)

    def width(self, text: str) -> int:
        return cv2.getTextSize(text, _FONT, self.scale, 1)[0][0]

    def wrap(self, text: str, max_w: int, max_lines: int) -> list[str]:
        """Greedy word wrap by pixel width; overlong words are cut; the last line ends in '..' if cut."""
        words, lines, cur = _ascii(text).split(), [], ""
        for word in words:
            cand = f"{cur} {word}".strip()
            if self.width(cand) <= max_w:
                cur = cand
                continue
            if cur:
                lines.append(cur)
            cur = word
            while self.width(cur) > max_w and len(cur) > 1:
                cut = len(cur) - 1
                while cut > 1 and self.width(cur[:cut]) > max_w:
                    cut -= 1
                lines.append(cur[:cut])
                cur = cur[cut:]
        if cur:
            lines.append(cur)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            last = lines[-1]
            while last and self.width(last + "..") > max_w:
                last = last[:-1]
            lines[-1] = last + ".."
        return lines or [""]


@dataclass
class GridLayout:
    """Pixel geometry of a grid video: tile boxes (x, y, w, h) indexed [row][col]."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    header_h: int
    label_w: int
    caption_h: int
    rows: int
    cols: int
    header_lines: list[list[str]] = field(default_factory=list)
    row_lines: list[list[str]] = field(default_factory=list)
    caption_lines: list[list[list[str]]] = field(default_factory=list)

    def tile_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        return (self.label_w + col * self.tile_w, self.header_h + row * (self.tile_h + self.caption_h),
                self.tile_w, self.tile_h)


def layout_grid(rows: int, cols: int, tile_w: int, tile_h: int, x_label: str, x_values: Sequence[Any],
                y_label: str | None, y_values: Sequence[Any] | None) -> GridLayout:
    font = _Font.for_tile(tile_w)
    pad = 3
    has_y = bool(y_values) and y_label is not None
    header = [font.wrap(f"{x_label}: {format_value(v)}", tile_w - 2 * pad, 3) for v in x_values]
    captions = []
    for r in range(rows):
        row = []
        for c in range(cols):
            text = f"{x_label}={format_value(x_values[c])}" if c < len(x_values) else ""
            if has_y and r < len(y_values or []):
                text = f"{text}, {y_label}={format_value(y_values[r])}"  # type: ignore[index]
            row.append(font.wrap(text, tile_w - 2 * pad, 3))
        captions.append(row)
    header_h = _even_up(max(len(h) for h in header) * font.line_h + 2 * pad)
    caption_h = _even_up(max(len(c) for row in captions for c in row) * font.line_h + 2 * pad)
    label_w = _even_up(max(tile_w, 96)) if has_y else 0
    row_max_lines = max(1, (tile_h + caption_h - 2 * pad) // font.line_h)  # a label stays beside its row
    row_lines = [font.wrap(f"{y_label}: {format_value(v)}", label_w - 2 * pad, row_max_lines)
                 for v in (y_values or [])] if has_y else []
    width = _even_up(label_w + cols * tile_w)
    height = _even_up(header_h + rows * (tile_h + caption_h))
    return GridLayout(width, height, tile_w, tile_h, header_h, label_w, caption_h, rows, cols,
                      header, row_lines, captions)


def _draw_lines(img: np.ndarray, lines: list[str], x: int, y: int, w: int, font: _Font,
                center: bool = True) -> None:
    for i, line in enumerate(lines):
        tw = font.width(line)
        tx = x + max(2, (w - tw) // 2) if center else x + 3
        ty = y + 3 + (i + 1) * font.line_h - 4
        cv2.putText(img, line, (tx, ty), _FONT, font.scale, _FG, 1, cv2.LINE_AA)


def _template(layout: GridLayout) -> np.ndarray:
    canvas = np.full((layout.height, layout.width, 3), _BG, dtype=np.uint8)
    font = _Font.for_tile(layout.tile_w)
    for c, lines in enumerate(layout.header_lines):
        _draw_lines(canvas, lines, layout.label_w + c * layout.tile_w, 0, layout.tile_w, font)
    for r, lines in enumerate(layout.row_lines):
        _, y, _, _ = layout.tile_box(r, 0)
        _draw_lines(canvas, lines, 0, y, layout.label_w, font, center=False)
    for r in range(layout.rows):
        for c in range(layout.cols):
            x, y, w, h = layout.tile_box(r, c)
            _draw_lines(canvas, layout.caption_lines[r][c], x, y + h, w, font)
    return canvas


def compose_grid_video(cells: list[list[Path]], x_label: str, x_values: Sequence[Any], y_label: str | None,
                       y_values: Sequence[Any] | None, out_path: Path, fps: float, crf: int,
                       comment: str | None = None) -> Path:
    """One MP4 of all cell videos (rows by columns) with labels; shorter cells hold their last frame."""
    from modules.media.video_io import iter_frames, probe_video, write_video

    if not cells or not cells[0]:
        raise GridError("grid: no cell videos to compose")
    rows, cols = len(cells), len(cells[0])
    if any(len(r) != cols for r in cells):
        raise GridError("grid: every row needs the same number of cells")
    if len(x_values) != cols or (y_values and len(y_values) != rows) or (not y_values and rows != 1):
        raise GridError(f"grid: {rows}x{cols} cells do not match {len(x_values)} X and "
                        f"{len(y_values or [])} Y values")
    first = probe_video(cells[0][0], count_frames=False)
    layout = layout_grid(rows, cols, first.width, first.height, x_label, x_values, y_label, y_values)
    canvas = _template(layout)

    def frames() -> Iterator[np.ndarray]:
        iters = [[iter_frames(p) for p in row] for row in cells]
        last: list[list[np.ndarray | None]] = [[None] * cols for _ in range(rows)]
        try:
            while True:
                alive = False
                for r in range(rows):
                    for c in range(cols):
                        it = iters[r][c]
                        if it is None:
                            continue
                        try:
                            frame = next(it)
                            alive = True
                        except StopIteration:
                            iters[r][c] = None
                            continue
                        if frame.shape[:2] != (layout.tile_h, layout.tile_w):
                            frame = cv2.resize(frame, (layout.tile_w, layout.tile_h), interpolation=cv2.INTER_AREA)
                        last[r][c] = frame
                if not alive:
                    return
                out = canvas.copy()
                for r in range(rows):
                    for c in range(cols):
                        if last[r][c] is not None:
                            x, y, w, h = layout.tile_box(r, c)
                            out[y:y + h, x:x + w] = last[r][c]
                yield out
        finally:
            for row in iters:
                for it in row:
                    if it is not None:
                        it.close()

    return write_video(Path(out_path), frames(), fps=fps, crf=crf, comment=comment)


# --- running ---------------------------------------------------------------------------------------------

def _section_estimate(p: GenerationParams) -> int:
    from modules.framepack.sections import section_count
    return section_count(p.total_seconds, p.latent_window_size)


def _state_path(work_dir: Path) -> Path:
    return Path(work_dir) / "grid_state.json"


def _load_state(work_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(_state_path(work_dir).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_state(work_dir: Path, state: dict[str, Any]) -> None:
    from modules.media.video_io import atomic_output
    with atomic_output(_state_path(work_dir)) as tmp:
        tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")


def _write_thumbnail(video: Path, path: Path) -> Path:
    from PIL import Image

    from modules.media.video_io import atomic_output, iter_frames
    it = iter_frames(video)
    try:
        frame = next(it)
    finally:
        it.close()
    with atomic_output(path) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")
    return path


def run_grid(engine: Any, params: GenerationParams, out: OutputOptions, cancel: CancelToken,
             clock: Callable[[], float] | None = None) -> Iterator[Event]:
    """Run a Grid job (module docstring); `engine.generate(cell_params, cell_out, cancel)` runs each cell."""
    import time

    from modules.framepack import metadata as md
    from modules.framepack.inputs import check_inputs

    clock = clock or time.monotonic
    started = clock()
    cells = expand_grid(params)
    for cell in cells:  # every cell's inputs are checked before the first one runs (InputError names fields)
        check_inputs(cell.params)
    xs = params.grid_x.values  # type: ignore[union-attr]
    x_param = params.grid_x.parameter  # type: ignore[union-attr]
    y_param = params.grid_y.parameter if params.grid_y is not None else None
    x_values = [c.x_value for c in cells if c.y_index == 0]
    y_values = [c.y_value for c in cells if c.x_index == 0] if y_param else None
    assert len(x_values) == len(xs)

    work_dir = Path(out.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    output_dir = Path(out.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(work_dir)
    if state.get("params") != params.model_dump(mode="json"):
        state = {"params": params.model_dump(mode="json"), "cells": {}}  # another job: start afresh
    stem = state.get("stem") or naming.unique_stem(
        output_dir, naming.sanitize_stem(out.name) if out.name else f"grid_{naming.default_stem(params.seed)}")
    state["stem"] = stem
    _save_state(work_dir, state)
    cells_dir = output_dir / f"{stem}_cells"

    estimates = [_section_estimate(c.params) for c in cells]
    total_sections = sum(estimates)
    results: list[dict[str, Any]] = []
    extra: list[Path] = []
    for n, cell in enumerate(cells):
        cancel.raise_if_cancelled()
        key = f"{cell.x_index},{cell.y_index}"
        label = f"{x_param}={format_value(cell.x_value)}"
        if y_param:
            label += f", {y_param}={format_value(cell.y_value)}"
        offset = sum(estimates[:n])
        done = state["cells"].get(key)
        if done and Path(done["video"]).is_file():
            yield StageEvent(f"Grid cell {n + 1}/{len(cells)} ({label}): already done")
        else:
            yield StageEvent(f"Grid cell {n + 1}/{len(cells)} ({label})")
            cell_out = OutputOptions(
                output_dir=cells_dir, work_dir=work_dir / f"cell_x{cell.x_index}_y{cell.y_index}",
                crf=out.crf, save_metadata=out.save_metadata, cleanup_videos=out.cleanup_videos,
                metadata_dir=None, save_latents=out.save_latents,
                name=f"{stem}_x{cell.x_index}_y{cell.y_index}")
            result: GenerationResult | None = None
            for ev in engine.generate(cell.params, cell_out, cancel):
                if isinstance(ev, StepEvent):
                    if ev.total_sections != estimates[n]:  # trust the engine over the estimate
                        total_sections += ev.total_sections - estimates[n]
                        estimates[n] = ev.total_sections
                    yield StepEvent(offset + ev.section, total_sections, ev.step, ev.total_steps,
                                    ev.eta_seconds, ev.preview)
                elif isinstance(ev, SectionEvent):
                    yield SectionEvent(offset + ev.section, total_sections, ev.frames_so_far, ev.preview_video)
                elif isinstance(ev, StageEvent):
                    yield StageEvent(f"[cell {n + 1}/{len(cells)}] {ev.message}")
                elif isinstance(ev, DoneEvent):
                    result = ev.result
            if result is None:
                raise RuntimeError(f"grid cell {label}: the engine finished without a result")
            done = {"video": str(result.video), "metadata": str(result.metadata) if result.metadata else None,
                    "frames": result.frames, "seed": result.seed, "skipped_steps": result.skipped_steps,
                    "width": result.width, "height": result.height}
            state["cells"][key] = done
            _save_state(work_dir, state)
        results.append({"x_index": cell.x_index, "y_index": cell.y_index, "x_value": cell.x_value,
                        "y_value": cell.y_value, "generation_type": cell.params.generation_type.value, **done})
        extra.append(Path(done["video"]))
        if done.get("metadata"):
            extra.append(Path(done["metadata"]))

    cancel.raise_if_cancelled()
    yield StageEvent("Composing the grid video")
    n_cols = len(x_values)
    grid_cells = [[Path(r["video"]) for r in results[row * n_cols:(row + 1) * n_cols]]
                  for row in range(len(results) // n_cols)]
    derived = {"grid": {
        "x": {"parameter": x_param, "values": x_values},
        "y": {"parameter": y_param, "values": y_values} if y_param else None,
        "cells": [{"x_index": r["x_index"], "y_index": r["y_index"], "x_value": r["x_value"],
                   "y_value": r["y_value"], "generation_type": r["generation_type"], "seed": r["seed"],
                   "frames": r["frames"]} for r in results],
    }}
    repro = md.reproduction(params, derived)
    video = compose_grid_video(grid_cells, LABELS.get(x_param, x_param), x_values,
                               LABELS.get(y_param, y_param) if y_param else None, y_values,
                               output_dir / f"{stem}.mp4", FPS, out.crf, comment=md.comment_text(repro))
    from modules.media.video_io import probe_video
    info = probe_video(video)
    thumb = _write_thumbnail(video, output_dir / f"{stem}.png")
    skipped = sum(int(r.get("skipped_steps") or 0) for r in results)
    meta_path = None
    if out.save_metadata:
        meta_dir = Path(out.metadata_dir) if out.metadata_dir else output_dir
        run = {"skipped_steps": skipped,
               "cells": [{"x_index": r["x_index"], "y_index": r["y_index"], "skipped_steps": r.get("skipped_steps")}
                         for r in results]}
        meta_path = md.write_sidecar(meta_dir / f"{stem}.json", md.sidecar(repro, run))
    yield DoneEvent(GenerationResult(
        video=video, metadata=meta_path, thumbnail=thumb, frames=info.frames, fps=FPS, width=info.width,
        height=info.height, seed=params.seed, skipped_steps=skipped, extra_files=extra,
        info={"grid": derived["grid"], "cells_dir": str(cells_dir),
              "stats": {"wall_seconds": round(clock() - started, 3), "cells_dir": cells_dir.name,
                        "cell_files": [{"x_index": r["x_index"], "y_index": r["y_index"],
                                        "video": Path(r["video"]).name,
                                        "metadata": Path(r["metadata"]).name if r.get("metadata") else None}
                                       for r in results]}}))
