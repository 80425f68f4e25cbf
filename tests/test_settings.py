"""Settings file: atomic save, corrupt-file backup, environment overrides that never leak into the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_only_setting_variables_are_overrides(tmp_path: Path, monkeypatch):
    """FP_STUDIO_DATA_DIR / _AUTH configure the process, not settings: they are neither applied nor saved."""
    from studio.settings import env_overrides

    monkeypatch.setenv("FP_STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FP_STUDIO_AUTH", "me:pw")
    monkeypatch.setenv("FP_STUDIO_CLEAN_UP_VIDEOS", "false")
    assert env_overrides() == {"clean_up_videos": "false"}
    store = SettingsStore(tmp_path / "settings.json")
    assert store.load().clean_up_videos is False
    store.save(store.load())
    assert "clean_up_videos" not in json.loads((tmp_path / "settings.json").read_text())


def test_folders_resolve_in_the_data_directory_for_every_run(tmp_path: Path):
    """One resolver (DataPaths.resolved_settings) feeds the worker's and the CLI's OutputOptions and RuntimeConfig."""
    from studio.paths import DataPaths
    from studio.run_config import output_options, runtime_config

    paths = DataPaths(tmp_path)
    settings = Settings(output_dir="out", metadata_dir="meta", lora_dir=str(tmp_path / "elsewhere"), hf_home="hf",
                        mp4_crf=21, save_metadata=False, gpu_memory_preservation=9, deterministic=True)
    resolved = paths.resolved_settings(settings)
    assert {name: getattr(resolved, name) for name in Settings.FOLDERS} == {
        "output_dir": str(tmp_path / "out"), "metadata_dir": str(tmp_path / "meta"),
        "lora_dir": str(tmp_path / "elsewhere"), "gradio_temp_dir": str(tmp_path / "temp" / "gradio"),
        "postprocess_output_dir": str(tmp_path / "postprocessed"),
        "postprocess_temp_dir": str(tmp_path / "temp" / "postprocess"), "hf_home": str(tmp_path / "hf")}
    assert paths.resolved_settings(Settings()).metadata_dir == ""  # not set stays not set

    out = output_options(settings, paths, tmp_path / "work", name="take")
    assert (out.output_dir, out.metadata_dir, out.work_dir) == (tmp_path / "out", tmp_path / "meta", tmp_path / "work")
    assert (out.crf, out.save_metadata, out.cleanup_videos, out.name) == (21, False, True, "take")
    assert output_options(settings, paths, tmp_path / "w", output_dir=tmp_path / "cli").output_dir == tmp_path / "cli"

    config = runtime_config(settings, paths, device="cpu")
    assert (config.hf_home, config.lora_dir, config.device) == (tmp_path / "hf", tmp_path / "elsewhere", "cpu")
    assert (config.preserved_memory_gb, config.deterministic, config.model_set) == (9, True, settings.models)
    assert runtime_config(resolved, None) == runtime_config(settings, paths)
    with pytest.raises(ValueError, match="hf_home"):
        runtime_config(settings, None)  # relative folders would resolve against the working directory
