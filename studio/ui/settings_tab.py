"""Settings tab: one control per Settings field (labels, ranges and defaults from the model), saved atomically."""

from __future__ import annotations

import logging
import shutil
import typing
from pathlib import Path

import gradio as gr
from pydantic import ValidationError

from modules.errors import format_errors
from modules.models.registry import ModelSet
from studio.settings import ENV_PREFIX, Settings, env_overrides
from studio.ui import fields as F
from studio.ui.services import Services

log = logging.getLogger(__name__)
S = Settings

# Section -> (field, label). Every Settings field appears once; the test checks none is missing.
SECTIONS: dict[str, list[tuple[str, str]]] = {
    "Core Generation Settings": [
        ("save_metadata", "Save Metadata"),
        ("gpu_memory_preservation", "GPU Inference Preserved Memory (GB)"),
        ("mp4_crf", "MP4 Compression (CRF)"),
        ("clean_up_videos", "Clean up video files"),
        ("deterministic", "Deterministic mode (GPU)"),
    ],
    "System Prompt (Advanced)": [
        ("override_system_prompt", "Override System Prompt"),
        ("system_prompt_template", "System Prompt Template"),
    ],
    "File & Directory Paths": [
        ("output_dir", "Output Directory"),
        ("metadata_dir", "Metadata Directory"),
        ("lora_dir", "LoRA Directory"),
        ("gradio_temp_dir", "Gradio Temporary Directory"),
        ("postprocess_output_dir", "Post-processing Output Directory"),
        ("postprocess_temp_dir", "Post-processing Temporary Directory"),
        ("hf_home", "Hugging Face cache (HF_HOME)"),
    ],
    "Application Settings": [
        ("auto_save_settings", "Auto-save settings"),
        ("theme", "Theme"),
        ("postprocess_autosave", "Autosave processed videos"),
        ("models", "Model set"),
    ],
}


def _control(name: str, label: str, value):
    field = S.model_fields[name]
    ann = field.annotation
    elem = f"setting_{name}"
    if ann is bool:
        return F.checkbox(S, name, label, value=value, elem_id=elem)
    if ann in (int, float):
        lo, hi = F.bounds(S, name)
        if lo is not None and hi is not None:
            step = 1 if ann is int else 0.5
            return F.slider(S, name, label, value=value, step=step, elem_id=elem)
        return F.number(S, name, label, value=value, elem_id=elem)
    if ann is ModelSet:
        return gr.Radio([m.value for m in ModelSet], value=getattr(value, "value", value), label=label,
                        info=field.description + " (restart to apply)", elem_id=elem)
    choices = typing.get_args(ann)
    if choices:
        return gr.Dropdown(list(choices), value=value, label=label, info=field.description, elem_id=elem)
    lines = 6 if name == "system_prompt_template" else 1
    return gr.Textbox(value=value, label=label, info=field.description, lines=lines, elem_id=elem)


def clean_gradio_temp(folder: Path) -> int:
    """Delete everything inside the Gradio temp folder (not the folder itself). Returns files removed."""
    n = 0
    if not folder.is_dir():
        return 0
    for child in folder.iterdir():
        try:
            if child.is_dir() and not child.is_symlink():
                n += sum(1 for p in child.rglob("*") if p.is_file())
                shutil.rmtree(child)
            else:
                child.unlink()
                n += 1
        except OSError:
            log.warning("could not remove %s", child, exc_info=True)
    return n


def build(services: Services) -> None:
    holder = services.settings
    current = holder.current.model_dump(mode="json")
    controls: dict[str, gr.components.Component] = {}
    warning = holder.store.warning
    gr.Markdown(f"⚠️ {warning}" if warning else "", elem_id="settings_warning", visible=bool(warning))
    env = sorted(ENV_PREFIX + n.upper() for n in env_overrides())
    overridden = sorted(holder.run_overrides)
    notes = []
    if env:
        notes.append("Set by environment variables (they win over settings.json at start-up): " + ", ".join(env))
    if overridden:
        notes.append("Set by command-line flags for this run only: " + ", ".join(overridden))
    gr.Markdown("ℹ️ " + " · ".join(notes) if notes else "", visible=bool(notes), elem_id="settings_env")
    gr.Markdown("Folder changes apply to new jobs at once; the web server serves a new output folder after a "
                "restart.", elem_id="settings_paths_note")
    for section, items in SECTIONS.items():
        with gr.Accordion(section, open=True):
            for name, label in items:
                controls[name] = _control(name, label, current[name])
    with gr.Row():
        save = gr.Button("💾 Save Settings", variant="primary", elem_id="settings_save")
        clean = gr.Button("🗑️ Clean Up Temporary Files", elem_id="settings_clean")
    msg = gr.Markdown("", elem_id="settings_msg")
    names = list(controls)

    def to_settings(values: list) -> Settings:
        data = holder.current.model_dump()
        data.update(dict(zip(names, values)))
        return Settings.model_validate(data)

    def on_save(*values):
        try:
            settings = to_settings(list(values))
        except ValidationError as exc:
            return "⚠️ Not saved: " + "; ".join(format_errors(exc))
        holder.update(settings, save=True)
        return f"✅ Settings saved to {holder.store.path.name}."

    save.click(on_save, [controls[n] for n in names], msg, api_visibility="private")

    def on_auto(*values):
        try:
            settings = to_settings(list(values))
        except ValidationError as exc:
            return "⚠️ Not saved: " + "; ".join(format_errors(exc))
        if not settings.auto_save_settings and not holder.current.auto_save_settings:
            return "Changed: press Save Settings to apply."  # auto-save off: nothing applies until Save
        holder.update(settings, save=True)
        return "✅ Auto-saved."

    for n in names:
        comp = controls[n]
        event = comp.blur if isinstance(comp, gr.Textbox) else comp.change
        event(on_auto, [controls[k] for k in names], msg, api_visibility="private", show_progress="hidden")

    def on_clean():
        # Uploads reach jobs as copies in their job folders, so both upload folders are safe to empty.
        n = clean_gradio_temp(services.gradio_temp_dir) + clean_gradio_temp(services.paths.api_uploads_dir)
        return f"Removed {n} temporary file(s) from {services.gradio_temp_dir} and API uploads."

    clean.click(on_clean, None, msg, api_visibility="private")
