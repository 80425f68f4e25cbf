"""Model placement helpers, VAE tiling policy and RSS measurement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modules.memory import (
    GIB,
    RSSMonitor,
    configure_vae_for_memory,
    current_rss_mb,
    device_free_bytes,
    estimate_vae_decode_bytes,
    on_device,
    peak_rss_mb,
    release_device_memory,
    resolve_device,
    unload_modules,
)
from modules.models.registry import HUNYUAN_REPO, TINY_HUB_DIR


def test_on_device_cpu_is_a_no_op():
    m = nn.Linear(3, 3)
    w = m.weight
    with on_device(m, "cpu") as inner:
        assert inner is m and m.weight is w
    assert m.weight.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_device_moves_to_gpu_only_inside_the_block():
    m = nn.Linear(64, 64)
    with on_device(m, "cuda"):
        assert m.weight.device.type == "cuda"
        out = m(torch.randn(2, 64, device="cuda"))
    assert out.device.type == "cuda" and m.weight.device.type == "cpu"
    unload_modules(m)


def test_device_helpers_on_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert device_free_bytes("cpu") > 0
    release_device_memory()  # no GPU: must still be callable
    unload_modules(None, nn.Linear(2, 2))


def test_vae_decode_estimate_and_tiling_switch():
    from diffusers import AutoencoderKLHunyuanVideo

    # 19 latent frames at 640x640: 73 frames x 640 x 640 x 128 channels x 2 bytes x 4 live tensors
    assert estimate_vae_decode_bytes((1, 16, 19, 80, 80)) == 73 * 640 * 640 * 128 * 2 * 4
    # diffusers' frame-wise decoding bounds the frames held at once (16 + 1)
    assert estimate_vae_decode_bytes((1, 16, 19, 80, 80), framewise_frames=16) == 17 * 640 * 640 * 128 * 2 * 4
    vae = AutoencoderKLHunyuanVideo.from_pretrained(HUNYUAN_REPO, subfolder="vae", cache_dir=TINY_HUB_DIR,
                                                    local_files_only=True).eval()
    shape = (1, 16, 3, 8, 8)
    need = estimate_vae_decode_bytes(shape, dtype_bytes=4)
    assert configure_vae_for_memory(vae, shape, free_bytes=need * 2, dtype_bytes=4) is False
    assert not vae.use_tiling
    assert configure_vae_for_memory(vae, shape, free_bytes=need + GIB, preserved_gb=1.0, dtype_bytes=4) is False
    assert configure_vae_for_memory(vae, shape, free_bytes=need // 2, dtype_bytes=4) is True
    assert vae.use_tiling
    # tiled decoding with tiles smaller than the frame gives the same frame count and size
    vae.tile_sample_min_height = vae.tile_sample_min_width = 32
    vae.tile_sample_stride_height = vae.tile_sample_stride_width = 24
    z = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tiled = vae.decode(z).sample
        vae.disable_tiling()
        full = vae.decode(z).sample
    assert tiled.shape == full.shape == (1, 3, 9, 64, 64)
    assert torch.isfinite(tiled).all()


def test_peak_rss_and_monitor_see_an_allocation():
    assert peak_rss_mb() >= current_rss_mb() * 0.9 > 0
    with RSSMonitor(interval_s=0.01) as mon:
        base = mon.peak_mb
        block = np.ones(160 * 2**20 // 8)  # 160 MiB, touched
        mon.sample()
        del block
    assert mon.peak_mb - base > 100
    assert peak_rss_mb() >= mon.peak_mb * 0.95


def test_workers_loading_the_same_encoder_share_one_cpu_copy():
    """Two workers' loads of the same encoder under one key: the second is pointed at the first one's CPU
    weights (its own freed); after a trip to another placement each points back at the shared copy, and both
    still give the first's output exactly. A load with other values keeps its own."""
    import gc

    from modules.memory.offload import HOST_COPIES, keep_shared
    from modules.models import loader
    from modules.models.registry import ModelSet

    a, b, other = (loader.load_component("text_encoder_2", ModelSet.TINY) for _ in range(3))
    with torch.no_grad():
        next(other.parameters()).add_(1)
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        expected = a(ids).last_hidden_state
    key = ("text_encoder_2", "tiny", "", "torch.float32", "test_share")
    adopted = HOST_COPIES.adopted
    host_a, host_b, host_other = (keep_shared(key, m) for m in (a, b, other))
    assert host_b is host_a and host_other is not host_a and HOST_COPIES.adopted == adopted + 1
    assert [p.data_ptr() for p in a.parameters()] == [p.data_ptr() for p in b.parameters()]
    b.to(torch.float64)  # what a move to the GPU does: every parameter replaced by a new tensor
    assert next(b.parameters()).data_ptr() != next(a.parameters()).data_ptr()
    host_b.point(b)  # back, without a copy
    assert [p.data_ptr() for p in a.parameters()] == [p.data_ptr() for p in b.parameters()]
    with torch.no_grad():
        assert torch.equal(b(ids).last_hidden_state, expected) and torch.equal(a(ids).last_hidden_state, expected)
    assert HOST_COPIES._copies.get(key) is host_a  # the first copy stays the one later workers share
    del a, b, host_a, host_b
    gc.collect()
    assert HOST_COPIES._copies.get(key) is None  # and lives only as long as its users
