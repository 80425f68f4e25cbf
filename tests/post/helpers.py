"""Helpers shared by the post-processing tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def nearest_indices(frames: np.ndarray, reference: np.ndarray) -> list[int]:
    """For each frame, the index of the reference frame it is closest to (mean absolute difference)."""
    ref = reference.astype(np.int16)
    return [int(np.argmin(np.abs(ref - f).mean(axis=(1, 2, 3)))) for f in frames.astype(np.int16)]


def files_in(folder: Path) -> set[str]:
    return {p.name for p in Path(folder).iterdir()}
