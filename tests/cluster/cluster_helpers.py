"""Helpers of the cluster tests (a unique module name: test folders share one import namespace)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Ray's workers import the studio's packages: they get the repository like the test process has it.
RUNTIME_ENV = {"env_vars": {"PYTHONPATH": str(ROOT)}}
TINY = {"width": 64, "height": 64, "total_seconds": 1, "latent_window_size": 3, "steps": 2, "cache_type": "None"}


def job_params(image: Path, prompt: str, **kw: Any) -> dict:
    """A tiny job's parameters (64x64, 1 s, 2 steps)."""
    return {"prompt": prompt, "start_image": str(image), **TINY, **kw}


def import_ray():
    """ray, or a skip where it is not installed; under CI=true a missing Ray fails (the dev setup installs it)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        import ray

        return ray
    return pytest.importorskip("ray")
