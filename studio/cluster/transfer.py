"""What travels between the studio and an engine actor, and the file helpers of both ends.

Worker machines share no file system with the studio: a job's input files, its work folder (resume
checkpoints) and its final files travel as bytes through Ray's object store. The messages are plain
dataclasses (pickled by Ray); the job itself is a pydantic model, checked again on the actor's side.
Torch-free: the studio imports this without loading torch.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from modules.framepack.inputs import iter_input_files
from modules.framepack.params import GenerationParams
from modules.media.video_io import atomic_output

log = logging.getLogger(__name__)


class RemoteJob(BaseModel):
    """One job as an actor receives it: everything it needs besides the file bytes."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1)
    params: GenerationParams  # input paths as the studio has them (they are part of the sidecar and MP4 comment)
    settings: dict  # studio.settings.Settings as JSON, folders resolved on the studio's side
    stem: str = Field(min_length=1)  # the output name the studio reserved; the files come back under it
    crf: int
    save_metadata: bool
    cleanup_videos: bool
    save_latents: bool = False
    preview_wanted: bool = False
    torch_threads: int | None = Field(None, ge=1)  # the studio's torch thread count: CPU results depend on it


@dataclass
class WorkFiles:
    """The actor's work folder changed (after a section: a new checkpoint): files to write, names to drop.

    The studio writes `files` in order (checkpoint.json last, so a checkpoint is whole once it names its
    tensors), then removes `removed`."""

    files: dict[str, bytes] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


@dataclass
class OutputFiles:
    """The job's final files, by path relative to the output folder or to the metadata folder."""

    outputs: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, bytes] = field(default_factory=dict)


@dataclass
class RemoteResult:
    """The actor's GenerationResult with paths relative to the folders of OutputFiles (None: no such file)."""

    video: str
    metadata: str | None
    thumbnail: str | None
    extra_files: list[str]
    frames: int
    fps: int
    width: int
    height: int
    seed: int
    skipped_steps: int
    info: dict


@dataclass
class Finished:
    """The stream's last item: the final files and the result that names them."""

    files: OutputFiles
    result: RemoteResult


@dataclass
class ActorInfo:
    """What an actor says about itself (ready() and info())."""

    device: str  # "cuda:0" / "cpu"
    device_name: str  # "NVIDIA H200" / the CPU
    node_ip: str
    vram_total_mb: float | None = None
    vram_used_mb: float | None = None
    job_id: str | None = None


# ---- files ------------------------------------------------------------------------------------------------------
CHECKPOINT_LAST = "checkpoint.json"  # modules/framepack/workdir.py: the file that points at the others


def read_folder(folder: Path) -> dict[str, bytes]:
    """Every plain file directly in `folder` (the work folder is flat), hidden ones (unfinished writes) left out."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every plain file under `folder`, by POSIX path relative to it (a grid's cells lie in a subfolder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def safe_child(root: Path, relative: str) -> Path:
    """root / relative, refusing names that leave root (an actor is trusted less than the studio's own disk)."""
    path = (Path(root) / relative).resolve()
    if not path.is_relative_to(Path(root).resolve()) or relative.startswith(("/", "\\")):
        raise ValueError(f"refused file name from a worker: {relative!r}")
    return path


def write_files(root: Path, files: dict[str, bytes], removed: list[str] = ()) -> list[Path]:
    """Writes each file under root atomically (checkpoint.json last), then removes `removed`; the paths written."""
    root = Path(root)
    written = []
    for name in sorted(files, key=lambda n: n == CHECKPOINT_LAST):
        path = safe_child(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            Path(tmp).write_bytes(files[name])
        written.append(path)
    for name in removed:
        safe_child(root, name).unlink(missing_ok=True)
    return written


class FolderWatch:
    """Which files of a folder changed since the last look (by size and modification time)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._seen: dict[str, tuple[int, int]] = {}

    def mark(self) -> None:
        """Takes the folder as it is now as already sent."""
        self._seen = self._state()

    def changes(self) -> WorkFiles:
        now = self._state()
        changed = {n: (self.folder / n).read_bytes() for n, st in now.items() if self._seen.get(n) != st}
        removed = sorted(n for n in self._seen if n not in now)
        self._seen = now
        return WorkFiles(changed, removed)

    def _state(self) -> dict[str, tuple[int, int]]:
        if not self.folder.is_dir():
            return {}
        out = {}
        for p in self.folder.iterdir():
            if p.is_file() and not p.name.startswith("."):
                st = p.stat()
                out[p.name] = (st.st_size, st.st_mtime_ns)
        return out


def input_files(params: GenerationParams) -> list[Path]:
    """The job's input files (the input checker's list: start, end, source video, keyframes), each once."""
    return list(dict.fromkeys(p for _field, _kind, p in iter_input_files(params)))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def place_input(path: Path, data: bytes, fallback_dir: Path) -> Path:
    """Makes the input `data` readable at `path` on this machine and returns where it is.

    The job's parameters name its inputs by the studio's path, and that path is part of the sidecar, the MP4
    comment and the checkpoints' fingerprint: reading the input from the same path keeps all three
    byte-identical to a local run and lets another actor resume the checkpoints. The studio's inputs are
    content-addressed (kept-inputs/<sha256><suffix>), so an existing file with the same bytes is the same
    input, and writing a missing one is what the studio itself would store there. Only when that is impossible
    (a different file there, no permission) the copy goes to fallback_dir, and the caller rewrites the path."""
    path = Path(path)
    try:
        if path.is_file():
            if sha256(path.read_bytes()) == sha256(data):
                return path
            raise FileExistsError(f"{path} holds other bytes")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            Path(tmp).write_bytes(data)
        return path
    except OSError as exc:
        copy = Path(fallback_dir) / f"{sha256(data)}{path.suffix}"
        log.warning("input %s cannot be placed at the studio's path (%s); using %s: this job's sidecar and MP4 "
                    "comment name the copy, and its checkpoints resume only on this actor", path, exc, copy)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not copy.is_file():
            with atomic_output(copy) as tmp:
                Path(tmp).write_bytes(data)
        return copy


def replace_inputs(params: GenerationParams, placed: dict[Path, Path]) -> GenerationParams:
    """params with each input path p replaced by placed[p] (unchanged where they are equal)."""
    if all(Path(a) == Path(b) for a, b in placed.items()):
        return params
    data = params.model_dump()
    for key in ("start_image", "end_image", "input_video"):
        if data.get(key) is not None:
            data[key] = placed.get(Path(data[key]), data[key])
    for kf in data.get("keyframes", []):
        kf["image"] = placed.get(Path(kf["image"]), kf["image"])
    return GenerationParams.model_validate(data)

