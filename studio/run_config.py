"""What a generation run takes from the settings: where its files go (OutputOptions) and how models load
(RuntimeConfig). One builder each, used by the queue worker and `python -m studio generate`, so both runs
of the same job write the same files and load the same models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules.models.lora_files import LoraContext
from studio.paths import DataPaths
from studio.settings import Settings

if TYPE_CHECKING:  # both pull in torch; only a process that generates needs them
    from modules.framepack.outputs import OutputOptions
    from modules.models.manager import RuntimeConfig
    from modules.models.registry import ModelSet


def output_options(settings: Settings, paths: DataPaths, work_dir: Path, *, output_dir: Path | None = None,
                   save_latents: bool = False, name: str | None = None,
                   preview_wanted: Callable[[], bool] | None = None) -> OutputOptions:
    """A job's output options: folders from the settings (resolved in the data directory), unless output_dir
    is given (the CLI's --out); work_dir holds its checkpoints, so a rerun with the same one resumes."""
    from modules.framepack.outputs import OutputOptions

    s = paths.resolved_settings(settings)
    return OutputOptions(output_dir=Path(output_dir or s.output_dir), work_dir=Path(work_dir), crf=s.mp4_crf,
                         save_metadata=s.save_metadata, cleanup_videos=s.clean_up_videos,
                         metadata_dir=Path(s.metadata_dir) if s.metadata_dir else None,
                         save_latents=save_latents, name=name, preview_wanted=preview_wanted)


def runtime_config(settings: Settings, paths: DataPaths | None, *, device: str = "auto", dtype: Any = None,
                   model_set: ModelSet | None = None) -> RuntimeConfig:
    """The model manager's configuration from the settings. paths: None when the settings' folders are already
    absolute (DataPaths.resolved_settings; the worker hands the engine provider such settings)."""
    from modules.models.manager import RuntimeConfig

    s = paths.resolved_settings(settings) if paths is not None else settings
    for name in ("lora_dir", "hf_home"):
        if getattr(s, name) and not Path(getattr(s, name)).is_absolute():
            raise ValueError(f"{name}: {getattr(s, name)!r} is relative; resolve the settings with DataPaths first")
    return RuntimeConfig(model_set=model_set or s.models, device=device, dtype=dtype,
                         hf_home=Path(s.hf_home) if s.hf_home else None, lora_dir=Path(s.lora_dir),
                         preserved_memory_gb=s.gpu_memory_preservation, deterministic=s.deterministic)


def lora_context(settings: Settings, paths: DataPaths) -> LoraContext:
    """The LoRA folder and the model set its files must fit, from the settings: what the input checker and the
    Generate tab's LoRA list check a LoRA against (header only; torch-free)."""
    s = paths.resolved_settings(settings)
    return LoraContext(Path(s.lora_dir), s.models, Path(s.hf_home) if s.hf_home else None)
