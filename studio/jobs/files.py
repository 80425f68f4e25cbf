"""A job's folder: its input files are copied in at add time so the job never depends on uploads or
temp folders that may vanish, and its parameters point into the folder.

    <jobs_dir>/<job id>/inputs/start_image.png, end_image.png, input_video.mp4, keyframe_00.png, ...
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
from studio.jobs.model import FieldError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}
THUMB_SIZE = 96

OUTSIDE_ROOTS_MESSAGE = "must be a file inside the data directory (upload it first: POST /api/uploads)"


def outside_roots(params: GenerationParams, roots: Iterable[Path]) -> list[FieldError]:
    """The input files that do not lie under any of `roots` (symlinks followed), judged by path alone: one
    answer for every such path, whether it exists, is readable or not."""
    real_roots = [Path(os.path.realpath(r)) for r in roots]
    return [FieldError(field=field, message=OUTSIDE_ROOTS_MESSAGE)
            for field, _kind, path in iter_input_files(params)
            if not any(Path(os.path.realpath(path)).is_relative_to(r) for r in real_roots)]


def _safe_suffix(path: Path, kind: str) -> str:
    suffix = path.suffix.lower()
    allowed = IMAGE_SUFFIXES if kind == "image" else VIDEO_SUFFIXES
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) and suffix in allowed else (
        ".png" if kind == "image" else ".mp4")


def _copy_atomic(src: Path, dest: Path) -> None:
    from modules.media.video_io import atomic_output

    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)


def stage_inputs(params: GenerationParams, job_dir: Path) -> GenerationParams:
    """Copies every input file into job_dir/inputs under a fixed name; returns params pointing there."""
    inputs = job_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    updates: dict = {}
    keyframes = [kf.model_copy() for kf in params.keyframes]
    for field, kind, src in iter_input_files(params):
        stem = field.replace("keyframes.", "keyframe_").replace(".image", "")
        if stem.startswith("keyframe_"):
            stem = f"keyframe_{int(stem.split('_')[1]):02d}"
        dest = inputs / f"{stem}{_safe_suffix(src, kind)}"
        if Path(src).resolve() != dest.resolve():
            _copy_atomic(Path(src), dest)
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


def stage_job(params: GenerationParams, staged_dir: Path, final_dir: Path) -> tuple[GenerationParams, str | None]:
    """Builds a job folder in staged_dir (input copies, thumbnail); returns the parameters and thumbnail path
    as they will be once the folder is moved to final_dir."""
    staged = stage_inputs(params, staged_dir)
    thumb = make_thumbnail(staged, staged_dir)

    def moved(p: Path) -> Path:
        return final_dir / Path(p).relative_to(staged_dir)

    data = staged.model_dump(mode="json")
    for field, _kind, path in iter_input_files(staged):
        if field.startswith("keyframes."):
            data["keyframes"][int(field.split(".")[1])]["image"] = str(moved(path))
        else:
            data[field] = str(moved(path))
    return GenerationParams.model_validate(data), (str(moved(Path(thumb))) if thumb else None)


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
