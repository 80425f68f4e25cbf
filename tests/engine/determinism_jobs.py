"""One small job of every generation type, and a runner: shared by tests/engine/test_determinism.py and by
the parallel processes it starts (`python tests/engine/determinism_jobs.py INPUTS DATA OUT`).

Every file a job writes (MP4, sidecar, latents) is read back as bytes, keyed by type and suffix.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # when run as a script by the parallel-process test
    sys.path.insert(0, str(ROOT))

from modules.media.video_io import write_video  # noqa: E402

COMMON = {"prompt": "a ball rolls [0.5s: a ball bounces]", "seed": 5, "total_seconds": 1.0,
          "latent_window_size": 3, "steps": 2, "width": 64, "height": 64, "cache_type": "TeaCache"}


def make_inputs(root: Path) -> Path:
    """Start and end images and a short source video under `root` (fixed content)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "start.png")
    Image.fromarray(np.full((64, 64, 3), 230, np.uint8)).save(root / "end.png")
    frames = np.stack([np.roll(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), i * 4, axis=1)
                       for i in range(20)])
    write_video(root / "source.mp4", frames, fps=30, crf=10)
    return root


def jobs(inputs: Path) -> dict[str, dict]:
    """GenerationParams fields of one job per type (F1 twice: with and without its optional end frame)."""
    start, end, video = str(inputs / "start.png"), str(inputs / "end.png"), str(inputs / "source.mp4")
    video_opts = {"input_video": video, "num_context_frames": 2}
    return {
        "original": {"generation_type": "Original", "start_image": start},
        "original_endframe": {"generation_type": "Original with Endframe", "start_image": start, "end_image": end},
        "f1": {"generation_type": "F1", "start_image": start},
        "f1_endframe": {"generation_type": "F1", "start_image": start, "end_image": end},
        "video": {"generation_type": "Video", **video_opts},
        "video_endframe": {"generation_type": "Video with Endframe", "end_image": end, **video_opts},
        "video_f1": {"generation_type": "Video F1", **video_opts},
        "grid": {"generation_type": "Grid", "start_image": start,
                 "grid_x": {"parameter": "seed", "values": [1, 2]}},
    }


def params(inputs: Path, name: str) -> dict:
    return {**COMMON, **jobs(inputs)[name]}


def cli_args(fields: dict) -> list[str]:
    """`python -m studio generate` flags for these fields (JSON for the nested ones)."""
    args: list[str] = []
    for key, value in fields.items():
        args += [f"--{key.replace('_', '-')}", json.dumps(value) if isinstance(value, dict) else str(value)]
    return args


def outputs(video: Path) -> dict[str, bytes]:
    """The bytes of a job's files: MP4, sidecar, latents (when written)."""
    files = {"mp4": video, "json": video.with_suffix(".json"),
             "latents": video.with_name(video.stem + ".latents.safetensors")}
    return {k: p.read_bytes() for k, p in files.items() if p.is_file()}


def run_cli(inputs: Path, name: str, data: Path, out: Path, *extra: str) -> Path:
    """One job through the CLI, in this process; returns the MP4 path."""
    import contextlib
    import io

    from studio.cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["generate", "--models", "tiny", "--no-progress", "--save-latents", "--data-dir", str(data),
                     "--out", str(out), *cli_args(params(inputs, name)), *extra])
    assert code == 0, f"{name}: exit code {code}"
    return Path(stdout.getvalue().strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    """Run every job once; print {type: {suffix: sha256}} as JSON."""
    import hashlib

    logging.basicConfig(level=logging.WARNING)
    inputs, data, out = (Path(a) for a in argv)
    result = {}
    for name in jobs(inputs):
        files = outputs(run_cli(inputs, name, data, out / name))
        result[name] = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
