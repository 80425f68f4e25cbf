"""Queue export (one zip: jobs.json + input files) and import (.json or .zip), all-or-nothing.

Our layout:  jobs.json  {"format": "fp-studio-queue", "version": 1, "jobs": [{id, status, generation_type,
             created_at, completed_at, error, name, group_id, params}]}, params' file paths relative to the
             archive root: files/<job id>/<name>.
FramePack-Studio's layout (its queue.json, also inside its export zip with queue_images/ and input_files/):
             {"<job id>": {"status": "pending", "model_type": "Original", "prompt": ..., "seed": ...,
             "saved_input_image_path": ..., "input_video": ..., "loras": {"name": weight}, ...}, ...}
             mapped field by field where the meaning matches; unknown fields are ignored.

Import never trusts the archive: member names must be plain relative paths (no absolute, no drive letter,
no `..`, no backslash, no links), each member and the total are size-limited by what they declare AND by
what they really inflate to, and the member count is capped. Every job is validated with GenerationParams
and its input files by content before anything is added; one bad job refuses the whole file.

Statuses: a PENDING or RUNNING entry is queued PENDING; a FAILED, CANCELLED or INTERRUPTED one keeps its status
and error (it runs again only when the user retries it); a COMPLETED one is skipped (its video is not in the
file) unless include_completed re-queues it. The result lists every skipped entry with the reason.
"""

from __future__ import annotations

import json
import logging
import re
import stat
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modules.errors import format_errors
from modules.framepack.inputs import iter_input_files
from modules.framepack.params import GenerationParams
from studio.jobs import files
from studio.jobs.model import RETRYABLE, JobStatus, JobValidationError
from studio.jobs.staging import Staging
from studio.jobs.storage import StorageFullError, is_storage_full, storage_full_as_error
from studio.jobs.store import JobStore
from studio.paths import DataPaths



class QueueService(Protocol):
    """What export and import need of the queue facade (studio.jobs.service.QueueService), named here so
    that the facade can import this module and not the other way round."""

    paths: DataPaths
    store: JobStore

    def validate(self, data: GenerationParams | dict | str,
                 allowed_roots: Iterable[Path] | None = None) -> GenerationParams: ...

    def add_prepared(self, items: list[PreparedJob], staging: Staging | None = None) -> list[str]: ...

log = logging.getLogger(__name__)

FORMAT = "fp-studio-queue"
JOBS_JSON = "jobs.json"
MAX_MEMBERS = 2000
MAX_JOBS = 1000
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # one input video
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_JSON_BYTES = 16 * 1024 * 1024
_PATH_FIELDS = ("start_image", "end_image", "input_video")


class ArchiveError(ValueError):
    """The file was refused; nothing was added. The message says why."""


@dataclass(frozen=True)
class PreparedJob:
    """A validated job about to be added: PENDING, or (import) the status it had ended with elsewhere."""

    params: GenerationParams
    status: JobStatus = JobStatus.PENDING
    error: str | None = None
    completed_at: float | None = None
    name: str = ""  # the job's name and batch group travel with it (not parameters: studio/jobs/batch.py)
    group_id: str | None = None


