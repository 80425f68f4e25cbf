"""`generate` has one flag per GenerationParams field (derived, not listed twice); metadata JSON that is
malformed or foreign gives a clear error listing the bad fields. No models load here."""

from __future__ import annotations

import argparse
import json

import pytest

from modules.framepack.metadata import MetadataError, params_from_metadata
from modules.framepack.params import GenerationParams
from studio.cli import generate


def _generate_parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser()
    generate.register(root.add_subparsers(dest="command"))
    return root


def test_every_param_field_is_a_flag_and_defaults_stay_in_the_model(tmp_path):
    root = _generate_parser()
    sub = root._subparsers._group_actions[0].choices["generate"]  # type: ignore[union-attr]
    dests = {a.dest for a in sub._actions}
    assert set(GenerationParams.model_fields) <= dests
    for extra in ("out", "device", "dtype", "save_latents", "models"):
        assert extra in dests
    # Nothing given -> the model's defaults; flags of every kind parse into the model.
    args = root.parse_args(["generate"])
    assert generate.build_params(args) == GenerationParams()
    args = root.parse_args([
        "generate", "--seconds", "3", "--steps", "7", "--cache-type", "MagCache", "--no-combine-with-source",
        "--latent-image", "Green Screen", "--loras", '[{"name": "a.safetensors", "weight": 0.5}]',
        "--lora", "b.safetensors:1.5", "--keyframe", f"{tmp_path / 'k.png'}@2.5"])
    p = generate.build_params(args)
    assert (p.total_seconds, p.steps, p.cache_type.value, p.latent_image.value) == (3.0, 7, "MagCache",
                                                                                      "Green Screen")
    assert [(lo.name, lo.weight) for lo in p.loras] == [("a.safetensors", 0.5), ("b.safetensors", 1.5)]
    assert p.keyframes[0].seconds == 2.5 and p.combine_with_source is False


def test_params_json_is_the_base_and_flags_win(tmp_path):
    sidecar = tmp_path / "job.json"
    sidecar.write_text(json.dumps({"format": "fp-studio/1",
                                   "params": GenerationParams(prompt="from file", seed=11, steps=9).model_dump(
                                       mode="json")}))
    args = _generate_parser().parse_args(["generate", "--params", str(sidecar), "--seed", "12"])
    p = generate.build_params(args)
    assert (p.prompt, p.seed, p.steps) == ("from file", 12, 9)


@pytest.mark.parametrize("text,needles", [
    ("{not json", ["json"]),
    ("[1, 2]", ["root"]),
    ('{"params": "x"}', ["params"]),
    # FramePack-Studio-style foreign keys and out-of-range values: each bad field is named.
    ('{"prompt": "a", "total_second_length": 5, "model_type": "Original", "steps": 500, "cfg": 0}',
     ["total_second_length", "model_type", "steps", "cfg"]),
])
def test_malformed_or_foreign_metadata_lists_bad_fields(tmp_path, text, needles):
    with pytest.raises(MetadataError) as err:
        params_from_metadata(text)
    for needle in needles:
        assert needle in str(err.value)
    path = tmp_path / "upload.json"
    path.write_text(text)
    with pytest.raises(MetadataError):
        params_from_metadata(path)
