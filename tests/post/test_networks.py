"""Upscaling, face restoration and RIFE on random-initialised networks of the real architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.media.video_io import read_video
from modules.postprocess.faces import Face, FaceEnhancer, GFPGANRestorer
from modules.postprocess.common import PostProcessError
from modules.postprocess.interpolate import InterpolateOptions, Interpolator, interpolate_video
from modules.postprocess.networks import build_with_state, random_state_dict
from modules.postprocess.rife import load_ifnet_state
from modules.postprocess.upscale import (UPSCALE_MODELS, UpscaleOptions, Upscaler, blend_state_dicts,
                                         build_random_state_dict, output_scale, tile_size, upscale_video)
from tests.post.helpers import nearest_indices

# RealESRNet_x4plus has exactly RealESRGAN_x4plus's architecture (23-block RRDB), so one covers both.
ARCHITECTURES = ["RealESRGAN_x4plus", "RealESRGAN_x2plus", "RealESRGAN_x4plus_anime_6B", "realesr-general-x4v3",
                 "realesr-animevideov3"]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_upscaler_output_is_scale_times_input(name):
    up = Upscaler.random(name)
    assert up.scale == output_scale(name) == UPSCALE_MODELS[name].scale
    frame = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)  # not a multiple of 4
    out = up.upscale(frame)
    assert out.shape == (6 * up.scale, 10 * up.scale, 3) and out.dtype == np.uint8


def test_upscale_video_and_tiling(tiny_video, tmp_path):
    up = Upscaler.random("realesr-animevideov3")
    progress = []
    out = upscale_video(tiny_video, UpscaleOptions(model="realesr-animevideov3", tile="none"), tmp_path / "u.mp4",
                        progress=progress.append, upscaler=up)
    frames, fps = read_video(out)
    assert frames.shape == (4, 64, 64, 3) and fps == 30
    assert progress[-1].done == 4
    # Tiles with enough overlap give the same result as the whole frame for this small receptive field.
    frame = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    whole, tiled = up.upscale(frame), up.upscale(frame, tile=12)
    assert np.abs(whole.astype(int) - tiled).max() <= 1
    cpu = torch.device("cpu")
    assert tile_size("auto", 720, 1280, cpu) == 512 and tile_size("none", 9, 9, cpu) is None
    assert tile_size("auto", 480, 512, cpu) is None and tile_size("256", 9, 9, cpu) == 256


def test_denoise_strength_blends_weights():
    a = build_random_state_dict("realesr-general-x4v3", seed=1)
    b = build_random_state_dict("realesr-general-x4v3", seed=2)
    mixed = blend_state_dicts(a, b, 0.25)
    k = "body.0.weight"
    assert torch.allclose(mixed[k], 0.25 * a[k] + 0.75 * b[k])


class StubDetector:
    name = "stub (known boxes)"

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return self.faces


def test_gfpgan_path_changes_only_the_face_box_region():
    img = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    box = (40.0, 30.0, 80.0, 70.0)
    landmarks = np.array([[52, 45], [68, 45], [60, 53], [54, 61], [66, 61]], dtype=np.float32)
    enhancer = FaceEnhancer(StubDetector([Face(box, landmarks, 0.99)]), GFPGANRestorer.random(narrow=1 / 16),
                            paste_margin=0.25)
    out = enhancer.enhance(img)
    changed = np.any(out != img, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed[35:65, 45:75].mean() > 0.9  # the face itself is replaced
    # nothing outside the box grown by 25 % (10 px) changes
    assert xs.min() >= 30 and xs.max() < 90 and ys.min() >= 20 and ys.max() < 80
    # the same frame gives the same result (fixed noise)
    assert np.array_equal(enhancer.enhance(img), out)
    assert np.array_equal(FaceEnhancer(StubDetector([]), enhancer.restorer).enhance(img), img)


def test_upscale_with_face_enhance_runs_restorer_per_frame(tiny_video, tmp_path):
    calls = []

    def restorer(frame):
        calls.append(frame.shape)
        return frame

    upscale_video(tiny_video, UpscaleOptions(model="realesr-animevideov3", face_enhance=True), tmp_path / "f.mp4",
                  upscaler=Upscaler.random("realesr-animevideov3"), face_restorer=restorer)
    assert calls == [(64, 64, 3)] * 4


def test_rife_2x_gives_2n_minus_1_frames_at_double_fps(tiny_video, tmp_path):
    src, _ = read_video(tiny_video)
    out = interpolate_video(tiny_video, InterpolateOptions(factor=2), tmp_path / "i.mp4",
                            interpolator=Interpolator.random())
    frames, fps = read_video(out)
    assert len(frames) == 2 * 4 - 1 and fps == 60 and frames.shape[1:] == src.shape[1:]
    assert nearest_indices(frames[::2], src) == [0, 1, 2, 3]  # originals kept at even positions


def test_rife_4x_times_and_checkpoint_loading():
    it = Interpolator.random()
    a = np.zeros((20, 30, 3), np.uint8)
    b = np.full((20, 30, 3), 200, np.uint8)
    mids = it.between(a, b, [0.25, 0.5, 0.75])
    assert len(mids) == 3 and all(m.shape == a.shape for m in mids)
    # official checkpoints carry DataParallel's "module." prefix and may hold extra keys
    state = {f"module.{k}": v for k, v in it.net.state_dict().items()} | {"module.teacher.x": torch.zeros(1)}
    net = load_ifnet_state(state)
    assert torch.equal(net.block4.lastconv[0].weight, it.net.block4.lastconv[0].weight)
    with pytest.raises(ValueError, match="missing"):
        load_ifnet_state({"encode.cnn0.weight": torch.zeros(16, 3, 3, 3)})


def test_rife_4x_video_gives_4n_minus_3_frames_at_4x_fps(tiny_video, tmp_path):
    src, _ = read_video(tiny_video)
    out = interpolate_video(tiny_video, InterpolateOptions(factor=4), tmp_path / "i4.mp4",
                            interpolator=Interpolator.random())
    frames, fps = read_video(out)
    assert len(frames) == 4 * (4 - 1) + 1 and fps == 120 and frames.shape[1:] == src.shape[1:]
    assert nearest_indices(frames[::4], src) == [0, 1, 2, 3]


def test_full_gfpgan_v14_architecture_is_recognised_by_spandrel():
    """FaceEnhancer.load builds the restorer from a state dict through spandrel: the full-width v1.4
    architecture (random weights) must be detected as GFPGAN, and other networks refused."""
    from modules.postprocess.networks import load_descriptor

    restorer = GFPGANRestorer.random(narrow=1.0)
    assert type(restorer.model).__name__ == "GFPGANv1Clean"  # the network v1.4 uses (channel multiplier 2)
    assert restorer.model.state_dict()["final_linear.weight"].shape[0] > 0
    with pytest.raises(PostProcessError, match="expected GFPGAN"):
        GFPGANRestorer.from_descriptor(load_descriptor(build_random_state_dict("realesr-animevideov3")), "cpu")


def test_build_with_state_adopts_weights_without_touching_torch_init():
    """Networks are built on the (thread-local) meta device: torch.nn.init is never swapped out, so a network
    another thread builds meanwhile still gets its random initialisation."""
    init_before = torch.nn.init.kaiming_uniform_
    state = {"weight": torch.ones(2, 3, dtype=torch.float16), "bias": torch.zeros(2)}
    net = build_with_state(lambda: torch.nn.Linear(3, 2), state)
    assert torch.nn.init.kaiming_uniform_ is init_before
    assert net.weight.dtype == torch.float32 and not net.weight.is_meta  # cast as a copy into fp32 would
    assert torch.equal(net.weight, torch.ones(2, 3))
    assert random_state_dict(lambda: torch.nn.Linear(3, 2), seed=5)["weight"].equal(
        random_state_dict(lambda: torch.nn.Linear(3, 2), seed=5)["weight"])


def test_build_with_state_refuses_a_network_left_partly_empty():
    class WithScratch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)
            self.register_buffer("scratch", torch.zeros(1), persistent=False)  # not in any state dict

    with pytest.raises(PostProcessError, match="scratch"):
        build_with_state(WithScratch, random_state_dict(WithScratch))
