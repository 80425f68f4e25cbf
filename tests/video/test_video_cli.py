"""The video types from the command line: `python -m studio generate --generation-type ... --input-video ...`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from modules.media.video_io import read_comment, read_video
from tests.hang import HANG_S

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "studio", "generate", "--models", "tiny", "--no-progress",
                           "--data-dir", str(cwd / "data"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_S)


def test_cli_video_f1_extension_only(source_video: Path, tmp_path: Path):
    proc = _cli("--generation-type", "Video F1", "--input-video", str(source_video), "--seconds", "1",
                "--latent-window-size", "6", "--steps", "1", "--width", "64", "--height", "64",
                "--cache-type", "None", "--num-context-frames", "3", "--no-combine-with-source",
                "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    video = Path(proc.stdout.strip().splitlines()[-1])
    frames, fps = read_video(video)
    assert frames.shape == (24, 64, 64, 3) and fps == 30  # 1 section x 4*6 frames, no source
    assert '"generation_type":"Video F1"' in read_comment(video)


def test_cli_bad_video_is_refused(tmp_path: Path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"\x00" * 64)
    from studio.cli import main

    code = main(["generate", "--models", "tiny", "--data-dir", str(tmp_path / "data"), "--generation-type",
                 "Video", "--input-video", str(bad), "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()
    err = capsys.readouterr().err
    assert "input_video" in err and "notes.mp4" in err


def test_cli_video_and_video_with_endframe_in_process(source_video: Path, tmp_path: Path, golden_dir: Path,
                                                     capsys):
    """The other two video types through `main` (in-process: no second interpreter start)."""
    from studio.cli import main

    common = ["generate", "--models", "tiny", "--no-progress", "--data-dir", str(tmp_path / "data"),
              "--input-video", str(source_video), "--seconds", "1", "--latent-window-size", "6", "--steps", "1",
              "--width", "64", "--height", "64", "--cache-type", "None", "--num-context-frames", "2",
              "--out", str(tmp_path / "out")]
    assert main([*common, "--generation-type", "Video"]) == 0
    combined = Path(capsys.readouterr().out.strip().splitlines()[-1])
    frames, fps = read_video(combined)
    assert frames.shape == (30 + 24, 64, 64, 3) and fps == 30  # the 30-frame source, then 1 section of 24

    assert main([*common, "--generation-type", "Video with Endframe", "--no-combine-with-source",
                 "--end-image", str(golden_dir / "end_image_64x64.png")]) == 0
    ended = Path(capsys.readouterr().out.strip().splitlines()[-1])
    frames, _ = read_video(ended)
    assert frames.shape == (24, 64, 64, 3)
    assert '"generation_type":"Video with Endframe"' in read_comment(ended)
