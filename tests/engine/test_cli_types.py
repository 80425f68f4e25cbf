"""Issue 3: the image generation types end to end from the CLI (in-process), on the tiny models.

Original (tests/engine/test_cli_outputs.py) and the Video types (tests/video/test_video_cli.py) have their own
CLI tests; here: Original with Endframe, F1 with and without an end image, Grid. Each decodes the MP4 and checks
frame count, size and what the type adds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modules.media.grid_video import layout_grid
from modules.framepack.grid_axes import LABELS
from modules.framepack.sections import total_pixel_frames
from modules.media.video_io import read_comment, read_video
from studio.cli import main

SECONDS, LWS, SIZE = 1, 3, 64
FRAMES = total_pixel_frames(SECONDS, LWS)  # 2 sections of 3 latents + the start latent -> 25 frames


@pytest.fixture(scope="module")
def end_images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ends")
    out = {}
    for name, value in (("white", 255), ("black", 0)):
        out[name] = root / f"{name}.png"
        Image.fromarray(np.full((SIZE, SIZE, 3), value, np.uint8)).save(out[name])
    return out


def _generate(capsys, data_dir: Path, golden_dir: Path, gtype: str, *extra: str) -> tuple[Path, np.ndarray]:
    args = ["generate", "--models", "tiny", "--generation-type", gtype, "--prompt", "a cat walks",
            "--image", str(golden_dir / "start_image_64x64.png"), "--seconds", str(SECONDS),
            "--latent-window-size", str(LWS), "--steps", "2", "--width", str(SIZE), "--height", str(SIZE),
            "--cache-type", "None", "--seed", "3", "--no-progress", "--data-dir", str(data_dir), *extra]
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    video = Path(capsys.readouterr().out.strip().splitlines()[-1])
    frames, fps = read_video(video)
    assert fps == 30
    assert json.loads(read_comment(video))["params"]["generation_type"] == gtype
    return video, frames.astype(np.int16)


def test_cli_original_with_endframe(capsys, data_dir, golden_dir, end_images):
    _, white = _generate(capsys, data_dir, golden_dir, "Original with Endframe", "--end-image",
                         str(end_images["white"]))
    _, black = _generate(capsys, data_dir, golden_dir, "Original with Endframe", "--end-image",
                         str(end_images["black"]))
    assert white.shape == black.shape == (FRAMES, SIZE, SIZE, 3)
    # The end image conditions the video: same seed and prompt, another end frame -> another video.
    assert np.abs(white - black).mean() > 1


def test_cli_f1_with_and_without_end_image(capsys, data_dir, golden_dir, end_images):
    video, plain = _generate(capsys, data_dir, golden_dir, "F1")
    _, ended = _generate(capsys, data_dir, golden_dir, "F1", "--end-image", str(end_images["white"]))
    assert plain.shape == ended.shape == (FRAMES, SIZE, SIZE, 3)
    assert np.abs(plain - ended).mean() > 1  # F1's optional end frame reaches the output
    sidecar = json.loads(video.with_suffix(".json").read_text())
    assert sidecar["derived"]["transformer"] == "f1"


def test_cli_grid_two_seeds(capsys, data_dir, golden_dir):
    video, frames = _generate(capsys, data_dir, golden_dir, "Grid", "--grid-x",
                              '{"parameter": "seed", "values": [1, 2]}', "--name", "grid")
    layout = layout_grid(1, 2, SIZE, SIZE, LABELS["seed"], ["1", "2"], None, None)
    assert frames.shape == (FRAMES, layout.height, layout.width, 3)
    assert layout.width > SIZE  # two cells side by side
    cells = sorted((video.parent / "grid_cells").glob("*.mp4"))
    assert len(cells) == 2
    for cell in cells:
        assert read_video(cell)[0].shape == (FRAMES, SIZE, SIZE, 3)
    tiles = [frames[:, y:y + h, x:x + w] for x, y, w, h in (layout.tile_box(0, 0), layout.tile_box(0, 1))]
    assert np.abs(tiles[0] - tiles[1]).mean() > 1  # the seeds differ
