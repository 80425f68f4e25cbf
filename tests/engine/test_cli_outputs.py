"""CLI on the tiny models: playable MP4 of the requested size/length, sidecar round trip, same bytes twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from modules.framepack.metadata import params_from_metadata
from modules.media.video_io import probe_video, read_comment, read_video
from studio.cli import main

ARGS = ["generate", "--models", "tiny", "--prompt", "a red fox [0.5s: a blue bird]", "--seconds", "1",
        "--latent-window-size", "3", "--steps", "2", "--width", "96", "--height", "64", "--latent-image", "Noise",
        "--cache-type", "TeaCache", "--seed", "7", "--no-progress"]


def _run(capsys, data_dir: Path, *extra: str) -> Path:
    assert main([*ARGS, "--data-dir", str(data_dir), *extra]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_generate_twice_same_bytes(capsys, data_dir):
    first = _run(capsys, data_dir, "--save-latents")
    second = _run(capsys, data_dir)
    assert first != second and first.parent == data_dir / "outputs"
    # 1 s at lws 3 -> 2 sections -> 2*3+1 latent frames -> 25 frames; 96x64 is its own bucket.
    info = probe_video(first)
    assert (info.frames, info.width, info.height, round(info.fps)) == (25, 96, 64, 30)
    assert first.read_bytes() == second.read_bytes()
    a, _ = read_video(first)
    b, _ = read_video(second)
    assert np.array_equal(a, b) and a.shape == (25, 64, 96, 3)

    sidecar = json.loads(first.with_suffix(".json").read_text())
    params = params_from_metadata(first.with_suffix(".json"))
    assert params.seed == 7 and params.width == 96 and params.prompt.startswith("a red fox")
    assert sidecar["derived"]["bucket_width"] == 96 and sidecar["derived"]["frames"] == 25
    assert sidecar["derived"]["prompt_segments"] == 2
    # Times, memory and file names of one run stay out of the sidecar (same job, same bytes).
    assert set(sidecar["run"]) == {"skipped_steps", "computed_steps", "cache"}
    assert first.with_suffix(".json").read_bytes() == second.with_suffix(".json").read_bytes()
    assert "torch" in sidecar["versions"]
    assert isinstance(sidecar["run"]["skipped_steps"], int)
    comment = json.loads(read_comment(first))
    assert comment["params"] == sidecar["params"] and "run" not in comment
    assert first.with_suffix(".png").is_file()
    assert Path(str(first)[:-4] + ".latents.safetensors").is_file()
    assert not Path(str(second)[:-4] + ".latents.safetensors").exists()
    # No partial or scratch files are left behind.
    leftovers = [p for p in (data_dir / "outputs").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert not any((data_dir / "temp" / "work").glob("*/seg_*"))


def test_cli_bad_input_exit_code(capsys, data_dir, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("no image")
    assert main(["generate", "--models", "tiny", "--image", str(bad), "--data-dir", str(data_dir)]) == 2
    assert "start_image" in capsys.readouterr().err
    assert main(["generate", "--models", "tiny", "--seconds", "999", "--data-dir", str(data_dir)]) == 2


def test_cli_generate_refuses_an_image_as_input_video(capsys, data_dir, tmp_path):
    """The engine's input check (the same one the queue runs) refuses it before any model loads."""
    from PIL import Image

    still = tmp_path / "still.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(still)
    argv = ["generate", "--models", "tiny", "--generation-type", "Video", "--input-video", str(still),
            "--data-dir", str(data_dir), "--no-progress"]
    assert main(argv) == 2
    assert "invalid input_video: still.png is an image, not a video" in capsys.readouterr().err.splitlines()
    assert not (data_dir / "outputs").exists()
