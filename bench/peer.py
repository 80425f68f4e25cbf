"""FP-Studio against its peer, diffusers' HunyuanVideoFramepackPipeline, at equal work (issue 13).

    python bench/peer.py                                   # 2 s clip, 256x256 request -> bucket 240 wide x 256 high
    python bench/peer.py --repeats 1 --seconds 1 --steps 1 # a quick check that it runs

Both sides run the same image-to-video job on the same tiny weights, on the CPU in float32, interleaved
(one warm-up of each, then per repeat peer/studio, the order alternating), and the table gives the medians
and the ratio studio / peer of the whole job's wall time.

The peer is diffusers' public pipeline class, assembled from the very component objects FP-Studio's
ModelManager loads (one `from_pretrained` path, the tiny hub under modules/models/tiny_hub): the Original
FramePack transformer, the HunyuanVideo VAE, Llama + CLIP text encoders and tokenizers, SigLIP image encoder
and feature extractor, plus the FlowMatchEulerDiscreteScheduler of the same tiny HunyuanVideo snapshot.
Both sides therefore run on the same weights in the same memory.

Equal work, and how it is matched:

* **Bucket.** FP-Studio snaps the request (--width x --height) to a bucket (`find_bucket`, 256x256 -> 256 high
  x 240 wide); the start image is made at exactly that size (so neither side crops or scales it) and the
  pipeline is called with that height and width.
* **Sections.** FramePack counts sections from the clip length: n = max(1, round(seconds * 30 / (lws * 4)))
  (`sections.section_count`). The pipeline counts them from num_frames: max(1, ceil(num_frames / W)) with
  W = (lws - 1) * 4 + 1 frames per window. Passing FramePack's own frame count (4 * n * lws + 1 = 73 for 2 s,
  lws 9) would give the pipeline ceil(73 / 33) = 3 sections, one more than FramePack, so the peer is called
  with num_frames = n * W (66), which is exactly n sections. Both use inverted anti-drifting sampling (the
  Original model: back to front, paddings [3, 2, ..., 2, 1, 0] beyond 4 sections on both sides).
* **Transformer calls.** Both samplers evaluate the model once per step (FP-Studio: UniPC bh1; the pipeline:
  flow-matching Euler), so n * steps calls each; FP-Studio runs with cache_type None (no TeaCache/MagCache
  skips) and both at real CFG 1 (the pipeline's true_cfg_scale 1, no negative prompt), with the same distilled
  guidance (--guidance, FP-Studio's distilled_cfg, the pipeline's guidance_scale). A forward pre-hook on the
  transformer counts the calls of every run; the script fails if the two sides differ or miss n * steps.
* **Frames.** Both decode the same latent windows (all on the first section, then the newest 2 * lws, + 1 on
  the last) and cross-fade sections over 4 * lws - 3 frames, giving 4 * n * lws + 1 frames; the script fails if
  the frame counts of the two MP4s (decoded back after timing) differ.
* **The MP4.** Both write an H.264 MP4 at 30 fps, CRF 16, preset medium, yuv420p, one x264 thread: FP-Studio
  its closed segments joined by stream copy (plus thumbnail and sidecar, as a user gets them), the peer its
  frames in one file through the same PyAV writer (`modules.media.video_io.write_video`). diffusers'
  `export_to_video` is not used: without imageio (not installed here) it falls back to OpenCV's MPEG-4 Part 2
  `mp4v`, a different and much cheaper codec, and with imageio it encodes at a bitrate-based quality 5, so its
  time would not be equal work.
* **Timed.** From the start-image path to the finished MP4: the peer from opening the image to its MP4 written;
  FP-Studio the whole `Engine.generate` (input checks, encoders, sections, segments, checkpoints, outputs).
  Models are loaded before and shared; loading is not timed.

What cannot be matched exactly (caveats): the pipeline feeds the transformer its Llama embedding padded to
max_sequence_length 256 (its default) where FramePack/FP-Studio pad to 512, so FP-Studio's token refiner sees
twice the (masked) text tokens; the attention itself runs on the same unpadded tokens on both sides (batch 1
drops the padding). The VAE encodes the start latent by sampling (pipeline) or by its mode (FP-Studio), the
same cost. The sigma schedules differ (the pipeline applies the scheduler's static shift 7; FP-Studio shifts
by the token count), which changes values, not work. FP-Studio also writes a per-section checkpoint (the
growing preview only while someone watches it; nobody does here, as from the CLI), hashes the input for its
metadata and writes a thumbnail and sidecar: that is part of its job.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

log = logging.getLogger("bench.peer")

PROMPT = "a lighthouse on a cliff, waves rolling in, slow camera pan"
SEED = 31337


# ------------------------------------------------------------------------------------------------- helpers
class ModuleClock:
    """Counts the forward calls of one module and the seconds spent inside them (pre- and post-hooks)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self.seconds = 0.0
        self._t0 = 0.0
        self._handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _pre(self, _module: Any, _args: Any) -> None:
        self.calls += 1
        self._t0 = time.perf_counter()

    def _post(self, _module: Any, _args: Any, _out: Any) -> None:
        self.seconds += time.perf_counter() - self._t0

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Job:
    """The one job both sides run, with the numbers that make it equal work."""

    height: int
    width: int
    seconds: float
    steps: int
    lws: int
    guidance: float
    sections: int  # FramePack's count: round(seconds * 30 / (lws * 4)), at least 1
    frames: int  # 4 * sections * lws + 1
    peer_num_frames: int  # sections * ((lws - 1) * 4 + 1): exactly `sections` windows for the pipeline

    @property
    def transformer_calls(self) -> int:
        return self.sections * self.steps


