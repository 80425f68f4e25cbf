"""Continue from this video: an extension job from a finished video and its parameters, or its last frame.

    params = continuation_params(source_params, video, ContinueMode.VIDEO_F1)   # QueueService.continue_video
    frame = last_frame(video, folder)                                           # "Last frame as Start Frame"

The extension takes the source job's settings (its sidecar's "params", or the finished job's row, which holds
the same), with the chosen Video type, the video as `input_video` and `continued_from` naming the video by file
name and SHA-256: no path and no time, so the same extension gives the same sidecar bytes every run, and
rerunning it from its sidecar (`generate --params`) gives the same video.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from modules.framepack.metadata import MetadataError, file_sha256, parse_metadata
from modules.framepack.params import GenerationParams, GenerationType
from studio.jobs.model import Job, JobStatus



class ContinueMode(str, Enum):
    """What "Continue from this video" does: queue an extension with one of the two video models, or put the
    video's last frame into the Generate tab's Start Frame (UI only)."""

    VIDEO_F1 = "Video F1"
    VIDEO = "Video"
    START_FRAME = "Last frame as Start Frame"

    @property
    def generation_type(self) -> GenerationType | None:
        return {ContinueMode.VIDEO_F1: GenerationType.VIDEO_F1, ContinueMode.VIDEO: GenerationType.VIDEO}.get(self)


QUEUED_MODES = (ContinueMode.VIDEO_F1, ContinueMode.VIDEO)  # the modes that queue a job (API, CLI)
# Fields a video extension does not use: the source job's images and grid axes would only make the new job
# look as if they mattered (Video types ignore keyframes and start images; its end frame was the source's end).
_DROPPED = ("start_image", "end_image", "keyframes", "grid_x", "grid_y", "continued_from")
# The image type whose Start Frame takes the last frame, by the source's type (same model family).
_IMAGE_TYPE = {GenerationType.F1: GenerationType.F1, GenerationType.VIDEO_F1: GenerationType.F1}


class ContinueError(ValueError):
    """The video cannot be continued; the message says why in one sentence."""


def source_params(metadata: dict[str, Any] | None) -> GenerationParams:
    """The source video's parameters from its sidecar (or MP4 comment) object, read leniently (input files that
    are gone do not matter: an extension replaces them by the video itself)."""
    if not metadata:
        raise ContinueError("this video has no generation info (no sidecar JSON and no MP4 comment), so there "
                            "are no settings to continue with")
    try:
        return parse_metadata(metadata, lenient=True)[0]
    except MetadataError as exc:
        raise ContinueError(f"its generation info cannot be read: {exc}") from None


def continuation_params(source: GenerationParams, video: Path, mode: ContinueMode | str) -> GenerationParams:
    """The extension job of `video` made with `source`: the same settings, the chosen Video type, the video as
    its input and `continued_from` naming it. ContinueError when the video is no file or the source a Grid."""
    mode = ContinueMode(mode)
    gen_type = mode.generation_type
    if gen_type is None:
        raise ContinueError(f"{mode.value!r} queues no job; choose Video F1 or Video")
    video = Path(video)
    if source.generation_type == GenerationType.GRID:
        raise ContinueError("a Grid video compares several jobs side by side; continue one of them instead")
    sha = file_sha256(video)
    if sha is None:
        raise ContinueError(f"{video.name} no longer exists")
    data = source.model_dump(mode="json", exclude=set(_DROPPED))
    data.update(generation_type=gen_type.value, input_video=str(video),
                continued_from={"video": video.name, "sha256": sha})
    return GenerationParams.model_validate(data)


def start_frame_params(source: GenerationParams, frame: Path) -> GenerationParams:
    """Parameters for the Generate form around a last frame: the source's settings with an image type of the
    same model family (F1 stays F1, everything else Original) and the frame as Start Frame."""
    data = source.model_dump(mode="json", exclude={*_DROPPED, "input_video"})
    data.update(generation_type=_IMAGE_TYPE.get(source.generation_type, GenerationType.ORIGINAL).value,
                start_image=str(frame))
    return GenerationParams.model_validate(data)


def last_frame(video: Path, folder: Path) -> Path:
    """The video's last frame as a PNG in `folder`, named by the video's content (the same video gives the same
    file, written once). ContinueError when the video cannot be read."""
    from PIL import Image

    from modules.media.video_io import VideoError, atomic_output, iter_frames

    sha = file_sha256(video)
    if sha is None:
        raise ContinueError(f"{Path(video).name} no longer exists")
    dest = Path(folder) / f"last-frame-{sha[:24]}.png"
    if dest.is_file():
        return dest
    frame = None
    try:
        for frame in iter_frames(Path(video)):  # streamed: only one frame is held at a time
            pass
    except VideoError as exc:
        raise ContinueError(str(exc)) from None
    if frame is None:
        raise ContinueError(f"{Path(video).name} contains no frames")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")
    return dest


# ---- the queue side (QueueService.continue_job / continue_output queue what these return) --------------------------
def job_continuation(job_id: str, job: Job | None, mode: ContinueMode | str) -> GenerationParams:
    """The extension of a finished job's video with that job's parameters (the row holds what its sidecar's
    "params" hold). ContinueError unless the job is COMPLETED and its video still exists."""
    if job is None:
        raise ContinueError(f"no job {job_id}")
    video = Path(job.output_video) if job.output_video else None
    if job.status is not JobStatus.COMPLETED or video is None:
        raise ContinueError(f"only a COMPLETED job's video can be continued; job {job_id} is {job.status.value}")
    if not video.is_file():
        raise ContinueError(f"the video of job {job_id} ({video.name}) no longer exists")
    return continuation_params(job.params, video, mode)
