"""A labelled grid video: every cell video as a tile, with the axis values written around them.

Layout: a header row with the X labels, a left column with the Y labels (when there is a Y axis), and a
caption strip under every tile naming its values. Shorter cells hold their last frame until the longest one
ends. Used by Grid jobs (modules/framepack/grid.py); labels are drawn with OpenCV's Hershey font (ASCII).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from modules.media.video_io import iter_frames, probe_video, write_video

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


def layout_grid(rows: int, cols: int, tile_w: int, tile_h: int, x_label: str, x_values: Sequence[str],
                y_label: str | None, y_values: Sequence[str] | None) -> GridLayout:
    """The geometry and the wrapped label lines; x_values / y_values: the axis values as shown."""
    font = _Font.for_tile(tile_w)
    pad = 3
    has_y = bool(y_values) and y_label is not None
    header = [font.wrap(f"{x_label}: {v}", tile_w - 2 * pad, 3) for v in x_values]
    captions = []
    for r in range(rows):
        row = []
        for c in range(cols):
            text = f"{x_label}={x_values[c]}" if c < len(x_values) else ""
            if has_y and r < len(y_values or []):
                text = f"{text}, {y_label}={y_values[r]}"  # type: ignore[index]
            row.append(font.wrap(text, tile_w - 2 * pad, 3))
        captions.append(row)
    header_h = _even_up(max(len(h) for h in header) * font.line_h + 2 * pad)
    caption_h = _even_up(max(len(c) for row in captions for c in row) * font.line_h + 2 * pad)
    label_w = _even_up(max(tile_w, 96)) if has_y else 0
    row_max_lines = max(1, (tile_h + caption_h - 2 * pad) // font.line_h)  # a label stays beside its row
    row_lines = [font.wrap(f"{y_label}: {v}", label_w - 2 * pad, row_max_lines)
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


def compose_grid_video(cells: list[list[Path]], x_label: str, x_values: Sequence[str], y_label: str | None,
                       y_values: Sequence[str] | None, out_path: Path, fps: float, crf: int,
                       comment: str | None = None) -> Path:
    """One MP4 of all cell videos (rows by columns) with labels; shorter cells hold their last frame.

    Raises ValueError when the cells and the axis values do not make a full grid.
    """
    if not cells or not cells[0]:
        raise ValueError("grid: no cell videos to compose")
    rows, cols = len(cells), len(cells[0])
    if any(len(r) != cols for r in cells):
        raise ValueError("grid: every row needs the same number of cells")
    if len(x_values) != cols or (y_values and len(y_values) != rows) or (not y_values and rows != 1):
        raise ValueError(f"grid: {rows}x{cols} cells do not match {len(x_values)} X and "
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
