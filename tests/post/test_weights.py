"""Weights: sha256 verified before torch.load(weights_only=True), cached as safetensors, refusals."""

from __future__ import annotations

import hashlib
import pickle
import re

import pytest
import torch
from safetensors.torch import load_file

from modules.postprocess.weights import WEIGHTS, WeightFile, WeightsError, WeightStore


def _checkpoint(path, nest="params_ema"):
    state = {"conv.weight": torch.arange(6.0).reshape(2, 3), "conv.bias": torch.ones(2)}
    torch.save({nest: state} if nest else state, path)
    return state, hashlib.sha256(path.read_bytes()).hexdigest()


def _spec(path, sha, key="fake"):
    return WeightFile(key, path.as_uri(), sha, path.stat().st_size)


def test_verified_download_is_cached_as_safetensors(tmp_path):
    src = tmp_path / "remote" / "model.pth"
    src.parent.mkdir()
    state, sha = _checkpoint(src)
    progress = []
    store = WeightStore(tmp_path / "cache")
    loaded = store.state_dict(_spec(src, sha), progress.append)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    cached = tmp_path / "cache" / "fake.safetensors"
    assert cached.is_file() and not (tmp_path / "cache" / "model.pth").exists()
    assert set(load_file(cached)) == set(state)
    assert progress and progress[-1].done == src.stat().st_size
    src.unlink()  # the second load must come from the cache, not the network
    assert torch.equal(store.state_dict(_spec_cached(sha, src))["conv.bias"], state["conv.bias"])


def _spec_cached(sha, src):
    return WeightFile("fake", src.as_uri(), sha, None)


def test_hash_mismatch_deletes_file_and_caches_nothing(tmp_path):
    src = tmp_path / "model.pth"
    _checkpoint(src)
    store = WeightStore(tmp_path / "cache")
    with pytest.raises(WeightsError, match="does not match the published"):
        store.state_dict(_spec(src, "0" * 64))
    assert list((tmp_path / "cache").iterdir()) == []


def test_unpublished_hash_is_refused_unless_opted_in(tmp_path):
    src = tmp_path / "model.pth"
    state, _ = _checkpoint(src, nest=None)
    with pytest.raises(WeightsError, match="no published sha256"):
        WeightStore(tmp_path / "cache").state_dict(_spec(src, None))
    assert not (tmp_path / "cache").exists()
    loaded = WeightStore(tmp_path / "cache", allow_unverified=True).state_dict(_spec(src, None))
    assert torch.equal(loaded["conv.weight"], state["conv.weight"])


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_never_executed_even_with_matching_hash(tmp_path):
    src = tmp_path / "evil.pth"
    src.write_bytes(pickle.dumps({"params": _Evil()}, protocol=2))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.raises(pickle.UnpicklingError):
        WeightStore(tmp_path / "cache").state_dict(_spec(src, sha))
    assert not (tmp_path / "cache" / "fake.safetensors").exists()


def test_offline_download_names_url_and_manual_path(tmp_path):
    spec = WeightFile("x", (tmp_path / "absent.pth").as_uri(), "a" * 64, 10)
    with pytest.raises(WeightsError, match=r"place it at .*absent.pth"):
        WeightStore(tmp_path / "cache").state_dict(spec)


def test_registry_entries_are_pinned():
    for w in WEIGHTS.values():
        assert w.url.startswith("https://") and w.sha256 is not None
        assert re.fullmatch(r"[0-9a-f]{64}", w.sha256), w.key
    assert {"RealESRGAN_x4plus", "GFPGANv1.4", "yunet_2023mar", "RIFE_IFNet_v426_heavy"} <= set(WEIGHTS)
