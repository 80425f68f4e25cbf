"""A job's folder and its inputs: the input files are copied at add time so the job never depends on uploads
or temp folders that may vanish. They go to the kept inputs (kept_inputs.py), not into the job folder: the
job's outputs refer to them after the job itself is cleared.

    <data dir>/kept-inputs/<sha256><suffix>   the input files, one per content; the parameters point here
    <jobs_dir>/<job id>/work/     engine scratch: section checkpoints (resume), growing preview video
    <jobs_dir>/<job id>/preview.png, thumb.png
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from modules.framepack.inputs import iter_input_files
from modules.framepack.params import GenerationParams
from studio.jobs.kept_inputs import keep
from studio.jobs.model import FieldError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}
THUMB_SIZE = 96

OUTSIDE_ROOTS_MESSAGE = "must be a file inside the data directory (upload it first: POST /api/uploads)"


def outside(path: Path, roots: Iterable[Path]) -> bool:
    """Whether `path` lies under none of `roots` (symlinks followed), judged by path alone."""
    real = Path(os.path.realpath(path))
    return not any(real.is_relative_to(Path(os.path.realpath(r))) for r in roots)


def outside_roots(params: GenerationParams, roots: Iterable[Path]) -> list[FieldError]:
    """The input files that do not lie under any of `roots` (symlinks followed), judged by path alone: one
    answer for every such path, whether it exists, is readable or not."""
    roots = list(roots)
    return [FieldError(field=field, message=OUTSIDE_ROOTS_MESSAGE)
            for field, _kind, path in iter_input_files(params) if outside(path, roots)]


def _safe_suffix(path: Path, kind: str) -> str:
    suffix = path.suffix.lower()
    allowed = IMAGE_SUFFIXES if kind == "image" else VIDEO_SUFFIXES
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) and suffix in allowed else (
        ".png" if kind == "image" else ".mp4")


def stage_inputs(params: GenerationParams, kept_dir: Path) -> GenerationParams:
    """Keeps every input file in kept_dir (kept_inputs.keep: named by content); returns params pointing there."""
    updates: dict = {}
    keyframes = [kf.model_copy() for kf in params.keyframes]
    for field, kind, src in iter_input_files(params):
        dest = keep(Path(src), _safe_suffix(src, kind), kept_dir)
        if field.startswith("keyframes."):
            keyframes[int(field.split(".")[1])] = keyframes[int(field.split(".")[1])].model_copy(
                update={"image": dest})
        else:
            updates[field] = dest
    if params.keyframes:
        updates["keyframes"] = keyframes
    # Re-validate: the copy must still be a valid parameter set (model_copy alone would skip validation).
    data = params.model_dump(mode="json")
    data.update({k: (str(v) if isinstance(v, Path) else [kf.model_dump(mode="json") for kf in v])
                 for k, v in updates.items()})
    return GenerationParams.model_validate(data)


def stage_job(params: GenerationParams, staged_dir: Path, final_dir: Path,
              kept_dir: Path) -> tuple[GenerationParams, str | None]:
    """Keeps the job's inputs in kept_dir and builds its folder in staged_dir (thumbnail); returns the
    parameters and the thumbnail path as it will be once the folder is moved to final_dir."""
    staged = stage_inputs(params, kept_dir)
    thumb = make_thumbnail(staged, staged_dir)
    return staged, (str(final_dir / Path(thumb).relative_to(staged_dir)) if thumb else None)


def make_thumbnail(params: GenerationParams, job_dir: Path) -> str | None:
    """A small PNG of the start image (or the source video's first frame) for the queue table."""
    try:
        from PIL import Image

        dest = job_dir / "thumb.png"
        if params.start_image is not None:
            with Image.open(params.start_image) as im:
                im = im.convert("RGB")
                im.thumbnail((THUMB_SIZE, THUMB_SIZE))
                im.save(dest)
            return str(dest)
        if params.input_video is not None:
            from modules.media.video_io import iter_frames

            frames = iter_frames(Path(params.input_video))
            try:
                first = next(frames)
            finally:
                frames.close()
            im = Image.fromarray(first)
            im.thumbnail((THUMB_SIZE, THUMB_SIZE))
            im.save(dest)
            return str(dest)
    except Exception as exc:  # a thumbnail is cosmetic; never refuse a job for it
        log.warning("no thumbnail for %s: %s", job_dir.name, exc)
    return None


def remove_job_dir(job_dir: str | Path, jobs_root: Path) -> None:
    """Deletes a job folder, but only one that really lives under the jobs folder."""
    p = Path(job_dir).resolve()
    root = Path(jobs_root).resolve()
    if p.parent != root:
        log.warning("not removing %s: outside %s", p, root)
        return
    remove_tree(p)


def remove_tree(path: Path) -> bool:
    """Deletes a folder and everything in it; what cannot be deleted is logged, not raised (clean-up must not
    hide the error that made it necessary). True when the folder is gone."""
    def report(_func, failed, exc_info) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            log.warning("could not remove %s: %s", failed, exc_info[1])

    shutil.rmtree(path, onerror=report)
    return not Path(path).exists()
