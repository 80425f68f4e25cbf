"""Post-processing benchmark.

1. Every ffmpeg-based operation through FP-Studio's API vs exactly the same ffmpeg arguments run by the
   plain ffmpeg CLI (same binary): wall time of each (median of --repeats, runs interleaved) and their
   ratio (goal <= 1.1x: our probing, progress parsing and atomic rename cost little).
2. Real-ESRGAN upscaling and RIFE interpolation frames per second on CPU with the real architectures
   (random weights; speed does not depend on the weight values).

    .venv/bin/python bench/postprocess.py [--size 640] [--frames 90] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modules.media.video_io import write_video  # noqa: E402
from modules.postprocess import export, filters, frames, join, timing  # noqa: E402
from modules.postprocess.common import check_video  # noqa: E402
from modules.postprocess.ffmpeg import base_command  # noqa: E402
from modules.postprocess.interpolate import Interpolator  # noqa: E402
from modules.postprocess.upscale import Upscaler  # noqa: E402


def make_video(path: Path, n: int, size: int, fps: float = 30.0) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    out = []
    for i in range(n):
        f = np.roll(base, 3 * i, axis=1).copy()
        f[:, : (i + 1) * size // (n + 1)] //= 2
        out.append(f)
    return write_video(path, out, fps=fps, crf=18)


def cases(src: Path, d: Path):
    info = check_video(src)
    fs = filters.FilterSettings(brightness=0.05, contrast=1.1, saturation=1.2, temperature=20, sharpen=0.8,
                                vignette=0.4, s_curve=0.5, film_grain=8)
    crf = 16
    yield ("filters (8 sliders)", lambda o: filters.apply_filters(src, filters.FilterOptions(settings=fs), o),
           filters.filter_args(src, fs, crf), ".mp4")
    yield ("speed 2x", lambda o: timing.change_speed(src, timing.SpeedOptions(factor=2), o),
           timing.speed_args(src, info, 2.0, crf, False), ".mp4")
    yield ("loop x2", lambda o: timing.loop_video(src, timing.LoopOptions(repeats=2), o),
           timing.loop_args(src, info, "loop", 2, crf, False), ".mp4")
    yield ("ping-pong x1", lambda o: timing.loop_video(src, timing.LoopOptions(mode="pingpong", repeats=1), o),
           timing.loop_args(src, info, "pingpong", 1, crf, False), ".mp4")
    yield ("trim middle half", lambda o: timing.trim_video(
        src, timing.TrimOptions(start=info.duration / 4, end=info.duration * 3 / 4), o),
        timing.trim_args(src, info.duration / 4, info.duration * 3 / 4, crf, False), ".mp4")
    yield ("reverse", lambda o: timing.reverse_video(src, timing.ReverseOptions(), o),
           timing.reverse_args(src, crf, False), ".mp4")
    yield ("join 2 clips", lambda o: join.join_videos([src, src], join.JoinOptions(), o),
           join.join_args([src, src], info, crf), ".mp4")
    for fmt in ("mp4", "webm", "gif"):
        opts = export.ExportOptions(format=fmt, quality=80, max_width=480 if fmt == "gif" else None)
        yield (f"export {fmt}", lambda o, opts=opts: export.export_video(src, opts, o),
               export.export_args(src, info, opts), f".{fmt}")
    yield ("extract every 2nd (png)",
           lambda o: frames.extract_frames(src, frames.ExtractOptions(every_nth=2), o.parent / f"x{time.time_ns()}"),
           None, "")


def run_cli(args: list[str], out: Path) -> None:
    subprocess.run([*base_command(), *args, str(out)], check=True)


def run_cli_extract(src: Path, d: Path) -> None:
    folder = d / f"cli{time.time_ns()}"
    folder.mkdir()
    subprocess.run([*base_command(), *frames.extract_args(src, 2, folder / "frame_%06d.png", "png")], check=True)


def bench_ffmpeg(src: Path, d: Path, repeats: int, only: list[str] | None = None) -> list[tuple[str, float, float]]:
    rows = []
    for name, ours, args, suffix in cases(src, d):
        if only and not any(name.startswith(o) for o in only):
            continue
        t_ours, t_cli = [], []
        for r in range(repeats):
            for which in ("cli", "ours") if r % 2 == 0 else ("ours", "cli"):
                out = d / f"{which}{r}{suffix or '.x'}"
                t = time.perf_counter()
                if which == "ours":
                    ours(out)
                elif args is None:
                    run_cli_extract(src, d)
                else:
                    run_cli(args, out)
                (t_ours if which == "ours" else t_cli).append(time.perf_counter() - t)
        rows.append((name, statistics.median(t_ours), statistics.median(t_cli)))
        print(f"  {name:26s} ours {rows[-1][1]:7.2f}s  ffmpeg {rows[-1][2]:7.2f}s  ratio {rows[-1][1] / rows[-1][2]:.2f}",
              flush=True)
    return rows


def _frames_per_second(fn, budget_s: float = 20.0) -> float:
    """Time fn() once; when that was quick (first call includes oneDNN set-up), time up to 3 more calls."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    if first * 4 > budget_s:
        return 1.0 / first
    n = 3
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t)


