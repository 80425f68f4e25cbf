"""Application settings: one pydantic model, stored as settings.json in the data directory.

Every setting default lives here once. Environment variables FP_STUDIO_<FIELD> override the file, e.g.
FP_STUDIO_MODELS=tiny or FP_STUDIO_GPU_MEMORY_PRESERVATION=8 (read by pydantic-settings; never saved).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from modules.errors import format_errors
from modules.framepack.params import GenerationParams
from modules.framepack.system_prompt import system_prompt_error
from modules.gpu_info import parse_gpu_selection
from modules.media.video_io import DEFAULT_CRF
from modules.models.registry import CAPTIONER_MODELS, DEFAULT_CAPTIONER, ModelSet

log = logging.getLogger(__name__)

ENV_PREFIX = "FP_STUDIO_"
THEMES = ("default", "soft", "glass", "mono", "base", "citrus", "ocean", "origin")
CAPTIONERS = tuple(CAPTIONER_MODELS)


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    # Core generation settings
    save_metadata: bool = Field(True, description="Save a JSON file with every parameter beside each video")
    gpu_memory_preservation: float = Field(
        6.0, ge=0.0, le=128.0, description="GPU Inference Preserved Memory (GB): VRAM kept free during generation")
    mp4_crf: int = Field(DEFAULT_CRF, ge=0, le=51, description="MP4 Compression (CRF): 0 lossless, 16-23 high quality")
    clean_up_videos: bool = Field(True, description="Keep only the final video; delete intermediate previews")
    deterministic: bool = Field(
        False, description="Deterministic GPU mode: same bits on every run on the same GPU, slower (CPU runs "
                           "are reproducible without it)")

    # System prompt (advanced)
    override_system_prompt: bool = Field(False, description="Use the template below instead of the default")
    system_prompt_template: str = Field(
        "", description='Prompt template with `{}` where the prompt goes, or JSON: '
                        '{"template": "...{}...", "crop_start": 95}')

    # Paths (relative paths are inside the data directory)
    output_dir: str = Field("outputs", description="Output Directory for generated videos")
    metadata_dir: str = Field("", description="Metadata Directory (empty: beside each video)")
    lora_dir: str = Field("loras", description="LoRA Directory")
    gradio_temp_dir: str = Field("temp/gradio", description="Gradio Temporary Directory (uploads)")
    postprocess_output_dir: str = Field("postprocessed", description="Permanent folder for processed videos")
    postprocess_temp_dir: str = Field("temp/postprocess", description="Scratch folder for post-processing")

    # Application
    auto_save_settings: bool = Field(True, description="Save changes on this page automatically")
    theme: Literal[THEMES] = Field("soft", description="UI theme (restart to apply)")  # type: ignore[valid-type]
    postprocess_autosave: bool = Field(True, description="Autosave processed videos to the permanent folder")
    models: ModelSet = Field(ModelSet.REAL, description="Model set: real weights or the tiny test set")
    hf_home: str = Field("", description="Hugging Face cache (empty: HF_HOME / the default cache)")
    gpus: str = Field("all", description="GPUs to run jobs on, one worker each: all, none (CPU) or numbers like 0,2 "
                                  "(restart to apply)")
    captioner_model: Literal[CAPTIONERS] = Field(  # type: ignore[valid-type]
        DEFAULT_CAPTIONER, description="Captioner model: Caption, Describe video and Enhance in the Generate tab "
                                       "(fetch it with python -m studio download --captioner)")
    workers: int = Field(1, ge=0, le=16, description="Workers on the CPU when no GPU is used (tiny models, tests; "
                                                     "0: none, when a Ray cluster runs the jobs; restart to apply)")

    # The folder settings: relative ones lie inside the data directory (DataPaths.resolved_settings); an empty
    # optional one (metadata_dir, hf_home) means "not set".
    FOLDERS: ClassVar[tuple[str, ...]] = (
        "output_dir", "metadata_dir", "lora_dir", "gradio_temp_dir", "postprocess_output_dir",
        "postprocess_temp_dir", "hf_home")

    @field_validator("gpus")
    @classmethod
    def _check_gpus(cls, v: str) -> str:
        chosen = parse_gpu_selection(v)
        return chosen if isinstance(chosen, str) else ",".join(map(str, chosen))

    @field_validator("system_prompt_template")
    @classmethod
    def _check_system_prompt_template(cls, v: str) -> str:
        """Checked when saved (the one parser, modules/framepack/system_prompt.py), so no job fails on it later."""
        problem = system_prompt_error(v)
        if problem:
            raise ValueError(problem)
        return v

    def system_prompt_override(self) -> str | None:
        """The template jobs get when "Override System Prompt" is on (None: the model's default)."""
        if self.override_system_prompt and self.system_prompt_template.strip():
            return self.system_prompt_template
        return None

    def apply_to(self, params: GenerationParams) -> GenerationParams:
        """Job parameters with the settings that belong in them (the system prompt override) filled in.

        Applied when a job is created, so the stored job records the template it will run with.
        """
        template = self.system_prompt_override()
        if params.system_prompt is None and template is not None:
            problem = system_prompt_error(template)  # Settings checks it when saved; this guards unchecked copies
            if problem:
                log.warning("system prompt override ignored: %s", problem)
                return params
            return params.model_copy(update={"system_prompt": template})
        return params


class SettingsStore:
    """Loads and saves settings.json atomically; a corrupt file is backed up and defaults are used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warning: str | None = None  # shown in the UI when the file had to be replaced

    def load(self) -> Settings:
        data: dict = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("settings.json must hold a JSON object")
                data = self._without_invalid_fields(data)
            except (ValueError, ValidationError) as exc:
                backup = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
                self.path.replace(backup)
                self.warning = f"settings.json was unreadable ({exc.__class__.__name__}); moved to {backup.name}, using defaults"
                log.warning(self.warning)
                data = {}
        data.update(env_overrides())
        return Settings.model_validate(data)

    def _without_invalid_fields(self, data: dict) -> dict:
        """A file whose values are readable but some invalid (e.g. a system prompt template from before it was
        checked): a backup copy is kept, those fields get their defaults and the warning names them."""
        try:
            Settings.model_validate(data)
            return data
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
            if not bad or not bad <= set(Settings.model_fields):
                raise
            kept = {k: v for k, v in data.items() if k not in bad}
            Settings.model_validate(kept)  # anything else wrong: the whole file is replaced (the caller)
            backup = self.path.with_name(f"{self.path.name}.invalid-{time.strftime('%Y%m%d-%H%M%S')}")
            backup.write_bytes(self.path.read_bytes())
            self.warning = (f"settings.json had invalid values ({'; '.join(format_errors(exc))}); using the "
                            f"defaults for {', '.join(sorted(bad))} (the file is copied to {backup.name})")
            log.warning(self.warning)
            return kept

    def save(self, settings: Settings) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(self._without_env_values(settings), indent=2)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _without_env_values(self, settings: Settings) -> dict:
        """What to write: a value that only came from an FP_STUDIO_* variable stays out of the file."""
        data = settings.model_dump(mode="json")
        overrides = env_overrides()
        if not overrides:
            return data
        try:
            previous = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        except (OSError, ValueError):
            previous = {}
        from_env = Settings.model_validate({**data, **overrides}).model_dump(mode="json")
        for name in overrides:
            if data[name] == from_env[name]:  # unchanged since the environment set it
                if isinstance(previous, dict) and name in previous:
                    data[name] = previous[name]
                else:
                    data.pop(name)
        return data


class _SettingsEnvironment(BaseSettings, Settings):
    """Settings' fields as FP_STUDIO_<FIELD> variables: pydantic-settings finds and parses them."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore")


def env_overrides() -> dict[str, Any]:
    """field -> raw value of every setting an FP_STUDIO_* variable sets (validated by Settings when applied).
    Other FP_STUDIO_* variables (DATA_DIR, AUTH, ...) are not settings and are left out."""
    return dict(EnvSettingsSource(_SettingsEnvironment)())
