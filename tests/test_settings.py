"""Settings file: atomic save, corrupt-file backup, environment overrides that never leak into the file."""

from __future__ import annotations

import json
from pathlib import Path

from studio.settings import Settings, SettingsStore


def test_save_and_load_round_trip(tmp_path: Path):
    store = SettingsStore(tmp_path / "settings.json")
    store.save(Settings(mp4_crf=23, theme="mono"))
    loaded = SettingsStore(tmp_path / "settings.json").load()
    assert loaded.mp4_crf == 23 and loaded.theme == "mono"
    assert not list(tmp_path.glob(".settings-*"))  # no temporary file left behind


def test_corrupt_file_is_backed_up_and_defaults_used(tmp_path: Path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    store = SettingsStore(path)
    assert store.load() == Settings()
    assert store.warning and "corrupt" in store.warning
    backups = list(tmp_path.glob("settings.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{not json"


def test_env_override_applies_but_is_not_written_back(tmp_path: Path, monkeypatch):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"mp4_crf": 20}))
    monkeypatch.setenv("FP_STUDIO_MP4_CRF", "30")
    monkeypatch.setenv("FP_STUDIO_MODELS", "tiny")
    store = SettingsStore(path)
    settings = store.load()
    assert settings.mp4_crf == 30 and settings.models.value == "tiny"
    store.save(settings.model_copy(update={"theme": "glass"}))
    written = json.loads(path.read_text())
    assert written["mp4_crf"] == 20  # the file's own value survives
    assert "models" not in written  # never in the file: came from the environment only
    assert written["theme"] == "glass"
    # a value the user changed on purpose is saved even when a variable is set
    store.save(settings.model_copy(update={"mp4_crf": 18}))
    assert json.loads(path.read_text())["mp4_crf"] == 18
