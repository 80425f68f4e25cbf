"""`python -m studio post ...`: flags from the option models, presets, clear errors."""

from __future__ import annotations

import pytest

from modules.media.video_io import read_video
from studio.cli import main


def test_cli_speed_prints_output_path(small_video, tmp_path, data_dir, capsys):
    out = tmp_path / "fast.mp4"
    assert main(["post", "speed", str(small_video), "--factor", "2", "-o", str(out), "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.strip().endswith("fast.mp4")
    assert len(read_video(out)[0]) == 6


def test_cli_filters_with_user_preset_and_override(small_video, tmp_path, data_dir):
    assert main(["post", "presets", "save", "bright", "--brightness", "0.3", "--data-dir", str(data_dir)]) == 0
    out = tmp_path / "f.mp4"
    assert main(["post", "filters", str(small_video), "--preset", "bright", "--contrast", "1.1", "-o", str(out),
                 "--data-dir", str(data_dir)]) == 0
    assert read_video(out)[0].mean() > read_video(small_video)[0].mean() + 20


def test_cli_errors_are_clear_and_write_nothing(small_video, tmp_path, data_dir):
    out = tmp_path / "x.mp4"
    with pytest.raises(SystemExit, match="unknown preset 'nope'"):
        main(["post", "filters", str(small_video), "--preset", "nope", "-o", str(out), "--data-dir", str(data_dir)])
    with pytest.raises(SystemExit, match="invalid options for speed"):
        main(["post", "speed", str(small_video), "--factor", "9", "-o", str(out), "--data-dir", str(data_dir)])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(SystemExit, match="notes.txt: not a readable video"):
        main(["post", "reverse", str(notes), "-o", str(out), "--data-dir", str(data_dir)])
    assert not out.exists()


def test_cli_every_operation_has_a_subcommand(capsys):
    import argparse

    from modules.postprocess.operations import OPERATIONS
    from studio.cli import post

    parser = argparse.ArgumentParser(prog="studio")
    post.register(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["post", "--help"])
    text = capsys.readouterr().out
    for name in [*OPERATIONS, "presets", "clear-temp", "save"]:
        assert name in text
    ns = parser.parse_args(["post", "interpolate", "in.mp4", "-o", "o.mp4", "--factor", "4"])
    assert ns.factor == 4 and ns.input == ["in.mp4"]


# -- every operation through `python -m studio post <op>` ----------------------------------------------------

def _post(data_dir, *argv: str) -> None:
    assert main(["post", *argv, "--data-dir", str(data_dir)]) == 0


def test_cli_time_and_export_operations(small_video, source_frames, tmp_path, data_dir, capsys):
    from tests.post.helpers import nearest_indices

    v = str(small_video)
    _post(data_dir, "loop", v, "--mode", "pingpong", "--repeats", "1", "-o", str(tmp_path / "pp.mp4"))
    assert nearest_indices(read_video(tmp_path / "pp.mp4")[0], source_frames) == [*range(12), *range(10, 0, -1)]
    _post(data_dir, "trim", v, "--start", "0.09", "--end", "0.29", "-o", str(tmp_path / "t.mp4"))
    assert nearest_indices(read_video(tmp_path / "t.mp4")[0], source_frames) == list(range(3, 9))
    _post(data_dir, "join", v, v, "-o", str(tmp_path / "j.mp4"))
    assert len(read_video(tmp_path / "j.mp4")[0]) == 24
    _post(data_dir, "export", v, "--format", "gif", "--quality", "40", "--max-width", "48", "-o",
          str(tmp_path / "e.gif"))
    frames, _ = read_video(tmp_path / "e.gif")
    assert frames.shape == (12, 32, 48, 3)
    capsys.readouterr()


def test_cli_extract_then_reassemble_folder_and_files(small_video, tmp_path, data_dir, capsys):
    from pathlib import Path

    _post(data_dir, "extract", str(small_video), "--every-nth", "3", "-o", str(tmp_path / "frames"))
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert folder.parent == tmp_path / "frames" and len(list(folder.iterdir())) == 4
    _post(data_dir, "reassemble", str(folder), "--fps", "12", "-o", str(tmp_path / "r.mp4"))
    frames, fps = read_video(tmp_path / "r.mp4")
    assert frames.shape == (4, 64, 96, 3) and fps == 12
    files = sorted(str(p) for p in folder.iterdir())[:2]
    _post(data_dir, "reassemble", *files, "-o", str(tmp_path / "r2.mp4"))
    assert len(read_video(tmp_path / "r2.mp4")[0]) == 2


def test_cli_clear_temp_and_save(small_video, tmp_path, data_dir, capsys):
    temp = data_dir / "temp" / "postprocess"
    temp.mkdir(parents=True)
    (temp / "old.mp4").write_bytes(b"x")
    _post(data_dir, "clear-temp")
    assert temp.is_dir() and not any(temp.iterdir())
    capsys.readouterr()
    _post(data_dir, "save", str(small_video))
    from pathlib import Path

    saved = Path(capsys.readouterr().out.strip())
    assert saved.parent == data_dir / "postprocessed" and saved.read_bytes() == small_video.read_bytes()


def _seed_weights(folder, key: str, state) -> None:
    """Place a verified-looking cache entry (what the store writes after checking the published sha256)."""
    from safetensors.torch import save_file

    from modules.postprocess.weights import WEIGHTS

    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / f"{key}.safetensors"),
              metadata={"source_sha256": WEIGHTS[key].sha256, "source_url": WEIGHTS[key].url})