class ExportedJob(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(None, max_length=64)
    status: JobStatus | None = None
    generation_type: str | None = None
    created_at: float | None = None
    completed_at: float | None = None
    error: str | None = Field(None, max_length=20_000)
    name: str = Field("", max_length=200)
    group_id: str | None = Field(None, max_length=64)
    params: dict[str, Any]


class ExportFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: Literal["fp-studio-queue"]
    version: int = Field(1, ge=1, le=1)
    exported_at: float | None = None
    jobs: list[ExportedJob] = Field(max_length=MAX_JOBS)


class SkippedJob(BaseModel):
    job: str  # the entry's id in the file (its position when it has none)
    reason: str


class ImportResult(BaseModel):
    added: list[str]
    kept: dict[str, int] = Field(default_factory=dict)  # added jobs that kept a finished status: status -> count
    skipped: list[SkippedJob] = Field(default_factory=list)  # entries not added, each with the reason
    source_format: str

    @property
    def message(self) -> str:
        """One line for the UI, the API and the CLI: what was added, what kept its status, what was skipped."""
        kept = ", ".join(f"{n} kept {status}" for status, n in self.kept.items())
        text = f"Imported {len(self.added)} job(s) from {self.source_format}" + (f" ({kept})" if kept else "") + "."
        if self.skipped:
            shown = [f"{s.job}: {s.reason}" for s in self.skipped[:10]]
            more = f"; ... and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            text += f" Skipped {len(self.skipped)}: " + "; ".join(shown) + more + "."
        return text


# ---- export -------------------------------------------------------------------------------------------------
def _export_doc(service: QueueService, job_ids: Iterable[str] | None, relocate) -> tuple[dict, list]:
    jobs = service.store.list_full(job_ids)
    entries, members = [], []
    for job in jobs:
        params = job.params.model_dump(mode="json")
        for field, _kind, path in iter_input_files(job.params):
            if not path.is_file():
                continue
            new = relocate(job.id, path)
            members.append((path, new))
            if field.startswith("keyframes."):
                params["keyframes"][int(field.split(".")[1])]["image"] = new
            else:
                params[field] = new
        entries.append(ExportedJob(id=job.id, status=job.status, generation_type=job.generation_type,
                                   created_at=job.created_at, completed_at=job.completed_at, error=job.error,
                                   name=job.name or "", group_id=job.group_id,
                                   params=params).model_dump(mode="json"))
    doc = ExportFile(format=FORMAT, exported_at=time.time(), jobs=[]).model_dump(mode="json")
    doc["jobs"] = entries
    return doc, members


def export_zip(service: QueueService, dest: Path, job_ids: Iterable[str] | None = None) -> Path:
    """jobs.json plus every job's input files under files/<job id>/; written atomically."""
    from modules.media.video_io import atomic_output

    doc, members = _export_doc(service, job_ids, lambda jid, p: f"files/{jid}/{p.name}")
    with storage_full_as_error(), atomic_output(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(JOBS_JSON, json.dumps(doc, indent=2))
        for src, arc in members:
            # Videos are already compressed; storing them saves time.
            ctype = zipfile.ZIP_STORED if src.suffix.lower() in files.VIDEO_SUFFIXES else zipfile.ZIP_DEFLATED
            zf.write(src, arc, compress_type=ctype)
    return dest


def export_json(service: QueueService, dest: Path, job_ids: Iterable[str] | None = None) -> Path:
    """The same document with absolute paths into the job folders (e.g. the data directory's queue.json)."""
    from modules.media.video_io import atomic_output

    doc, _ = _export_doc(service, job_ids, lambda jid, p: str(p))
    with storage_full_as_error(), atomic_output(dest) as tmp:
        tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return dest


# ---- import -------------------------------------------------------------------------------------------------
def import_file(service: QueueService, path: Path, include_completed: bool = False) -> ImportResult:
    """All or nothing; ArchiveError says why a file was refused, StorageFullError that the disk is full."""
    with storage_full_as_error():
        return _import_file(service, Path(path), include_completed)


def _import_file(service: QueueService, path: Path, include_completed: bool) -> ImportResult:
    if not path.is_file():
        raise ArchiveError(f"{path.name}: file not found")
    if zipfile.is_zipfile(path):
        return _import_zip(service, path, include_completed)
    if path.suffix.lower() == ".zip":
        raise ArchiveError(f"{path.name}: not a valid zip file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ArchiveError(f"{path.name}: larger than {MAX_JSON_BYTES // 2**20} MB")
    doc = _parse_json(path.read_bytes(), path.name)
    # Files named by a loose JSON: relative to its folder, or absolute inside the data directory only. A JSON picked
    # in the browser arrives alone in the upload folder: its relative paths (FramePack-Studio's queue_images/...)
    # are looked for in the data directory too.
    root = service.paths.root.resolve()
    resolver = _DirResolver(path.parent.resolve(), allowed_roots=(path.parent.resolve(), root), also=root)
    return _add_jobs(service, doc, resolver, include_completed)


def _parse_json(raw: bytes, name: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{name}: malformed JSON ({exc})") from None


def check_member_name(name: str) -> str | None:
    """None when a zip member name is a safe relative path; otherwise why not."""
    if not name or "\x00" in name:
        return "empty or NUL in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        return "'..' in path"
    if len(name) > 512 or len(parts) > 16:
        return "path too long"
    return None


def _check_zip(zf: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ArchiveError(f"{name}: {len(infos)} members, more than the limit of {MAX_MEMBERS}")
    total = 0
    for info in infos:
        why = check_member_name(info.filename)
        if why:
            raise ArchiveError(f"{name}: refused member {info.filename!r}: {why}")
        mode = (info.external_attr >> 16) & 0o170000
        if mode and (stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))):
            raise ArchiveError(f"{name}: refused member {info.filename!r}: not a regular file")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ArchiveError(f"{name}: refused member {info.filename!r}: declares {info.file_size} bytes, "
                               f"more than the limit of {MAX_MEMBER_BYTES // 2**20} MB")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ArchiveError(f"{name}: archive declares more than {MAX_TOTAL_BYTES // 2**30} GB in total")
    return infos


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest_root: Path) -> Path:
    """Extracts one checked member, never writing more than it declared (a lying header is refused)."""
    dest = dest_root.joinpath(*PurePosixPath(info.filename).parts)
    if not dest.resolve().is_relative_to(dest_root.resolve()):
        raise ArchiveError(f"refused member {info.filename!r}: escapes the import folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveError(f"refused member {info.filename!r}: inflates beyond its declared size")
            out.write(chunk)
    return dest


def _import_zip(service: QueueService, path: Path, include_completed: bool) -> ImportResult:
    # Extracted into the same staging folder the jobs are built in: one folder to sweep after a kill -9.
    with Staging(service.paths) as stage:
        tmp_root = stage.root / ".archive"
        tmp_root.mkdir()
        return _import_extracted(service, path, include_completed, stage, tmp_root)


def _import_extracted(service: QueueService, path: Path, include_completed: bool, stage: Staging,
                      tmp_root: Path) -> ImportResult:
    try:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"{path.name}: not a valid zip file ({exc})") from None
        with zf:
            infos = _check_zip(zf, path.name)
            by_name = {i.filename: i for i in infos if not i.is_dir()}
            doc_name = JOBS_JSON if JOBS_JSON in by_name else "queue.json" if "queue.json" in by_name else None
            if doc_name is None:
                raise ArchiveError(f"{path.name}: no {JOBS_JSON} or queue.json at the top of the archive")
            if by_name[doc_name].file_size > MAX_JSON_BYTES:
                raise ArchiveError(f"{path.name}: {doc_name} is larger than {MAX_JSON_BYTES // 2**20} MB")
            try:
                for info in by_name.values():
                    _extract(zf, info, tmp_root)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:  # RuntimeError: encrypted
                if is_storage_full(exc):  # our disk, not the archive, is at fault
                    raise StorageFullError(str(exc)) from exc
                raise ArchiveError(f"{path.name}: damaged archive ({exc})") from None
        doc = _parse_json((tmp_root / doc_name).read_bytes(), f"{path.name}/{doc_name}")
        resolver = _DirResolver(tmp_root.resolve(), allowed_roots=(tmp_root.resolve(),), zip_mode=True)
        return _add_jobs(service, doc, resolver, include_completed, stage)
    except ArchiveError as exc:
        if not str(exc).startswith(path.name):
            raise ArchiveError(f"{path.name}: {exc}") from None
        raise


class _DirResolver:
    """Maps a file path named in the imported JSON to a real file, refusing anything outside the roots."""

    def __init__(self, base: Path, allowed_roots: tuple[Path, ...], zip_mode: bool = False,
                 also: Path | None = None) -> None:
        self.base, self.allowed_roots, self.zip_mode = base, allowed_roots, zip_mode
        self.also = also  # a second folder relative paths are looked for in, when not under base

    def __call__(self, raw: str) -> Path:
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError("not a file path")
        raw = raw.strip()
        looks_absolute = raw.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", raw))
        if self.zip_mode and looks_absolute:
            # FramePack-Studio stores absolute paths of the exporting machine: look for the file by its
            # base name where its export puts input files.
            name = re.split(r"[\\/]", raw)[-1]
            for sub in ("queue_images", "input_files", ""):
                cand = self.base / sub / name if sub else self.base / name
                if cand.is_file():
                    return cand
            raise ValueError(f"{name} is not in the archive")
        cand = Path(raw) if looks_absolute else self.base / raw.replace("\\", "/")
        resolved = cand.resolve()
        if not any(resolved.is_relative_to(root) for root in self.allowed_roots):
            raise ValueError(f"{raw} is outside the allowed folders")
        if not resolved.is_file() and self.also is not None and not looks_absolute:
            other = (self.also / raw.replace("\\", "/")).resolve()
            if other.is_relative_to(self.also) and other.is_file():
                return other
        if not resolved.is_file() and self.zip_mode:
            name = Path(raw.replace("\\", "/")).name
            for sub in ("queue_images", "input_files"):
                if (self.base / sub / name).is_file():
                    return self.base / sub / name
        return resolved


def _localise(params: dict, resolve) -> dict:
    """Replaces every input path in a raw params dict by the resolved local file."""
    out = dict(params)
    for field in _PATH_FIELDS:
        if out.get(field):
            out[field] = str(resolve(out[field]))
    if isinstance(out.get("keyframes"), list):
        kfs = []
        for kf in out["keyframes"]:
            if isinstance(kf, dict) and kf.get("image"):
                kf = {**kf, "image": str(resolve(kf["image"]))}
            kfs.append(kf)
        out["keyframes"] = kfs
    return out


@dataclass(frozen=True)
class _Entry:
    """One job of the imported file, in either layout."""

    label: str
    status: JobStatus
    params: dict
    error: str | None = None
    completed_at: float | None = None
    name: str = ""
    group_id: str | None = None


def _entries(doc: Any) -> tuple[list[_Entry], str]:
    """The file's jobs and its layout's name; ArchiveError when it is neither layout."""
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        try:
            parsed = ExportFile.model_validate(doc)
        except ValidationError as exc:
            raise ArchiveError(f"not a valid {FORMAT} file: {'; '.join(format_errors(exc, limit=10))}") from None
        return [_Entry(j.id or f"#{i + 1}", j.status or JobStatus.PENDING, j.params, j.error, j.completed_at,
                       j.name, j.group_id) for i, j in enumerate(parsed.jobs)], "this app's export"
    if isinstance(doc, dict) and doc and all(isinstance(v, dict) for v in doc.values()) and any(
            ("model_type" in v or "prompt" in v) for v in doc.values()):
        if len(doc) > MAX_JOBS:
            raise ArchiveError(f"more than {MAX_JOBS} jobs")
        return [_Entry(str(k), _fps_status(v.get("status")), from_framepack_studio(v), _text(v.get("error")),
                       _number(v.get("completed_at"))) for k, v in doc.items()], "FramePack-Studio queue.json"
    raise ArchiveError("not a queue file: expected this project's export (format "
                       f"'{FORMAT}') or FramePack-Studio's queue.json")


def _text(value: Any) -> str | None:
    return str(value)[:20_000] if value not in (None, "") else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _prepared(entry: _Entry, params: GenerationParams) -> PreparedJob:
    """A FAILED / CANCELLED / INTERRUPTED entry keeps its status and error; anything else is queued PENDING."""
    labels = {"name": entry.name, "group_id": entry.group_id}
    if entry.status in RETRYABLE:
        return PreparedJob(params, entry.status, entry.error or f"{entry.status.value.lower()} before it was "
                           "exported", entry.completed_at, **labels)
    return PreparedJob(params, **labels)


def _add_jobs(service: QueueService, doc: Any, resolve, include_completed: bool,
              staging: Staging | None = None) -> ImportResult:
    entries, fmt = _entries(doc)
    items: list[PreparedJob] = []
    skipped: list[SkippedJob] = []
    problems: list[str] = []
    for entry in entries:
        if entry.status == JobStatus.COMPLETED and not include_completed:
            skipped.append(SkippedJob(job=entry.label, reason="completed (its video is not in the file); "
                                      "not queued again"))
            continue
        try:
            local = _localise(entry.params, resolve)
        except ValueError as exc:
            problems.append(f"job {entry.label}: input file: {exc}")
            continue
        try:
            items.append(_prepared(entry, service.validate(local)))
        except JobValidationError as exc:
            problems.append(f"job {entry.label}: " + "; ".join(f"{e.field}: {e.message}" for e in exc.errors))
    if problems:
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise ArchiveError("nothing imported: " + " | ".join(shown))
    added = service.add_prepared(items, staging) if items else []
    kept: dict[str, int] = {}
    for item in items:
        if item.status is not JobStatus.PENDING:
            kept[item.status.value] = kept.get(item.status.value, 0) + 1
    log.info("imported %d job(s) from %s (kept %s), skipped %d", len(added), fmt, kept or "none", len(skipped))
    return ImportResult(added=added, kept=kept, skipped=skipped, source_format=fmt)


# ---- FramePack-Studio's queue.json ---------------------------------------------------------------------------
_FPS_STATUS = {"pending": JobStatus.PENDING, "running": JobStatus.PENDING, "completed": JobStatus.COMPLETED,
               "failed": JobStatus.FAILED, "cancelled": JobStatus.CANCELLED}


def _fps_status(value: Any) -> JobStatus:
    return _FPS_STATUS.get(str(value or "pending").lower(), JobStatus.PENDING)


# Their key -> our GenerationParams field, where the meaning is the same.
_FPS_FIELDS = {
    "prompt": "prompt", "negative_prompt": "negative_prompt", "n_prompt": "negative_prompt", "seed": "seed",
    "steps": "steps", "cfg": "cfg", "gs": "distilled_cfg", "rs": "cfg_rescale", "latent_type": "latent_image",
    "total_second_length": "total_seconds", "blend_sections": "blend_sections",
    "latent_window_size": "latent_window_size", "resolutionW": "width", "resolutionH": "height",
    "end_frame_strength": "end_frame_strength", "teacache_rel_l1_thresh": "teacache_threshold",
    "magcache_threshold": "magcache_threshold", "magcache_max_consecutive_skips": "magcache_max_consecutive_skips",
    "magcache_retention_ratio": "magcache_retention_ratio", "combine_with_source": "combine_with_source",
    "num_cleaned_frames": "num_context_frames",
}


def from_framepack_studio(entry: dict) -> dict:
    """One FramePack-Studio queue entry -> GenerationParams fields (validated by the caller)."""
    out: dict[str, Any] = {}
    model_type = str(entry.get("model_type") or entry.get("generation_type") or "Original")
    out["generation_type"] = "F1" if model_type == "F1 with Endframe" else model_type
    for theirs, ours in _FPS_FIELDS.items():
        if entry.get(theirs) is not None:
            out[ours] = entry[theirs]
    if entry.get("use_magcache"):
        out["cache_type"] = "MagCache"
    elif "use_teacache" in entry:
        out["cache_type"] = "TeaCache" if entry.get("use_teacache") else "None"
    image = entry.get("saved_input_image_path") or entry.get("input_image_path")
    is_video_type = out["generation_type"] in ("Video", "Video with Endframe", "Video F1")
    if is_video_type:
        # Their "video_path" is the full path; "input_video" holds only its base name.
        video = next((entry[k] for k in ("video_path", "input_video") if isinstance(entry.get(k), str) and entry[k]),
                     None)
        video = video or (image if isinstance(image, str) else None)
        if video:
            out["input_video"] = video
    elif isinstance(image, str) and image:
        out["start_image"] = image
    end = entry.get("saved_end_frame_image_path") or entry.get("end_frame_image_path")
    if isinstance(end, str) and end:
        out["end_image"] = end
    loras = entry.get("loras")
    if isinstance(loras, dict):
        out["loras"] = [{"name": n if Path(n).suffix else f"{n}.safetensors", "weight": w} for n, w in loras.items()]
    return out
