"""Loader and ModelManager: same code path for tiny weights, reuse across jobs, swaps, unload, offline errors."""

from __future__ import annotations

import pytest
import torch

from modules.models import loader
from modules.models.manager import ModelManager, RuntimeConfig
from modules.models.registry import COMPONENTS, ModelSet, TransformerKind
from modules.models.tiny import missing_tiny_components


def test_tiny_set_complete_and_tokenizer_class():
    assert missing_tiny_components() == []
    tok = loader.load_component("tokenizer", ModelSet.TINY)
    assert type(tok).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend") and tok.padding_side == "right"
    assert "Llama" not in type(tok).__name__


def test_offline_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(loader.ModelNotAvailableError) as err:
        loader.fetch_repo(COMPONENTS["transformer_f1"].repo_id, ["transformer_f1"], ModelSet.REAL, hf_home=tmp_path)
    msg = str(err.value)
    assert "lllyasviel/FramePack_F1_I2V_HY_20250503" in msg and "25.7 GB" in msg and "download" in msg


def test_manager_reuse_swap_unload():
    m = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu"))
    assert m.dtype == torch.float32 and m.device.type == "cpu"
    shared = m.shared()
    t1 = m.transformer(TransformerKind.ORIGINAL)
    loads = m.load_count
    assert m.shared() is shared and m.transformer("original") is t1 and m.load_count == loads  # nothing reloaded
    t2 = m.transformer(TransformerKind.F1)
    assert t2 is not t1 and m.load_count == loads + 1 and m.transformer_kind == TransformerKind.F1
    summary = m.loaded_summary()
    assert summary["transformer"] == "f1" and "vae" in summary["shared"] and summary["dtype"] == "float32"
    m.unload()
    assert m.loaded_summary()["transformer"] is None and m.loaded_summary()["shared"] == []
    assert m.shared() is not shared  # reloads after unload


def test_download_progress_lines_for_files_and_bytes():
    from modules.models.loader import listening_tqdm

    lines: list[str] = []
    bar_cls = listening_tqdm(lines.append, "lllyasviel/FramePackI2V_HY")
    with bar_cls(total=4, disable=True) as files:
        files.update(1)
        files.update(2)
    with bar_cls(total=2_000_000_000, unit="B", disable=True) as data:
        data.update(500_000_000)
    assert lines == ["Downloading lllyasviel/FramePackI2V_HY: 1 / 4 files",
                     "Downloading lllyasviel/FramePackI2V_HY: 3 / 4 files",
                     "Downloading lllyasviel/FramePackI2V_HY: 0.50 / 2.00 GB"]