def bench_networks(sizes: list[int], upscale_models: list[str], rife_sizes: list[int]) -> list[tuple[str, str, float]]:
    rows = []
    rng = np.random.default_rng(0)
    for name in upscale_models:
        up = Upscaler.random(name)
        for s in sizes:
            frame = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
            fps = _frames_per_second(lambda: up.upscale(frame))
            rows.append((f"upscale {name}", f"{s}x{s} -> {s * up.scale}x{s * up.scale}", fps))
            print(f"  {rows[-1][0]:40s} {rows[-1][1]:22s} {fps:8.3f} frames/s", flush=True)
            if fps < 0.05:  # larger sizes would take minutes per frame on this machine
                break
    it = Interpolator.random()
    for s in rife_sizes:
        a, b = (rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for _ in range(2))
        fps = _frames_per_second(lambda: it.between(a, b, [0.5]))
        rows.append(("RIFE 4.26 IFNet, 1 new frame", f"{s}x{s}", fps))
        print(f"  {rows[-1][0]:40s} {rows[-1][1]:22s} {fps:8.3f} frames/s", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=640, help="test video width and height (default 640, the default bucket)")
    ap.add_argument("--frames", type=int, default=90, help="test video length in frames at 30 fps")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--net-sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--rife-sizes", type=int, nargs="+", default=[128, 640])
    ap.add_argument("--models", nargs="+", default=["realesr-animevideov3", "realesr-general-x4v3",
                                                  "RealESRGAN_x4plus_anime_6B", "RealESRGAN_x4plus",
                                                  "RealESRGAN_x2plus"])
    ap.add_argument("--only", nargs="+", default=None, help="ffmpeg operations whose name starts with these")
    ap.add_argument("--no-networks", action="store_true", help="skip the upscale / RIFE measurements")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    a = ap.parse_args()
    if a.quick:
        a.size, a.frames, a.repeats, a.net_sizes, a.models, a.rife_sizes = 64, 12, 1, [16], ["realesr-animevideov3"], [32]
    print(f"torch threads {torch.get_num_threads()}, test video {a.size}x{a.size}, {a.frames} frames, "
          f"load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = make_video(d / "src.mp4", a.frames, a.size)
        print("ffmpeg operations (FP-Studio API vs plain ffmpeg CLI, same arguments):")
        rows = bench_ffmpeg(src, d, a.repeats, a.only)
    print("networks on CPU (random weights, real architectures):")
    net = [] if a.no_networks else bench_networks(a.net_sizes, a.models, a.rife_sizes)
    print("\n| operation | FP-Studio (s) | ffmpeg CLI (s) | ratio |\n|---|---|---|---|")
    for name, ours, cli in rows:
        print(f"| {name} | {ours:.2f} | {cli:.2f} | {ours / cli:.2f} |")
    print(f"\n| network (CPU, {torch.get_num_threads()} threads) | frame size | frames/s |\n|---|---|---|")
    for name, size, fps in net:
        print(f"| {name} | {size} | {fps:.3f} |")
    if rows:
        print(f"\nworst ffmpeg ratio {max(o / c for _, o, c in rows):.2f} (goal <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
