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
