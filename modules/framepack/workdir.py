"""A job's scratch folder: closed section segments, the growing preview and the resume checkpoint.

Shared by the image types (engine.py) and the video types (video_runner.py); each passes its own
tensors and state, the file layout and the resume rules are the same.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from modules.media.tensor_file import save_tensors
from modules.media.video_io import atomic_output

log = logging.getLogger(__name__)

CHECKPOINT_JSON = "checkpoint.json"
PREVIEW_NAME = "preview.mp4"
PENDING_NAME = "pending.mp4"


def save_checkpoint(work: Path, fingerprint: str, k: int, tensors: dict[str, torch.Tensor],
                    state: dict[str, Any]) -> None:
    """Checkpoint after section k: tensors first, then the JSON that points at them (so both are whole)."""
    name = f"ckpt_{k:04d}.safetensors"
    with atomic_output(work / name) as tmp:
        save_tensors(tensors, tmp)
    doc = {"fingerprint": fingerprint, "section_done": k, "tensors": name, **state}
    with atomic_output(work / CHECKPOINT_JSON) as tmp:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
    for old in work.glob("ckpt_*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_checkpoint(work: Path, fingerprint: str) -> tuple[dict, dict] | None:
    """(state, tensors) of the last finished section, or None when absent, foreign or unreadable."""
    path = work / CHECKPOINT_JSON
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("fingerprint") != fingerprint:
            log.info("checkpoint in %s belongs to other parameters; starting fresh", work)
            return None
        if not all((work / s).is_file() for s in state["segments"].values()):
            return None
        return state, load_file(str(work / state["tensors"]))
    except (OSError, ValueError, KeyError):
        log.warning("unreadable checkpoint in %s; starting fresh", work)
        return None


def _scratch_files(work: Path) -> list[Path]:
    return list(work.glob("seg_*.mp4")) + list(work.glob("ckpt_*.safetensors")) + \
        [work / CHECKPOINT_JSON, work / PENDING_NAME]


def clear_work(work: Path) -> None:
    """Remove everything a previous run left (fresh start)."""
    for p in _scratch_files(work) + [work / PREVIEW_NAME]:
        p.unlink(missing_ok=True)


def cleanup_work(work: Path, cleanup_videos: bool) -> None:
    """After a finished job: drop the scratch files, keep the preview unless cleanup_videos, drop an empty folder."""
    for p in _scratch_files(work) + ([work / PREVIEW_NAME] if cleanup_videos else []):
        p.unlink(missing_ok=True)
    try:
        if not any(work.iterdir()):
            work.rmdir()
    except OSError:
        pass
