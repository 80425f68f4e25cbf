"""Fixtures of the cache tests: the tiny Original transformer and the golden cases (loaded once)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.caches.harness import load_case, load_tiny_original


@pytest.fixture(scope="session")
def tiny_original():
    torch.manual_seed(0)
    return load_tiny_original()


@pytest.fixture(scope="session")
def golden_plain(golden_dir):
    return load_case(golden_dir, "original")


@pytest.fixture(scope="session")
def golden_teacache(golden_dir):
    return load_case(golden_dir, "original_teacache")


@pytest.fixture(scope="session")
def teacache_case_json(golden_dir) -> dict:
    cases = json.loads((golden_dir / "cases.json").read_text())["cases"]
    return next(c for c in cases if c["name"] == "original_teacache")
