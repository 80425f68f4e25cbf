"""Finishing a job's files, the same for every generation type: join the section segments into the MP4
(with the reproduction comment), thumbnail, optional latents file, sidecar JSON, scratch cleanup, and the
GenerationResult with the run facts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from modules.framepack import metadata as meta
from modules.framepack.events import GenerationResult
from modules.framepack.naming import claimed_stem, default_stem, unique_stem
from modules.framepack.params import FPS, GenerationParams
from modules.framepack.plan import JobContext
from modules.framepack.workdir import cleanup_work
from modules.media.segments import join_segments
from modules.media.tensor_file import save_tensors
from modules.media.video_io import atomic_output, iter_frames
from modules.memory.rss import peak_rss_mb


@dataclass
class OutputOptions:
    """Where and how a job writes its files (filled from studio settings by the caller)."""

    output_dir: Path
    work_dir: Path  # per-job scratch: growing preview video, section checkpoints for resume
    crf: int
    save_metadata: bool
    cleanup_videos: bool
    metadata_dir: Path | None = None  # None = beside the video
    save_latents: bool = False
    name: str | None = None  # output file stem (sanitised); None = unique name from time + seed
    # Asked after each section: does anyone watch the growing preview video? None (CLI, API without a
    # viewer): never built, so every frame is encoded exactly once.
    preview_wanted: Callable[[], bool] | None = None


FINAL_SUFFIXES = (".mp4", ".json", ".png", ".latents.safetensors")


def metadata_folder(out: OutputOptions) -> Path:
    return Path(out.metadata_dir) if out.metadata_dir else Path(out.output_dir)


def output_stem(out: OutputOptions, default: str) -> str:
    """The job's file stem: its name (or `default`), made unique in the output and metadata folders."""
    Path(out.output_dir).mkdir(parents=True, exist_ok=True)
    return unique_stem(Path(out.output_dir), out.name or default, FINAL_SUFFIXES, (metadata_folder(out),))


def claimed_output_stem(out: OutputOptions, default: str) -> AbstractContextManager[str]:
    """output_stem, reserved until the block ends (naming.claimed_stem): what a job holds while it writes."""
    return claimed_stem(Path(out.output_dir), out.name or default, FINAL_SUFFIXES, (metadata_folder(out),))


def write_thumbnail(video: Path, path: Path) -> Path:
    """The video's first frame as a PNG."""
    frames = iter_frames(video)
    try:
        first = next(frames)
    finally:
        frames.close()
    with atomic_output(path) as tmp:
        Image.fromarray(first).save(tmp, format="PNG")
    return path


def write_sidecar(out: OutputOptions, stem: str, repro: dict[str, Any], run: dict[str, Any]) -> Path | None:
    """`<stem>.json` in the metadata folder when the job saves metadata; its path, else None."""
    if not out.save_metadata:
        return None
    mdir = metadata_folder(out)
    mdir.mkdir(parents=True, exist_ok=True)
    return meta.write_sidecar(mdir / f"{stem}.json", meta.sidecar(repro, run))


def finish_outputs(job: JobContext, params: GenerationParams, out: OutputOptions, repro: dict[str, Any],
                   segment_paths: list[Path], history_latents: torch.Tensor, computed_log: list[list[bool]],
                   latents_metadata: dict[str, str] | None = None) -> GenerationResult:
    """Write the final files of a job from its closed segments (in video order) and return the result.

    job: the job's timings, RSS monitor and trace (tests receive "history_latents" there);
    latents_metadata: extra string fields of the --save-latents file.
    """
    # The stem stays claimed until every final file is written (two writers never pick the same name).
    with claimed_output_stem(out, default_stem(params.seed)) as stem:
        return _finish_named(stem, job, params, out, repro, segment_paths, history_latents, computed_log,
                             latents_metadata)


def _finish_named(stem: str, job: JobContext, params: GenerationParams, out: OutputOptions, repro: dict[str, Any],
                  segment_paths: list[Path], history_latents: torch.Tensor, computed_log: list[list[bool]],
                  latents_metadata: dict[str, str] | None) -> GenerationResult:
    output_dir = Path(out.output_dir)
    video = output_dir / f"{stem}.mp4"
    with job.timer("video_encode"):
        frames = join_segments(segment_paths, video, FPS, comment=meta.comment_text(repro))
    thumb = write_thumbnail(video, output_dir / f"{stem}.png")
    extra: list[Path] = []
    if out.save_latents:
        lat_path = output_dir / f"{stem}.latents.safetensors"
        with atomic_output(lat_path) as tmp:
            save_tensors({"history_latents": history_latents}, tmp,
                         metadata={"fps": str(FPS), **(latents_metadata or {}), "params": json.dumps(repro["params"])})
        extra.append(lat_path)
    if job.trace is not None:
        job.trace["history_latents"] = history_latents.clone()
    skipped = sum(1 for s in computed_log for c in s if not c)
    # The sidecar holds only what the same job reproduces (so it has the same bytes every run); times,
    # memory and file names of this particular run go to the result (the job row, the CLI log).
    run = {"skipped_steps": skipped, "computed_steps": [[int(c) for c in s] for s in computed_log],
           "cache": params.cache_type.value if computed_log else "None"}
    stats = {"wall_seconds": round(time.perf_counter() - job.started, 3), "timings": job.timings.as_dict(),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "video": video.name,
             "frames_encoded": job.frames_encoded, **_rss_facts(job)}
    sidecar_path = write_sidecar(out, stem, repro, run)
    cleanup_work(Path(out.work_dir), out.cleanup_videos)
    d = repro["derived"]
    return GenerationResult(video=video, metadata=sidecar_path, thumbnail=thumb, frames=frames, fps=FPS,
                            width=d["bucket_width"], height=d["bucket_height"], seed=params.seed,
                            skipped_steps=skipped, extra_files=extra,
                            info={"derived": d, "run": run, "stats": stats, "peak_rss_mb": stats["peak_rss_mb"]})


def _rss_facts(job: JobContext) -> dict[str, float]:
    """This job's peak RSS (sampled while it ran) and the process's peak so far, in MiB."""
    process_peak = round(peak_rss_mb(), 1)
    monitor = job.rss_monitor
    if monitor is None:
        return {"peak_rss_mb": process_peak, "process_peak_rss_mb": process_peak}
    monitor.sample()
    return {"peak_rss_mb": round(monitor.peak_mb, 1), "process_peak_rss_mb": process_peak}
