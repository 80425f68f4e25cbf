"""Engine test fixtures: one tiny-model manager per session and cached golden-case runs."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import golden_params, output_options, run_engine
from safetensors.torch import load_file

from modules.models.manager import ModelManager, RuntimeConfig
from modules.models.registry import ModelSet


@pytest.fixture(scope="session")
def tiny_manager() -> ModelManager:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))


_GOLDEN_RUNS: dict[str, tuple] = {}


@pytest.fixture(scope="session")
def golden_run(tiny_manager, golden_dir, tmp_path_factory):
    """Run a golden case once per session; returns (golden tensors, engine trace, events, output options)."""

    def get(case: str):
        if case not in _GOLDEN_RUNS:
            root = tmp_path_factory.mktemp(f"golden_{case}")
            out = output_options(root)
            trace, events = run_engine(tiny_manager, golden_params(golden_dir, case), out, trace=True)
            _GOLDEN_RUNS[case] = (load_file(str(golden_dir / f"{case}.safetensors")), trace, events, out)
        return _GOLDEN_RUNS[case]

    return get
