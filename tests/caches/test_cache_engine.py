"""The full golden TeaCache case through Engine.generate: every section's latents and the exact skip pattern."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modules.framepack.engine import Engine
from modules.framepack.outputs import OutputOptions
from modules.framepack.events import DoneEvent
from modules.framepack.params import GenerationParams
from modules.models.manager import ModelManager, RuntimeConfig
from modules.models.registry import ModelSet

PROMPT = "The girl dances gracefully, with clear movements, full of charm."


@pytest.fixture(scope="module")
def engine_manager() -> ModelManager:
    return ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))


def _params(golden_dir: Path, **kw) -> GenerationParams:
    data = dict(generation_type="Original", prompt=PROMPT, negative_prompt="", seed=31337, width=64, height=64,
                total_seconds=2.0, latent_window_size=3, steps=4, cfg=1.0, distilled_cfg=10.0, cfg_rescale=0.0,
                start_image=golden_dir / "start_image_64x64.png")
    data.update(kw)
    return GenerationParams(**data)


def _run(manager: ModelManager, params: GenerationParams, root: Path):
    trace: dict = {}
    out = OutputOptions(output_dir=root / "out", work_dir=root / "work", crf=16, save_metadata=True,
                        cleanup_videos=True)
    events = list(Engine(manager).generate(params, out, trace=trace))
    assert isinstance(events[-1], DoneEvent)
    return trace, events[-1].result


def test_engine_teacache_matches_golden(engine_manager, golden_dir, tmp_path):
    golden = load_file(str(golden_dir / "original_teacache.safetensors"))
    params = _params(golden_dir, cache_type="TeaCache", teacache_threshold=0.15)
    trace, result = _run(engine_manager, params, tmp_path)
    expected = [golden[f"section{k:02d}.teacache_computed"].bool().tolist() for k in range(5)]
    for k in range(5):
        torch.testing.assert_close(trace[f"section{k:02d}.generated_latents"],
                                   golden[f"section{k:02d}.generated_latents"], atol=1e-4, rtol=0)
    torch.testing.assert_close(trace["history_latents"], golden["history_latents"], atol=1e-4, rtol=0)
    assert result.skipped_steps == sum(s.count(False) for s in expected) == 5
    sidecar = json.loads(Path(result.metadata).read_text())
    assert sidecar["run"]["skipped_steps"] == 5 and sidecar["run"]["cache"] == "TeaCache"
    assert sidecar["run"]["computed_steps"] == [[int(c) for c in s] for s in expected]
    computed = result.info["run"]["computed_steps"]
    assert [[bool(c) for c in s] for s in computed] == expected


def test_engine_magcache_skips_and_records(engine_manager, golden_dir, tmp_path):
    """MagCache through the engine with the shipped Original table resampled to 8 steps."""
    params = _params(golden_dir, cache_type="MagCache", steps=8, total_seconds=1.0, magcache_threshold=0.5,
                     magcache_max_consecutive_skips=3, magcache_retention_ratio=0.0)
    _, result = _run(engine_manager, params, tmp_path)
    computed = result.info["run"]["computed_steps"]
    assert all(s[0] and s[-1] for s in computed)
    assert result.skipped_steps == sum(s.count(0) for s in computed) > 0
