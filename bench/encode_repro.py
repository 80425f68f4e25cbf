"""What the reproducible encoder settings cost: FP-Studio's encoder against the previous recipe, side by side.

    python bench/encode_repro.py [--frames 73] [--size 640x608] [--repeats 3]

"current": `modules.media.video_io.encode_frames` (integer RGB->YUV in NumPy, x264 `cpu-independent=1`).
"previous": libswscale's RGB->YUV inside the encoder and x264's SIMD macroblock-tree (the recipe whose bytes
varied from run to run on AVX-512 machines; docs/determinism.md). Same frames, same CRF and preset, runs
interleaved; prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modules.media.video_io import DEFAULT_CRF, encode_frames  # noqa: E402

log = logging.getLogger("bench.encode_repro")


def previous_recipe(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "flags": "+bitexact"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_frames(n: int, h: int, w: int) -> np.ndarray:
    """Smooth moving gradients with some noise: closer to decoded video than pure noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = 127 + 60 * np.sin((x + 3 * i) / 37.0)[..., None] * np.cos((y - 2 * i) / 53.0)[..., None]
        out[i] = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=73)
    ap.add_argument("--size", default="640x608", help="HxW")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    h, w = (int(v) for v in args.size.split("x"))
    frames = test_frames(args.frames, h, w)
    times: dict[str, list[float]] = {"current": [], "previous": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name in times:  # interleaved, so load changes hit both alike
                t0 = time.perf_counter()
                if name == "current":
                    encode_frames(Path(tmp) / f"c{r}.mp4", frames, 30, crf=DEFAULT_CRF)
                else:
                    previous_recipe(Path(tmp) / f"p{r}.mp4", frames, 30, DEFAULT_CRF)
                times[name].append(time.perf_counter() - t0)
    cur, prev = (statistics.median(times[k]) for k in ("current", "previous"))
    log.info("%d frames %dx%d, CRF %d, median of %d", args.frames, w, h, DEFAULT_CRF, args.repeats)
    log.info("| encoder | seconds | ms/frame |\n|---|---:|---:|")
    log.info("| current (reproducible) | %.2f | %.1f |", cur, 1000 * cur / args.frames)
    log.info("| previous | %.2f | %.1f |", prev, 1000 * prev / args.frames)
    log.info("current / previous: %.3f", cur / prev)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
