"""`--models tiny` for post-processing: tiny random networks of the real architectures, no download, same bytes."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from modules.media.video_io import read_video
from modules.postprocess.faces import CentreFaceDetector, FaceEnhancer
from modules.postprocess.interpolate import Interpolator
from modules.postprocess.network_options import UPSCALE_MODELS
from modules.postprocess.tiny import TinyWeights, tiny_state_dict, weight_source
from modules.postprocess.upscale import Upscaler
from modules.postprocess.weights import WEIGHTS, WeightsError, WeightStore
from studio.cli import main

CPU = torch.device("cpu")


@pytest.fixture()
def offline(monkeypatch):
    """Any download attempt fails the test."""

    def refuse(*a, **kw):
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _post_twice(data_dir: Path, out_dir: Path, *argv: str) -> np.ndarray:
    """Run `post ... --models tiny` twice; both files must hold the same bytes. Returns the decoded frames."""
    outs = []
    for i in range(2):
        out = out_dir / f"{argv[0]}_{i}.mp4"
        assert main(["post", *argv, "--models", "tiny", "--device", "cpu", "-o", str(out),
                     "--data-dir", str(data_dir)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    return read_video(out)[0]


@pytest.mark.parametrize("model, scale", [("RealESRGAN_x2plus", 2), ("realesr-general-x4v3", 4)])
def test_tiny_upscale_runs_offline_and_is_deterministic(model, scale, tiny_video, tmp_path, data_dir, offline):
    frames = _post_twice(data_dir, tmp_path, "upscale", str(tiny_video), "--model", model)
    assert frames.shape == (4, 16 * scale, 16 * scale, 3)
    assert not (data_dir / "weights").exists()  # nothing was downloaded or written to the weights folder


def test_tiny_face_restore_changes_the_centre_only(tiny_video, tmp_path, data_dir, offline):
    (tmp_path / "plain").mkdir()
    plain = _post_twice(data_dir, tmp_path / "plain", "upscale", str(tiny_video), "--model", "RealESRGAN_x4plus")
    faces = _post_twice(data_dir, tmp_path, "upscale", str(tiny_video), "--model", "RealESRGAN_x4plus",
                        "--face-enhance")
    assert faces.shape == plain.shape == (4, 64, 64, 3)
    diff = np.abs(faces.astype(int) - plain).max(axis=(0, 3))
    # the stand-in face is the centre 32 x 32 box; pasting reaches its 25 % margin (codec blur aside)
    assert diff[24:40, 24:40].mean() > 2 and diff[:6].max() <= 8 and diff[:, :6].max() <= 8


def test_tiny_rife_4x_from_the_setting(tiny_video, tmp_path, data_dir, offline, monkeypatch):
    monkeypatch.setenv("FP_STUDIO_MODELS", "tiny")  # the `models` setting picks the set when no flag is given
    outs = []
    for i in range(2):
        out = tmp_path / f"i{i}.mp4"
        assert main(["post", "interpolate", str(tiny_video), "--factor", "4", "--device", "cpu", "-o", str(out),
                     "--data-dir", str(data_dir)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    frames, fps = read_video(tmp_path / "i0.mp4")
    assert len(frames) == 4 * 3 + 1 and fps == 120


def test_tiny_weights_load_through_the_real_loaders():
    source = TinyWeights()
    for name, model in UPSCALE_MODELS.items():
        up = Upscaler.load(name, source, CPU, denoise_strength=0.5)
        assert up.scale == model.scale and up.descriptor.architecture.id == {"esrgan": "ESRGAN",
                                                                            "compact": "Compact"}[model.arch]
        # tiny: ESRGAN keeps its fixed 32 growth channels, so ~0.2M parameters (the real ones: 0.6M to 16.7M)
        assert sum(p.numel() for p in up.model.parameters()) < 300_000
    enhancer = FaceEnhancer.load(source, CPU)
    assert isinstance(enhancer.detector, CentreFaceDetector)
    assert Interpolator.load(source, CPU).net.block0.conv0[0][0].out_channels == 8
    # the same key always gives the same weights; different keys differ (the denoise blend needs two)
    a, b = tiny_state_dict("realesr-general-x4v3"), tiny_state_dict("realesr-general-wdn-x4v3")
    assert all(torch.equal(a[k], tiny_state_dict("realesr-general-x4v3")[k]) for k in a)
    assert not torch.equal(a["body.0.weight"], b["body.0.weight"])
    with pytest.raises(WeightsError, match="no file"):
        source.verified_file("yunet_2023mar")


def test_weight_source_is_the_one_switch(tmp_path):
    assert isinstance(weight_source(tmp_path, "tiny"), TinyWeights)
    real = weight_source(tmp_path, "real", allow_unverified=True)
    assert isinstance(real, WeightStore) and real.folder == tmp_path and real.allow_unverified and not real.tiny
    # every PyTorch network has a tiny stand-in; the ONNX detector is replaced by CentreFaceDetector
    assert all(tiny_state_dict(k) for k, w in WEIGHTS.items() if w.kind == "torch")
    with pytest.raises(WeightsError, match="no stand-in"):
        tiny_state_dict("yunet_2023mar")


def test_ui_weight_store_follows_the_models_setting(tmp_path):
    from types import SimpleNamespace

    from modules.models.registry import ModelSet
    from studio.ui.postprocess import weight_store

    def services(models):
        return SimpleNamespace(paths=SimpleNamespace(postprocess_weights_dir=tmp_path),
                               settings=SimpleNamespace(current=SimpleNamespace(models=models)))

    assert isinstance(weight_store(services(ModelSet.TINY)), TinyWeights)
    assert isinstance(weight_store(services(ModelSet.REAL)), WeightStore)
