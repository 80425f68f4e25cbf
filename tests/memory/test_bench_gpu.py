"""bench/gpu.py runs on CPU at tiny size (so it cannot rot) and knows the full-size numbers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_full_size_step_is_19149_tokens_and_531_tflop(bench):
    assert bench.REAL_SHAPE.tokens() == 19_149
    assert bench.forward_flops(bench.REAL_CONFIG, 19_149) / 1e12 == pytest.approx(531, abs=1)


def test_tiny_run_on_cpu_times_every_placement_with_identical_outputs(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = bench.run(["--tiny", "--steps", "1", "--warmup", "0", "--backends", "native,sage",
                         "--json", str(out)])
    text = capsys.readouterr().out
    assert "backend sage: skipped" in text and "s/step" in text
    assert [r.placement for r in results] == ["resident", "streamed (1 slot)", "streamed (prefetch)"]
    assert all(r.s_per_step and r.s_per_step > 0 and r.backend == "native" for r in results)
    assert results[0].resident_blocks == 5 and results[1].resident_blocks == 0
    assert results[1].max_abs_diff == 0 and results[2].max_abs_diff == 0
    data = json.loads(out.read_text())
    assert data["device"] == "CPU" and len(data["results"]) == 3


def test_missing_packages_are_named(bench, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda n: None if n == "diffusers" else real(n))
    assert any(m.startswith("diffusers==") for m in bench.missing_requirements())
    with pytest.raises(SystemExit, match="needs: diffusers"):
        bench.run(["--tiny"])
