"""Fixtures for post-processing tests: tiny videos and a helper that matches decoded frames to sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modules.media.video_io import read_video, write_video
from tests.conftest import make_test_frames



@pytest.fixture()
def source_frames(small_video: Path) -> np.ndarray:
    """The decoded frames of `small_video` (what every operation actually starts from)."""
    return read_video(small_video)[0]


@pytest.fixture()
def tiny_video(tmp_path: Path) -> Path:
    """4 frames of 16 x 16 at 30 fps, for the neural-network operations."""
    return write_video(tmp_path / "tiny.mp4", make_test_frames(n=4, h=16, w=16, seed=3), fps=30, crf=10)

