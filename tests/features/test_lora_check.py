"""LoRA files are checked when listed or named by a job, from the safetensors header only (no torch, no weights):
a junk or wrong-shape file is not offered and a job naming one is refused when added, not when it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modules.framepack.inputs import InputError, check_inputs
from modules.framepack.params import GenerationParams, LoraSpec
from modules.models.lora_files import (LoraContext, LoraFormatError, check_lora_file, read_header, scan_loras,
                                       transformer_layers, transformer_config)
from modules.models.registry import ModelSet, TransformerKind
from tests.features.test_lora import FORMATS, _junk_files, logical_lora, write_format  # noqa: F401 (fixture)
from tests.hang import HANG_S
from tests.loras import write_lora, write_wrong_shape_lora

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_layers() -> dict[str, tuple[int, int]]:
    config = transformer_config(TransformerKind.ORIGINAL, ModelSet.TINY)
    assert config is not None
    return transformer_layers(config)


def test_layer_shapes_from_config_match_the_loaded_transformer(tiny_transformer, tiny_layers):
    loaded = {n: (m.in_features, m.out_features) for n, m in tiny_transformer.named_modules()
              if isinstance(m, torch.nn.Linear)}
    assert tiny_layers == loaded


def test_every_supported_format_that_fits_passes(tmp_path, logical_lora, tiny_layers):
    for fmt in FORMATS:
        check_lora_file(write_format(fmt, logical_lora, tmp_path / fmt), tiny_layers)
    check_lora_file(write_lora(tmp_path / "numpy.safetensors"), tiny_layers)


def test_junk_unknown_keys_and_wrong_shapes_are_refused_naming_the_file(tmp_path, tiny_layers):
    files = _junk_files(tmp_path)  # pickles, torch.save, random bytes, empty, foreign keys, half pair, wrong shape
    files["wider model"] = write_wrong_shape_lora(tmp_path / "wide.safetensors")
    files["unknown modules"] = write_lora(tmp_path / "unknown.safetensors", {"blocks.0.nonsense": (20, 20)})
    files["not in this transformer"] = write_lora(tmp_path / "deep.safetensors",
                                                  {"transformer_blocks.7.attn.to_q": (20, 20)})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(write_lora(tmp_path / "whole.safetensors").read_bytes()[:-10])
    files["truncated data"] = truncated
    reasons = {}
    for what, path in files.items():
        with pytest.raises(LoraFormatError) as info:
            check_lora_file(path, tiny_layers)
        assert str(info.value).startswith(f"{path.name}: "), what
        reasons[what] = str(info.value)
    assert "pickle" in reasons["pickle"] and "not a valid safetensors" in reasons["random"]
    assert "not a LoRA in a supported format" in reasons["unknown modules"]
    assert "made for a different model" in reasons["wider model"]
    assert "here, the LoRA expects 24->" in reasons["wider model"]
    assert "none of its modules exist" in reasons["not in this transformer"]
    assert "truncated" in reasons["truncated data"]


def test_header_reading_agrees_with_safetensors(tmp_path):
    from safetensors import safe_open

    path = write_lora(tmp_path / "a.safetensors")
    header = read_header(path)
    with safe_open(str(path), framework="np") as fh:
        assert header.shapes == {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}


def test_without_the_models_config_only_the_format_is_checked(tmp_path):
    """The real transformer not downloaded yet: shapes are unknown, so only the file's format is judged."""
    context = LoraContext(tmp_path, ModelSet.REAL, hf_home=tmp_path / "empty-hf")
    assert context.layers() is None
    write_wrong_shape_lora(tmp_path / "wide.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    found = {f.name: f.problem for f in scan_loras(context)}
    assert found["wide.safetensors"] is None
    assert found["junk.safetensors"].startswith("junk.safetensors: ")


def test_scan_offers_good_files_and_says_why_the_others_are_not(tmp_path):
    write_lora(tmp_path / "Good.safetensors")
    write_wrong_shape_lora(tmp_path / "wide.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    found = {f.name: f.problem for f in scan_loras(LoraContext(tmp_path, ModelSet.TINY))}
    assert found["Good.safetensors"] is None
    assert "made for a different model" in found["wide.safetensors"]
    assert found["junk.safetensors"].startswith("junk.safetensors: ")


def test_input_checker_refuses_a_bad_lora_naming_field_and_file(tmp_path):
    context = LoraContext(tmp_path, ModelSet.TINY)
    write_lora(tmp_path / "good.safetensors")
    write_wrong_shape_lora(tmp_path / "wide.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04junk" * 8)
    loras = [LoraSpec(name="good.safetensors"), LoraSpec(name="wide.safetensors"), LoraSpec(name="junk.safetensors")]
    with pytest.raises(InputError) as info:
        check_inputs(GenerationParams(prompt="x", loras=loras), context)
    assert set(info.value.fields) == {"loras.1.name", "loras.2.name"}
    assert info.value.fields["loras.1.name"].startswith("wide.safetensors: made for a different model")
    assert "junk.safetensors" in info.value.fields["loras.2.name"]
    check_inputs(GenerationParams(prompt="x", loras=loras[:1]), context)
    check_inputs(GenerationParams(prompt="x", generation_type="F1", loras=loras[:1]), context)  # F1: same dims
    check_inputs(GenerationParams(prompt="x", loras=loras), None)  # no context: not checked (callers without one)


def test_listing_and_checking_import_neither_torch_nor_safetensors(tmp_path):
    write_lora(tmp_path / "good.safetensors")
    write_wrong_shape_lora(tmp_path / "wide.safetensors")
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from modules.models.lora_files import LoraContext, scan_loras\n"
        "from modules.models.registry import ModelSet\n"
        f"found = scan_loras(LoraContext(Path({str(tmp_path)!r}), ModelSet.TINY))\n"
        "print(json.dumps({'found': {f.name: f.problem for f in found},"
        " 'loaded': [m for m in ('torch', 'safetensors') if m in sys.modules]}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S,
                         env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["loaded"] == []
    assert result["found"]["good.safetensors"] is None and result["found"]["wide.safetensors"]


def test_the_queue_refuses_a_job_naming_a_bad_lora(tmp_path):
    """Add to Queue (UI, API and CLI share QueueService.add) refuses it with "loras.0.name: <file>: <why>"."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from studio.api import mount_api
    from studio.jobs.model import JobValidationError
    from studio.jobs.service import QueueService
    from studio.paths import DataPaths
    from studio.settings import Settings

    data = tmp_path / "data"
    settings = Settings(models=ModelSet.TINY)  # lora_dir "loras" inside the data directory
    svc = QueueService(DataPaths(data), settings_provider=lambda: settings)
    try:
        loras = data / "loras"
        write_lora(loras / "good.safetensors")
        write_wrong_shape_lora(loras / "wide.safetensors")
        (loras / "junk.safetensors").write_bytes(bytes(range(256)))
        base = {"prompt": "x", "width": 64, "height": 64, "total_seconds": 1, "steps": 1}
        for bad, why in (("wide.safetensors", "made for a different model"), ("junk.safetensors", "not a valid")):
            with pytest.raises(JobValidationError) as info:
                svc.add({**base, "loras": [{"name": bad}]})
            [error] = info.value.errors
            assert error.field == "loras.0.name" and error.message.startswith(f"{bad}: ") and why in error.message
        assert svc.list() == []
        svc.add({**base, "loras": [{"name": "good.safetensors", "weight": 0.5}]})

        app = FastAPI()
        mount_api(app, svc)
        with TestClient(app) as client:
            r = client.post("/api/jobs", json={**base, "loras": [{"name": "wide.safetensors"}]})
            assert r.status_code == 422
            assert [(e["field"], e["message"].split(":")[0]) for e in r.json()["errors"]] == \
                [("loras.0.name", "wide.safetensors")]
        assert len(svc.list()) == 1
    finally:
        svc.close()
