"""Job names and batches: what a job is called (shown in the queue, its output file stem) and the jobs one
Add makes from many input files (one job each, same settings, one group id).

The name is a job attribute, not a generation parameter: it changes where the files go, never their bytes
(the sidecar, the MP4 comment and the latents file hold the parameters only), so the same job gives the same
bytes whatever it is called. naming.sanitize_stem makes it a file stem when the job writes its files.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modules.errors import field_messages
from modules.framepack.params import GenerationParams, GenerationType
from studio.jobs.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from studio.jobs.model import FieldError, JobValidationError
from studio.jobs.pool import job_gpu

MAX_NAME = 120
MAX_BATCH = 500  # one Add; a larger folder is refused rather than flooding the queue
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_name(text: str | None) -> str:
    """The name as stored and shown: control characters dropped, whitespace collapsed ("" = no name)."""
    return " ".join(_CONTROL.sub(" ", text or "").split())


class AddOptions(BaseModel):
    """What an Add takes besides the parameters (API body, CLI flags, Generate form)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=MAX_NAME, description="Job name: shown in the queue, the output file stem")
    batch_inputs: list[Path] = Field(default_factory=list, max_length=MAX_BATCH,
                                     description="One job per file: start images, or videos for the Video types")
    batch_folder: Path | None = Field(None, description="Every image (or video) file in this folder, one job each")
    gpu: str = Field("", description="The worker to run on: any (the default), a GPU number or a worker's name")

    @field_validator("name", mode="before")
    @classmethod
    def _clean(cls, v: object) -> object:
        return clean_name(v) if isinstance(v, str) or v is None else v

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, v: object) -> object:
        return job_gpu(v) if isinstance(v, (str, int)) or v is None else v


def parse_add_options(data: dict) -> AddOptions:
    """AddOptions from a dict; JobValidationError lists every bad field (as parse_params does)."""
    try:
        return AddOptions.model_validate(data)
    except ValidationError as exc:
        raise JobValidationError([FieldError(field=m.field, message=m.message) for m in field_messages(exc)]) from None


def raw_generation_type(raw: dict) -> GenerationType:
    """The type a parameter dict asks for (the default when it names none)."""
    try:
        return GenerationType(raw.get("generation_type") or GenerationParams.model_fields["generation_type"].default)
    except ValueError:
        raise JobValidationError([FieldError(field="generation_type",
                                             message=f"unknown type {raw.get('generation_type')!r}")]) from None


def input_field(generation_type: GenerationType) -> str:
    """The parameter a batch file fills: the source video of a Video type, else the start image."""
    return "input_video" if generation_type.is_video else "start_image"


def with_input(raw: dict, path: Path) -> dict:
    """The parameter dict with `path` as its batch input (start image or source video)."""
    return {**raw, input_field(raw_generation_type(raw)): str(path)}


def folder_files(folder: Path, generation_type: GenerationType) -> list[Path]:
    """The batch files of a folder in name order: regular, not hidden, with an image suffix (a video suffix
    for the Video types); other files are left out (a folder holds notes, sidecars...). ValueError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"not a folder: {folder}")
    video = generation_type.is_video
    suffixes = VIDEO_SUFFIXES - {".gif"} if video else IMAGE_SUFFIXES
    found = sorted((p for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes),
                   key=lambda p: p.name)
    if not found:
        raise ValueError(f"no {'video' if video else 'image'} files in {folder}")
    if len(found) > MAX_BATCH:
        raise ValueError(f"{len(found)} files; at most {MAX_BATCH} in one batch")
    return found


def batch_errors(errors: list[FieldError], index: int, path: Path, field: str) -> list[FieldError]:
    """A batch file's refusal: a problem of its input field becomes "batch_inputs.<i>: <file name>: why";
    other problems (prompt, sizes) are the batch's settings and stay as they are."""
    out = []
    for e in errors:
        if e.field == field:
            msg = e.message if path.name in e.message else f"{path.name}: {e.message}"
            out.append(FieldError(field=f"batch_inputs.{index}", message=msg))
        else:
            out.append(e)
    return out


def batch_names(inputs: list[Path], name: str) -> list[str]:
    """Each batch job's name: "<name>_<file stem>" (the stem alone without a name), so every output tells
    which input it came from."""
    return [clean_name(f"{name}_{Path(p).stem}" if name else Path(p).stem) for p in inputs]


def new_group_id() -> str:
    return uuid.uuid4().hex[:12]