def matched_job(args: argparse.Namespace) -> Job:
    from modules.framepack import sections as sec
    from modules.framepack.buckets import find_bucket

    h, w = find_bucket(args.width, args.height)
    n = sec.section_count(args.seconds, args.lws)
    window = (args.lws - 1) * 4 + 1  # the pipeline's frames per window
    peer_num_frames = n * window
    # The pipeline's own section count (pipeline_hunyuan_video_framepack.py, step 5).
    peer_sections = max(1, (peer_num_frames + window - 1) // window)
    assert peer_sections == n, (peer_sections, n)
    return Job(h, w, args.seconds, args.steps, args.lws, args.guidance, n,
               sec.total_pixel_frames(args.seconds, args.lws), peer_num_frames)


@dataclass
class Run:
    side: str
    wall: float
    transformer_calls: int
    transformer_s: float
    vae_decode_s: float
    frames: int  # frames in the MP4 (decoded back after timing)
    video: Path
    extra: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- the two sides
class Studio:
    """FP-Studio's engine on the shared ModelManager, one job per run (fresh work folder: no resume)."""

    def __init__(self, manager: Any, job: Job, args: argparse.Namespace, image: Path, tmp: Path) -> None:
        from modules.framepack.engine import Engine, bucket_for
        from modules.framepack.params import GenerationParams

        self.engine, self.tmp, self.job = Engine(manager), tmp, job
        self.params = GenerationParams(
            prompt=PROMPT, start_image=image, width=args.width, height=args.height, total_seconds=job.seconds,
            steps=job.steps, latent_window_size=job.lws, cfg=1.0, distilled_cfg=job.guidance,
            cache_type="None", seed=SEED)
        assert bucket_for(self.params) == (job.height, job.width), (bucket_for(self.params), job)

    def run(self, tag: str) -> tuple[float, Path, dict[str, float]]:
        from modules.framepack.events import DoneEvent
        from modules.framepack.outputs import OutputOptions
        from modules.media.video_io import DEFAULT_CRF

        folder = self.tmp / f"studio-{tag}"
        out = OutputOptions(output_dir=folder / "out", work_dir=folder / "work", crf=DEFAULT_CRF,
                            save_metadata=True, cleanup_videos=True)
        t0 = time.perf_counter()
        result = None
        for ev in self.engine.generate(self.params, out):
            if isinstance(ev, DoneEvent):
                result = ev.result
        wall = time.perf_counter() - t0
        assert result is not None
        t = result.info["stats"]["timings"]
        return wall, result.video, {"video_encode": t.get("video_encode", 0.0), "preview": t.get("preview", 0.0)}


class Peer:
    """diffusers' HunyuanVideoFramepackPipeline on the same component objects, its frames written as MP4."""

    def __init__(self, shared: Any, transformer: Any, job: Job, image: Path, tmp: Path) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideoFramepackPipeline

        from modules.models.loader import fetch_repo
        from modules.models.registry import COMPONENTS, ModelSet

        # The scheduler of the same tiny HunyuanVideo snapshot (not a registry component: FP-Studio has its own
        # UniPC sampler).
        root = fetch_repo(COMPONENTS["vae"].repo_id, ["vae"], ModelSet.TINY, progress=False)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(str(root / "scheduler"))
        self.pipe = HunyuanVideoFramepackPipeline(
            text_encoder=shared.text_encoder, tokenizer=shared.tokenizer, transformer=transformer,
            vae=shared.vae, scheduler=scheduler, text_encoder_2=shared.text_encoder_2,
            tokenizer_2=shared.tokenizer_2, image_encoder=shared.image_encoder,
            feature_extractor=shared.feature_extractor)
        self.pipe.set_progress_bar_config(disable=True)
        self.job, self.image, self.tmp = job, image, tmp

    def run(self, tag: str) -> tuple[float, Path, dict[str, float]]:
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_framepack import FramepackSamplingType

        from modules.media.video_io import DEFAULT_CRF, write_video

        j = self.job
        path = self.tmp / f"peer-{tag}.mp4"
        t0 = time.perf_counter()
        image = Image.open(self.image).convert("RGB")
        out = self.pipe(
            image=image, prompt=PROMPT, height=j.height, width=j.width, num_frames=j.peer_num_frames,
            latent_window_size=j.lws, num_inference_steps=j.steps, guidance_scale=j.guidance, true_cfg_scale=1.0,
            generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
            sampling_type=FramepackSamplingType.INVERTED_ANTI_DRIFTING)
        frames = np.clip(np.rint(out.frames[0] * 255.0), 0, 255).astype(np.uint8)  # F x H x W x 3
        t_enc = time.perf_counter()
        write_video(path, frames, 30, crf=DEFAULT_CRF)
        end = time.perf_counter()
        return end - t0, path, {"video_encode": end - t_enc, "preview": 0.0}


# ------------------------------------------------------------------------------------------------- main
def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each side (after one warm-up each)")
    ap.add_argument("--seconds", type=float, default=2.0, help="clip length (FramePack's section count)")
    ap.add_argument("--width", type=int, default=256, help="requested width (snapped to a bucket)")
    ap.add_argument("--height", type=int, default=256, help="requested height (snapped to a bucket)")
    ap.add_argument("--steps", type=int, default=8, help="sampling steps per section")
    ap.add_argument("--lws", type=int, default=9, help="latent window size")
    ap.add_argument("--guidance", type=float, default=10.0, help="distilled guidance (FP-Studio's default)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    load_start = loadavg()
    machine = (f"{cpu_model()}; {os.cpu_count()} CPUs visible; torch threads {torch.get_num_threads()}; "
               f"torch {torch.__version__}")
    log.info("machine: %s; load average %s", machine, load_start)

    import diffusers

    from modules.media.video_io import probe_video
    from modules.models.manager import ModelManager, RuntimeConfig
    from modules.models.registry import ModelSet

    job = matched_job(args)
    log.info("job: bucket %dx%d (WxH), %g s, lws %d -> %d sections, %d steps, %d transformer calls, %d frames "
             "(peer num_frames %d)", job.width, job.height, job.seconds, job.lws, job.sections, job.steps,
             job.transformer_calls, job.frames, job.peer_num_frames)

    manager = ModelManager(RuntimeConfig(model_set=ModelSet.TINY, device="cpu", dtype=torch.float32))
    t = time.perf_counter()
    shared = manager.shared()
    transformer = manager.transformer("original")
    log.info("tiny models loaded in %.1f s", time.perf_counter() - t)

    with tempfile.TemporaryDirectory(prefix="fp-peer-") as d:
        tmp = Path(d)
        image = tmp / "start.png"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (job.height, job.width, 3), dtype=np.uint8)).save(image)
        sides = {"peer": Peer(shared, transformer, job, image, tmp), "studio": Studio(manager, job, args, image, tmp)}
        t_clock, d_clock = ModuleClock(transformer), ModuleClock(shared.vae.decoder)
        runs: dict[str, list[Run]] = {"peer": [], "studio": []}
        schedule = [("peer", "warm"), ("studio", "warm")]
        for r in range(args.repeats):
            order = ("peer", "studio") if r % 2 == 0 else ("studio", "peer")
            schedule += [(s, str(r)) for s in order]
        try:
            for side, tag in tqdm(schedule, desc="runs", unit="job"):
                t_clock.reset()
                d_clock.reset()
                wall, video, extra = sides[side].run(tag)
                calls, t_s, d_s = t_clock.calls, t_clock.seconds, d_clock.seconds
                frames = probe_video(video).frames  # outside the timed region
                log.info("%s %s: %.2f s, %d transformer calls, %d frames", side, tag, wall, calls, frames)
                if calls != job.transformer_calls:
                    raise SystemExit(f"{side}: {calls} transformer calls, expected {job.transformer_calls}")
                if frames != job.frames:
                    raise SystemExit(f"{side}: {frames} frames in the MP4, expected {job.frames}")
                if tag != "warm":
                    runs[side].append(Run(side, wall, calls, t_s, d_s, frames, video, extra))
                if side == "studio":
                    shutil.rmtree(tmp / f"studio-{tag}", ignore_errors=True)
                else:
                    video.unlink(missing_ok=True)
        finally:
            t_clock.remove()
            d_clock.remove()
    load_end = loadavg()

    def med(side: str, key: str) -> float:
        return median([getattr(x, key) for x in runs[side]])

    def med_extra(side: str, key: str) -> float:
        return median([x.extra[key] for x in runs[side]])

    print(f"\nmachine: {machine}; diffusers {diffusers.__version__}")
    print(f"load average (1/5/15 min): start {load_start}, end {load_end}")
    print(f"job: tiny weights, CPU float32, bucket {job.width}x{job.height} (WxH), {job.seconds:g} s clip, "
          f"lws {job.lws}, {job.sections} sections x {job.steps} steps = {job.transformer_calls} transformer calls, "
          f"{job.frames} frames, real CFG 1, distilled guidance {job.guidance:g}; interleaved, "
          f"median of {args.repeats} after one warm-up each\n")
    print("| side | wall s (median) | min | max | transformer calls | transformer s | VAE decode s | "
          "MP4 write s | frames | video s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = {"peer": "diffusers HunyuanVideoFramepackPipeline", "studio": "FP-Studio Engine.generate"}
    for side in ("peer", "studio"):
        walls = [x.wall for x in runs[side]]
        calls = {x.transformer_calls for x in runs[side]}
        frames = {x.frames for x in runs[side]}
        print(f"| {names[side]} | {median(walls):.2f} | {min(walls):.2f} | {max(walls):.2f} | "
              f"{'/'.join(map(str, sorted(calls)))} | {med(side, 'transformer_s'):.2f} | "
              f"{med(side, 'vae_decode_s'):.2f} | {med_extra(side, 'video_encode'):.2f} | "
              f"{'/'.join(map(str, sorted(frames)))} | {job.frames / 30:.2f} |")
    ratio = med("studio", "wall") / med("peer", "wall")
    print(f"\nstudio / peer (median wall): {ratio:.2f}")
    print("notes: wall = start-image path to finished MP4, models preloaded and shared by both sides. Peer "
          f"called with num_frames {job.peer_num_frames} (= {job.sections} x {(job.lws - 1) * 4 + 1}, its window) "
          "so it runs FramePack's section count. Both MP4s: H.264 CRF 16, preset medium, yuv420p, 1 x264 thread "
          "(peer: one file via modules.media.video_io.write_video; FP-Studio: segments + stream-copy join, "
          "thumbnail, sidecar). MP4 write s for FP-Studio = its video_encode timer (segments + join); growing "
          f"preview (no viewer, as from the CLI): {med_extra('studio', 'preview'):.2f} s (median). VAE decode s = "
          "time inside vae.decoder.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
