"""Fixtures of the video-extension tests: small generated source videos and the tiny VAE (loaded once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def smooth_frames(n: int, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth moving gradients (H.264 keeps them within a few levels) with a per-frame brightness ramp."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        chans = [128 + 80 * np.sin(2 * np.pi * (xx / w + yy / (2 * h)) + phase[c] + 0.25 * i) for c in range(3)]
        frames.append(np.stack(chans, axis=-1) + 40 * (i / max(1, n - 1) - 0.5))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def write_source(path: Path, n: int = 30, h: int = 64, w: int = 64, fps: float = 30) -> Path:
    from modules.media.video_io import write_video

    return write_video(path, smooth_frames(n, h, w), fps=fps, crf=4)


@pytest.fixture(scope="session")
def source_video(tmp_path_factory) -> Path:
    """A 1 s, 64x64, 30 fps H.264 source (30 frames)."""
    return write_source(tmp_path_factory.mktemp("video_src") / "source.mp4")


@pytest.fixture(scope="session")
def tiny_manager():
    """One tiny-model manager for the whole video area (models load once)."""
    from modules.models.manager import ModelManager, RuntimeConfig
    from modules.models.registry import ModelSet

    return ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))


@pytest.fixture(scope="session")
def tiny_vae(tiny_manager):
    return tiny_manager.shared().vae
