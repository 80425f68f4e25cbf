"""Shared test fixtures: offline tiny models, golden data, a fresh data directory, small videos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Every test runs offline; the tiny model set ships in the repository.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# MKL picks its float32 GEMM kernels by CPU (AVX2, AVX-512, ...), and the summation order moves the golden
# parity tests by up to 2.5e-4 on an AVX-512 machine. Its Conditional Numerical Reproducibility mode makes
# BLAS results the same on every x86 CPU, so the golden cases test our loop, not the CPU. Read by MKL when
# it initialises, so it is set here, before any test imports torch (subprocesses inherit it).
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

from studio.paths import DataPaths  # noqa: E402  (after the environment above)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "fixtures" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN_DIR


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """An empty FP-Studio data directory."""
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture()
def paths(data_dir: Path) -> DataPaths:
    return DataPaths(data_dir)


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    """A 64x64 RGB start image of random pixels (the same every time)."""
    p = tmp_path / "start.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
    return p


def make_test_frames(n: int = 12, h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """Frames with a moving gradient and a per-frame marker so order changes are visible after decoding."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(h, w, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        f = base.copy()
        f[:, : max(1, (i + 1) * w // (n + 1))] = (255 * i // max(1, n - 1))
        frames.append(f)
    return np.stack(frames)


@pytest.fixture()
def small_video(tmp_path: Path) -> Path:
    """A 12-frame 96x64 H.264 MP4 at 30 fps."""
    from modules.media.video_io import write_video

    return write_video(tmp_path / "small.mp4", make_test_frames(), fps=30, crf=10)
