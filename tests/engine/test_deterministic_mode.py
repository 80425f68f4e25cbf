"""The `deterministic` setting: PyTorch's deterministic algorithms for a job, off by default, same bytes either way."""

from __future__ import annotations

import torch

from modules.framepack.engine import Engine
from modules.framepack.events import DoneEvent
from modules.models.determinism import apply_determinism
from studio.settings import Settings

from engine_helpers import golden_params, output_options


def test_setting_defaults_off():
    assert Settings().deterministic is False


def test_apply_switches_pytorch_state_both_ways():
    try:
        apply_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        apply_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.allow_tf32


def test_a_job_in_deterministic_mode_gives_the_same_bytes(tiny_manager, golden_dir, tmp_path):
    params = golden_params(golden_dir, "original", total_seconds=1.0, steps=2)

    def run(tag: str, deterministic: bool) -> bytes:
        tiny_manager.config.deterministic = deterministic
        try:
            events = list(Engine(tiny_manager).generate(params, output_options(tmp_path / tag, name="job")))
            assert torch.are_deterministic_algorithms_enabled() == deterministic  # applied for this job
        finally:
            tiny_manager.config.deterministic = False
            apply_determinism(False)
        assert isinstance(events[-1], DoneEvent)
        return events[-1].result.video.read_bytes()

    # On CPU every kernel is already deterministic: the mode changes nothing in the output.
    assert run("on", True) == run("off", False) == run("on_again", True)
