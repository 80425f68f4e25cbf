"""Helpers of the cluster tests (a unique module name: test folders share one import namespace)."""

from __future__ import annotations

import os

import pytest


def import_ray():
    """ray, or a skip where it is not installed; under CI=true a missing Ray fails (the dev setup installs it)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        import ray

        return ray
    return pytest.importorskip("ray")
