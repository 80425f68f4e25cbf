"""LoRAs through the ModelManager (the path the engine and the queue worker use): a weight-only change and a
new LoRA set between jobs load no component again, and weight 0 gives the base model's output."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from modules.framepack.params import LoraSpec
from modules.models.manager import ModelManager, RuntimeConfig
from modules.models.registry import ModelSet, TransformerKind


def _lora_for(linear: torch.nn.Linear, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"transformer.proj_out.lora_A.weight": torch.randn(4, linear.in_features, generator=g),
            "transformer.proj_out.lora_B.weight": torch.randn(linear.out_features, 4, generator=g)}


def test_manager_lora_changes_reload_nothing(tmp_path, forward_inputs):
    m = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu", lora_dir=tmp_path))
    t = m.transformer(TransformerKind.ORIGINAL)
    save_file(_lora_for(t.proj_out, 1), str(tmp_path / "a.safetensors"))
    save_file(_lora_for(t.proj_out, 2), str(tmp_path / "b.safetensors"))

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return t(**forward_inputs, return_dict=False)[0]

    base = forward()
    loads = m.load_count
    outs = {}
    for w in (1.0, 0.5, 0.0):  # weight-only changes, as between two queued jobs
        m.apply_loras([LoraSpec(name="a.safetensors", weight=w)])
        assert m.transformer(TransformerKind.ORIGINAL) is t
        outs[w] = forward()
    m.apply_loras([LoraSpec(name="a.safetensors", weight=1.0), LoraSpec(name="b.safetensors", weight=1.0)])
    both = forward()
    m.apply_loras([])
    assert m.load_count == loads and m.transformer(TransformerKind.ORIGINAL) is t
    assert torch.equal(outs[0.0], base) and torch.equal(forward(), base)
    assert (outs[1.0] - outs[0.5]).abs().max() > 1e-4 and (outs[0.5] - base).abs().max() > 1e-4
    assert (both - outs[1.0]).abs().max() > 1e-4
