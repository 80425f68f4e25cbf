"""Seconds per prompt helper (Caption, Describe video, timestamped Describe, Enhance) through CaptionService.

    .venv/bin/python bench/captioner.py                      # tiny Qwen3-VL stand-in on the CPU
    .venv/bin/python bench/captioner.py --models real        # the captioner_model setting's real weights

With --models real the weights must be in the cache (`python -m studio download --captioner`); they run on the
first GPU when there is one (the same placement the studio uses for an idle GPU worker), else on the CPU. Each
helper runs once cold (the first call of the run loads the model) and --rounds times warm, interleaved; the
table gives the warm median, tokens written per second and peak VRAM, and the ratio of each helper to Caption.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modules.media.video_io import write_video  # noqa: E402
from modules.models.registry import ModelSet  # noqa: E402
from studio.captioning.service import CaptionService  # noqa: E402
from studio.settings import Settings  # noqa: E402

log = logging.getLogger("bench.captioner")


def _inputs(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    image = folder / "start.png"
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(image)
    frames = [np.roll(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), i * 4, axis=1) for i in range(48)]
    return image, write_video(folder / "source.mp4", frames, fps=24)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    settings = Settings(models=ModelSet(args.models))
    gpu = {"cuda:0": _AlwaysIdle()} if torch.cuda.is_available() else {}
    service = CaptionService(lambda: settings, lambda: gpu)
    tokens = {"n": 0}

    def count(done: int, limit: int) -> None:
        tokens["n"] += 1

    with tempfile.TemporaryDirectory() as tmp:
        image, video = _inputs(Path(tmp))
        helpers = {
            "caption": lambda: service.caption(image, count),
            "describe video": lambda: service.describe(video, 6, False, count),
            "describe, timestamped": lambda: service.describe(video, 6, True, count),
            "enhance": lambda: service.enhance("a cat dances [3s: the cat jumps]", count),
        }
        cold: dict[str, float] = {}
        warm: dict[str, list[float]] = {name: [] for name in helpers}
        written: dict[str, int] = {}
        for rnd in range(args.rounds + 1):
            for name, fn in helpers.items():
                tokens["n"] = 0
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                fn()
                seconds = time.perf_counter() - start
                (warm[name].append(seconds) if rnd else cold.__setitem__(name, seconds))
                written[name] = tokens["n"]
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
        device = "cuda:0" if gpu else "cpu"
        print(f"\n{settings.captioner_model} ({args.models}) on {device}, torch threads {torch.get_num_threads()}, "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("| helper | cold s (first call loads) | warm s (median) | tokens written | tokens/s | x caption |")
        print("|---|---:|---:|---:|---:|---:|")
        base = statistics.median(warm["caption"])
        for name in helpers:
            med = statistics.median(warm[name])
            print(f"| {name} | {cold[name]:.2f} | {med:.2f} | {written[name]} | {written[name] / med:.1f} | "
                  f"{med / base:.2f} |")
        if gpu:
            print(f"peak VRAM allocated: {peak:.2f} GB")
    service.unload()
    return 0


class _AlwaysIdle:
    """Stands in for an idle GPU worker: its lease is free (the bench runs no job)."""

    def __init__(self) -> None:
        import threading

        self.device_lease = threading.Lock()
        self.worker_name = "bench"


if __name__ == "__main__":
    sys.exit(main())
