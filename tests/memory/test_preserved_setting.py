"""Issue 14 (2): a changed "GPU Inference Preserved Memory" setting applies to the next job, without a restart.

On the CPU with the tiny models: the worker's DefaultEngineProvider writes the setting into the manager's
RuntimeConfig before each job; the manager's memory policy (made by make_policy, as on CUDA) must plan with it.
"""

from __future__ import annotations

import torch

from modules.memory import MemoryPolicy
from modules.models.memory import ManagerMemory, make_policy
from modules.models.registry import ModelSet, TransformerKind
from studio.jobs.worker import DefaultEngineProvider
from studio.paths import DataPaths
from studio.settings import Settings

CAP_GB = 1.0  # the planner behaves as on a card with 1 GB; the tiny transformer takes a few MB


def test_changed_preserved_memory_applies_to_the_next_job(tmp_path, monkeypatch):
    monkeypatch.setenv("FP_STUDIO_VRAM_CAP_GB", str(CAP_GB))
    monkeypatch.delenv("FP_STUDIO_FORCE_LOW_VRAM", raising=False)
    paths = DataPaths(tmp_path)

    def settings(preserved: float) -> Settings:  # what the worker hands the provider: resolved folders
        return paths.resolved_settings(Settings(models=ModelSet.TINY, gpu_memory_preservation=preserved))

    provider = DefaultEngineProvider(device="cpu")
    engine = provider(settings(0.0))
    manager = provider.manager
    manager.memory = make_policy(manager)  # the CUDA policy, planned against the 1 GB cap
    assert manager.memory.policy.preserved_gb == 0.0
    transformer = manager.transformer(TransformerKind.ORIGINAL)
    manager.before_section(transformer, tokens=100)
    first = manager.memory.streamer
    assert first.plan.all_resident and manager.loaded_summary()["memory"]["preserved_gb"] == 0.0

    # The user raises the setting (as the out-of-memory message says); the next job is claimed.
    assert provider(settings(CAP_GB)) is engine and provider.manager is manager  # no reload
    assert manager.memory.policy.preserved_gb == CAP_GB
    manager.before_section(transformer, tokens=100)
    plan = manager.memory.streamer.plan
    assert not plan.all_resident  # nothing of the 1 GB is left for resident blocks
    assert manager.loaded_summary()["memory"]["preserved_gb"] == CAP_GB

    # ... and lowers it again: every block is resident once more.
    provider(settings(0.5))
    manager.before_section(transformer, tokens=100)
    assert manager.memory.streamer.plan.all_resident and manager.memory.policy.preserved_gb == 0.5
    manager.unload()


def test_an_explicit_policy_wins_over_the_config():
    config = type("Cfg", (), {"preserved_memory_gb": 3.0})()
    mem = ManagerMemory(torch.device("cpu"), MemoryPolicy(preserved_gb=6.0, device_cap_gb=8.0), config=config)
    assert mem.policy == MemoryPolicy(preserved_gb=3.0, device_cap_gb=8.0)
    config.preserved_memory_gb = 4.5
    assert mem.policy.preserved_gb == 4.5 and mem.policy.device_cap_gb == 8.0
    mem.policy = MemoryPolicy(preserved_gb=1.0)
    config.preserved_memory_gb = 7.0
    assert mem.policy == MemoryPolicy(preserved_gb=1.0)
