"""The tiny model set: random-initialised stand-ins under the real repo ids, shipped in tiny_hub/.

They load through exactly the same code path as the real weights (loader.fetch_repo with
cache_dir=TINY_HUB_DIR and local_files_only), so `--models tiny` runs the whole product on a CPU in
seconds. The files are a copy of the shared fixture hub, whose golden tensors belong to these exact bytes.
"""

from __future__ import annotations

from pathlib import Path

from modules.models.registry import COMPONENTS, TINY_HUB_DIR, ModelSet


def tiny_hub_dir() -> Path:
    return TINY_HUB_DIR


def missing_tiny_components() -> list[str]:
    """Components whose tiny snapshot folder is absent (empty list = complete)."""
    from modules.models.loader import ModelNotAvailableError, fetch_repo

    missing: list[str] = []
    for name, comp in COMPONENTS.items():
        try:
            fetch_repo(comp.repo_id, [name], ModelSet.TINY, progress=False)
        except ModelNotAvailableError:
            missing.append(name)
    return missing
