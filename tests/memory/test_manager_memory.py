"""The manager's memory hook (modules/models/memory.py), exercised on CPU with the tiny models."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from modules.memory import MemoryPolicy
from modules.models.manager import ModelManager, RuntimeConfig
from modules.models.memory import ManagerMemory, make_policy
from modules.models.registry import ModelSet, TransformerKind
from tests.memory.conftest import golden_forward_kwargs


def test_manager_streams_the_transformer_through_the_memory_policy(golden_dir, monkeypatch):
    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))
    assert manager.memory is None  # CPU: nothing to plan
    manager.memory = ManagerMemory(torch.device("cpu"), MemoryPolicy(preserved_gb=0, force_streaming=True))
    transformer = manager.transformer(TransformerKind.ORIGINAL)
    streamer = manager.memory.streamer
    assert streamer is not None and streamer.attached and streamer.transformer is transformer
    summary = manager.loaded_summary()["memory"]
    assert summary["mode"] == "streaming" and summary["streamed_blocks"] == 2 and summary["force_streaming"]

    kwargs = golden_forward_kwargs(golden_dir)
    with torch.no_grad():
        v = transformer(**kwargs)[0]
    golden = load_file(str(golden_dir / "original.safetensors"))["section00.step_denoised"][0]
    assert torch.allclose(kwargs["hidden_states"] - v, golden, atol=1e-4, rtol=0)
    assert streamer.copies == 2

    # re-planning before a section with the same policy moves nothing
    manager.memory.place(transformer)
    assert manager.memory.streamer is streamer

    # a forced low-memory policy keeps encoders off the device; using() is a no-op on the CPU
    assert manager.memory.shared_load_device() == torch.device("cpu")
    with manager.memory.using(torch.nn.Linear(2, 2), None):
        pass

    manager.unload()
    assert manager.memory.streamer is None and not streamer.attached
    assert not any(b._forward_pre_hooks for b in transformer.transformer_blocks)


def test_make_policy_reads_the_preserved_setting_and_env(monkeypatch):
    monkeypatch.setenv("FP_STUDIO_FORCE_LOW_VRAM", "1")
    monkeypatch.setenv("FP_STUDIO_VRAM_CAP_GB", "6")
    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu", preserved_memory_gb=2.5))
    mem = make_policy(manager)
    assert mem.policy == MemoryPolicy(preserved_gb=2.5, force_streaming=True, device_cap_gb=6.0)
    assert mem.load_device("transformer_f1") == "cpu"  # forced low-VRAM: stream from host memory


def test_manager_using_and_before_section_are_no_ops_without_a_policy():
    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))
    layer = torch.nn.Linear(2, 2)
    with manager.using(layer, None):
        assert layer.weight.device.type == "cpu"
    manager.before_section(layer, tokens=100)  # CPU: nothing to plan


def test_manager_before_section_replans_through_the_policy(golden_dir):
    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))
    manager.memory = ManagerMemory(torch.device("cpu"), MemoryPolicy(preserved_gb=0, force_streaming=True))
    transformer = manager.transformer(TransformerKind.F1)
    first = manager.memory.streamer
    manager.before_section(transformer, tokens=5_000)
    assert manager.memory.streamer is first and first.attached  # same placement: nothing moved
    manager.memory.policy = MemoryPolicy(preserved_gb=0)  # e.g. the user lowered the preserved memory
    manager.before_section(transformer, tokens=5_000)
    assert manager.memory.streamer is not first and manager.memory.streamer.plan.all_resident
    assert not first.attached
    manager.unload()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("force_low_vram", [False, True])
def test_unload_frees_the_gpu_completely(monkeypatch, force_low_vram):
    """Unload Studio Model: every byte the models took on the GPU is given back; the next use reloads."""
    monkeypatch.setenv("FP_STUDIO_FORCE_LOW_VRAM", "1" if force_low_vram else "0")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cuda"))
    assert manager.memory is not None and manager.memory.policy.force_streaming is force_low_vram
    manager.shared()
    manager.transformer(TransformerKind.ORIGINAL)
    assert torch.cuda.memory_allocated() > base
    manager.unload()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == base
    assert manager.loaded_summary()["transformer"] is None and manager.loaded_summary()["shared"] == []
    loads = manager.load_count
    manager.transformer(TransformerKind.ORIGINAL)
    assert manager.load_count == loads + 1
    manager.unload()


def test_two_workers_managers_share_one_host_copy_of_the_streamed_blocks():
    """Two workers' managers load the same transformer to stream it: the second one's streamed blocks point at
    the first one's host buffers (modules/memory/streaming.py, HOST_BLOCKS), keyed by ManagerMemory.after_load."""
    from modules.memory.streaming import HOST_BLOCKS

    managers = [ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu")) for _ in range(2)]
    for m in managers:
        m.memory = ManagerMemory(torch.device("cpu"), MemoryPolicy(preserved_gb=0, force_streaming=True))
    before = HOST_BLOCKS.adopted
    first, second = (m.transformer(TransformerKind.ORIGINAL) for m in managers)
    streamers = [m.memory.streamer for m in managers]
    assert HOST_BLOCKS.adopted - before == len(streamers[1].plan.streamed) > 0
    ptrs = [[t.data_ptr() for hb in s._host for t in hb.flat.values()] for s in streamers]
    assert ptrs[0] == ptrs[1] and first is not second
    for m in managers:
        m.unload()
