"""Filter presets (built-in and user JSON) and housekeeping helpers."""

from __future__ import annotations

import json

import pytest

from modules.postprocess.common import PostProcessError
from modules.postprocess.filters import FilterSettings
from modules.postprocess.housekeeping import clear_folder, save_to_folder
from modules.postprocess.presets import BUILTIN_PRESETS, PresetError, PresetStore


def test_user_preset_save_load_delete(data_dir):
    store = PresetStore(data_dir / "presets")
    settings = FilterSettings(brightness=0.1, film_grain=12)
    path = store.save("My look", settings)
    assert path.parent == data_dir / "presets" / "filters"
    assert json.loads(path.read_text())["settings"]["film_grain"] == 12
    assert store.load("My look") == settings
    assert store.names()[: len(BUILTIN_PRESETS)] == list(BUILTIN_PRESETS) and "My look" in store.names()
    store.save("My look", FilterSettings(contrast=1.5))  # update
    assert store.load("My look").contrast == 1.5
    store.delete("My look")
    assert "My look" not in store.names()
    with pytest.raises(PresetError, match="unknown preset"):
        store.load("My look")


def test_builtins_are_protected_and_names_are_sanitised(data_dir):
    store = PresetStore(data_dir / "presets")
    assert store.load("cinematic") == BUILTIN_PRESETS["cinematic"]
    with pytest.raises(PresetError, match="built-in"):
        store.save("cinematic", FilterSettings())
    with pytest.raises(PresetError, match="built-in"):
        store.delete("vivid")
    for bad in ("../evil", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(PresetError, match="invalid preset name"):
            store.save(bad, FilterSettings())
    assert not (data_dir / "evil.json").exists()


def test_corrupt_user_preset_is_reported(data_dir):
    store = PresetStore(data_dir / "presets")
    store.folder.mkdir(parents=True)
    (store.folder / "broken.json").write_text('{"settings": {"brightness": 7}}')
    with pytest.raises(PresetError, match="broken"):
        store.load("broken")


def test_clear_folder_and_save_to_folder(tmp_path):
    temp = tmp_path / "temp"
    (temp / "sub").mkdir(parents=True)
    (temp / "a.mp4").write_bytes(b"x")
    (temp / "sub" / "b.png").write_bytes(b"y")
    assert clear_folder(temp) == 2 and temp.is_dir() and not any(temp.iterdir())
    assert clear_folder(tmp_path / "missing") == 0

    src = tmp_path / "result video!.mp4"
    src.write_bytes(b"video")
    a, b = save_to_folder(src, tmp_path / "saved"), save_to_folder(src, tmp_path / "saved")
    assert a != b and a.read_bytes() == b.read_bytes() == b"video"
    assert a.name.startswith("result_video_") and a.suffix == ".mp4"
    with pytest.raises(PostProcessError, match="nothing to save"):
        save_to_folder(tmp_path / "nope.mp4", tmp_path / "saved")
