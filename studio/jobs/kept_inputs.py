"""Kept inputs: the input files of queued jobs, stored once per content in `<data dir>/kept-inputs/`.

    <data dir>/kept-inputs/<sha256 of the bytes><suffix>      e.g. 3f9a...c1.png, 77b0...e2.mp4

A job's parameters (its row), and so its sidecar JSON and MP4 comment, point here rather than into the job
folder, so clearing or removing jobs never takes away the inputs an output was made from: "Load parameters
into Generate", Upload Metadata JSON and `generate --params` find every start, end, keyframe image and source
video for as long as an output refers to them. Named by content: the same file added twice is stored once,
and the same job added twice has the same parameters (the sidecar's bytes do not depend on a job id).

A kept file is removed (`prune`) only when something that referred to it goes (a job removed or cleared, an
output deleted in the Outputs tab) and nothing else still does: no job row, no sidecar JSON and no MP4
comment in the output and metadata folders. Two cases leave a kept file unreferenced until the same file
is added again: an add killed (kill -9) or failing between copying its inputs and committing its row, and
outputs the app no longer lists (an output folder changed in Settings, a video deleted outside the app);
both are left alone on purpose, as only the folders in use are searched and a false "nobody refers to it"
would delete an input an output still needs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from modules.framepack.inputs import iter_input_files
from modules.framepack.metadata import PARAMS_KEYS, file_sha256
from modules.media.file_lock import FileLock
from studio.jobs.store import JobStore
from studio.paths import DataPaths

log = logging.getLogger(__name__)

KEPT_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")
_FILE_FIELDS = ("start_image", "end_image", "input_video")


def keep(src: Path, suffix: str, kept_dir: Path) -> Path:
    """The kept copy of `src` (copied now unless the same bytes are kept already)."""
    from modules.media.video_io import atomic_output  # av: loaded only when a job is added

    sha = file_sha256(src)
    if sha is None:
        raise FileNotFoundError(f"{src}: not a file")
    dest = Path(kept_dir) / f"{sha}{suffix}"
    if Path(src).resolve() == dest.resolve() or dest.is_file():
        return dest  # named by its content: an existing file is the same file
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest


def names_in_params(params: Any) -> set[str]:
    """The file names of every input a parameter object (parsed or raw JSON) refers to. Raw JSON is read
    field by field without validation, so an odd or old sidecar still counts as a reference."""
    if not isinstance(params, dict):
        try:
            return {p.name for _f, _k, p in iter_input_files(params)}
        except (AttributeError, TypeError):
            return set()
    values = [params.get(f) for f in _FILE_FIELDS]
    keyframes = params.get("keyframes")
    if isinstance(keyframes, list):
        values += [k.get("image") for k in keyframes if isinstance(k, dict)]
    return {Path(v).name for v in values if isinstance(v, str) and v}


def names_in_metadata(data: Any) -> set[str]:
    """The input file names a sidecar / MP4 comment object refers to ("params", or a bare parameter object)."""
    if not isinstance(data, dict):
        return set()
    for key in PARAMS_KEYS:  # read leniently: a malformed sidecar still names what it names
        if isinstance(data.get(key), dict):
            return names_in_params(data[key])
    return names_in_params(data)


def kept_files(names: Iterable[str], kept_dir: Path) -> list[Path]:
    """The kept files among these names (anything else, e.g. a user's own file, is never a candidate)."""
    return [Path(kept_dir) / n for n in sorted(set(names)) if KEPT_NAME.fullmatch(n)]


def prune(candidates: Iterable[Path], paths: DataPaths, store: JobStore, output_dirs: Iterable[Path]) -> list[Path]:
    """Removes the candidate kept files nothing refers to any more; returns those removed.

    Runs only while it holds the staging lock exclusively (every add and import holds it shared from copying
    its inputs until its rows commit, so no new reference can appear meanwhile); when someone is adding, it
    removes nothing and a later prune of the same file does."""
    kept_dir = paths.kept_inputs_dir.resolve()
    todo = [p for p in candidates if Path(p).resolve().parent == kept_dir and KEPT_NAME.fullmatch(Path(p).name)
            and Path(p).is_file()]
    if not todo:
        return []
    lock = FileLock(paths.staging_lock)
    if not lock.acquire():
        log.info("kept inputs: an add is in progress; %d unreferenced candidate(s) left for later", len(todo))
        return []
    removed: list[Path] = []
    try:
        used = referenced_names(store, output_dirs, skip=paths.kept_inputs_dir)
        for p in todo:
            if p.name in used:
                continue
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove kept input %s: %s", p, exc)
    finally:
        lock.release()
    if removed:
        log.info("removed %d kept input(s) nothing refers to: %s", len(removed), ", ".join(p.name for p in removed))
    return removed


def referenced_names(store: JobStore, output_dirs: Iterable[Path], skip: Path | None = None) -> set[str]:
    """Input file names referred to by any job row, sidecar JSON or (for a video without a sidecar) MP4 comment
    in the output folders (`skip`: a folder below them to leave out, e.g. the kept inputs themselves)."""
    from modules.media.video_io import VideoError, read_comment

    used: set[str] = set()
    for job in store.list_full():
        used |= names_in_params(job.params)
    videos: dict[str, Path] = {}
    sidecar_stems: set[str] = set()
    for f in _files(output_dirs, skip):
        suffix = f.suffix.lower()
        if suffix == ".json":
            sidecar_stems.add(f.stem)
            used |= names_in_metadata(_read_json(f))
        elif suffix == ".mp4":
            videos.setdefault(f.stem, f)
    for stem, video in videos.items():
        if stem not in sidecar_stems:  # metadata saving was off: the comment is the only record
            try:
                comment = read_comment(video)
                used |= names_in_metadata(json.loads(comment) if comment else None)
            except (VideoError, OSError, json.JSONDecodeError):
                continue
    return used


def _files(folders: Iterable[Path], skip: Path | None) -> Iterator[Path]:
    """Every visible, finished file under the folders but `skip` (each folder once, symlinks not followed)."""
    from modules.media.video_io import is_partial_name

    seen: set[Path] = {Path(skip).resolve()} if skip is not None else set()
    for folder in folders:
        root = Path(folder).resolve()
        if root in seen or not root.is_dir():
            continue
        seen.add(root)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and Path(dirpath, d) not in seen]
            for name in filenames:
                if not name.startswith(".") and not is_partial_name(name):
                    yield Path(dirpath) / name


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