def test_cli_upscale_and_interpolate_load_cached_weights(tiny_video, tmp_path, data_dir):
    from modules.postprocess.rife import IFNet
    from modules.postprocess.networks import random_state_dict
    from modules.postprocess.upscale import build_random_state_dict

    weights = data_dir / "weights" / "postprocess"  # the default --weights-dir
    _seed_weights(weights, "realesr-animevideov3", build_random_state_dict("realesr-animevideov3"))
    _seed_weights(weights, "RIFE_IFNet_v426_heavy", random_state_dict(IFNet))
    _post(data_dir, "upscale", str(tiny_video), "--model", "realesr-animevideov3", "--tile", "256",
          "--device", "cpu", "-o", str(tmp_path / "u.mp4"))
    frames, fps = read_video(tmp_path / "u.mp4")
    assert frames.shape == (4, 64, 64, 3) and fps == 30
    _post(data_dir, "interpolate", str(tiny_video), "--factor", "2", "--device", "cpu", "-o", str(tmp_path / "i.mp4"))
    frames, fps = read_video(tmp_path / "i.mp4")
    assert len(frames) == 7 and fps == 60
    # a cache entry made from another file than the published one is refused (offline: no download is tried)
    from safetensors.torch import save_file

    other = tmp_path / "other_weights"
    other.mkdir()
    save_file(build_random_state_dict("realesr-animevideov3"), str(other / "realesr-animevideov3.safetensors"),
              metadata={"source_sha256": "0" * 64})
    with pytest.raises(SystemExit, match="cached from another file"):
        main(["post", "upscale", str(tiny_video), "--model", "realesr-animevideov3", "-o", str(tmp_path / "x.mp4"),
              "--weights-dir", str(other), "--data-dir", str(data_dir)])
    assert not (tmp_path / "x.mp4").exists()


def test_cli_offers_every_upscale_model_and_tile_size():
    import argparse
    import typing

    from modules.postprocess.network_options import UPSCALE_MODELS, ModelName, TileChoice
    from studio.cli import post

    assert set(typing.get_args(ModelName)) == set(UPSCALE_MODELS) == {
        "RealESRGAN_x2plus", "RealESRGAN_x4plus", "RealESRNet_x4plus", "realesr-general-x4v3",
        "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3"}
    assert typing.get_args(TileChoice) == ("auto", "512", "256", "none")
    from modules.postprocess.network_options import UpscaleOptions

    assert "RealESRGAN_x2plus 2x" in UpscaleOptions.model_fields["model"].description  # scale in --help
    parser = argparse.ArgumentParser(prog="studio")
    post.register(parser.add_subparsers(dest="command"))
    for name in UPSCALE_MODELS:
        for tile in typing.get_args(TileChoice):
            ns = parser.parse_args(["post", "upscale", "in.mp4", "-o", "o.mp4", "--model", name, "--tile", tile])
            assert ns.model == name and ns.tile == tile


def test_cli_parser_does_not_import_torch():
    """`python -m studio --help` stays fast: option models and flags come from torch-free modules."""
    import subprocess
    import sys

    from tests.hang import HANG_S

    code = ("import argparse, sys; from studio.cli import post; p = argparse.ArgumentParser(); "
            "post.register(p.add_subparsers()); from modules.postprocess.operations import OPERATIONS; "
            "heavy = [m for m in ('torch', 'spandrel', 'cv2') if m in sys.modules]; "
            "assert not heavy, heavy; assert callable(OPERATIONS['reverse'].run)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr


def test_cli_presets_list_show_save_delete(data_dir, capsys):
    import json

    _post(data_dir, "presets", "save", "Night", "--temperature", "-40", "--vignette", "0.5")
    capsys.readouterr()
    _post(data_dir, "presets", "list")
    names = capsys.readouterr().out.split()
    assert names[0] == "none" and "cinematic" in names and names[-1] == "Night"
    _post(data_dir, "presets", "show", "Night")
    shown = json.loads(capsys.readouterr().out)
    assert shown["temperature"] == -40 and shown["vignette"] == 0.5 and shown["brightness"] == 0
    _post(data_dir, "presets", "delete", "Night")
    _post(data_dir, "presets", "list")
    assert "Night" not in capsys.readouterr().out.split()
    with pytest.raises(SystemExit, match="built-in"):
        main(["post", "presets", "delete", "cinematic", "--data-dir", str(data_dir)])
