"""Settings tab: one control per Settings field (labels, ranges and defaults from the model), saved atomically."""

from __future__ import annotations

import logging
import shutil
import typing
from pathlib import Path

import gradio as gr
from pydantic import ValidationError

from modules.errors import field_messages
from modules.models.registry import ModelSet
from studio.jobs.pool import slots_host_ram
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
        ("captioner_model", "Captioner model (Caption, Describe video, Enhance)"),
    ],
    "Workers": [
        ("gpus", "GPUs (one worker each)"),
        ("workers", "CPU workers"),
    ],
}


LABELS: dict[str, str] = {name: label for items in SECTIONS.values() for name, label in items}

_SHOWN_TEXT_JS = """(value, baseline) => {
    const box = document.querySelector('#%(id)s textarea, #%(id)s input');
    return [box ? box.value : value, baseline];
}"""


def not_saved(exc: ValidationError) -> str:
    """"⚠️ Not saved: <label>: <sentence>" for each invalid setting, named as the page labels it."""
    return "⚠️ Not saved: " + "; ".join(f"{LABELS.get(m.field, m.field)}: {m.message}"
                                        for m in field_messages(exc))


def _control(name: str, label: str, value):
    """The field's control, read-only until the page-load refresh fills it (see `build`)."""
    field = S.model_fields[name]
    ann = field.annotation
    elem = f"setting_{name}"
    kw = {"elem_id": elem, "interactive": False}
    if ann is bool:
        return F.checkbox(S, name, label, value=value, **kw)
    if ann in (int, float):
        lo, hi = F.bounds(S, name)
        if lo is not None and hi is not None:
            step = 1 if ann is int else 0.5
            return F.slider(S, name, label, value=value, step=step, **kw)
        return F.number(S, name, label, value=value, **kw)
    if ann is ModelSet:
        return gr.Radio([m.value for m in ModelSet], value=getattr(value, "value", value), label=label,
                        info=field.description + " (restart to apply)", **kw)
    choices = typing.get_args(ann)
    if choices:
        return gr.Dropdown(list(choices), value=value, label=label, info=field.description, **kw)
    lines = 6 if name == "system_prompt_template" else 1
    return gr.Textbox(value=value, label=label, info=field.description, lines=lines, **kw)


def workers_note(services: Services) -> str:
    """The workers this process runs and the CPU memory their weights need (pool.slots_host_ram)."""
    slots = services.queue.slots()
    ram = slots_host_ram(slots, services.settings.current.gpu_memory_preservation)
    names = ", ".join(f"{s.name} ({s.label})" for s in slots)
    return f"Running now: {names}. The real models need {ram.describe()}."


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
            if section == "Workers":
                gr.Markdown(workers_note(services), elem_id="settings_workers_note")
    with gr.Row():
        save = gr.Button("💾 Save Settings", variant="primary", elem_id="settings_save")
        clean = gr.Button("🗑️ Clean Up Temporary Files", elem_id="settings_clean")
    msg = gr.Markdown("", elem_id="settings_msg")
    names = list(controls)
    comps = [controls[n] for n in names]
    # What this page last showed or saved, per browser session: Save writes only the fields changed since.
    shown = gr.State(None)

    def stored_values() -> dict:
        return holder.current.model_dump(mode="json")

    def as_json(settings: Settings) -> dict:
        return settings.model_dump(mode="json")

    def on_load():
        """Every page load shows the stored settings, not the values the UI was built with. The fields become
        editable only with this answer: an edit made before it would be overwritten by it (on a busy machine the
        answer can take seconds), so no edit can be made before it."""
        values = stored_values()
        return [gr.update(value=values[n], interactive=True) for n in names] + [values]

    # triggers=None with no inputs: runs on every page load (Blocks.load) without needing the Blocks object.
    gr.on(None, on_load, [], comps + [shown], api_visibility="private", show_progress="hidden")

    def on_save(baseline, *values):
        baseline = baseline or stored_values()
        form = as_json_values(values)
        changes = {n: v for n, v in form.items() if v != baseline.get(n)}
        try:
            settings = holder.apply(changes)  # merged and saved in one step: a concurrent auto-save is kept
        except ValidationError as exc:
            return not_saved(exc), baseline
        return f"✅ Settings saved to {holder.store.path.name}.", as_json(settings)

    def as_json_values(values) -> dict:
        """Form values in the stored settings' JSON form (a slider's 30.0 is CRF 30), so unchanged ones compare
        equal; an invalid value stays as it is (it is then reported)."""
        out = {}
        for n, v in zip(names, values):
            try:
                out[n] = as_json(holder.merged({n: v}))[n]
            except ValidationError:
                out[n] = v
        return out

    save.click(on_save, [shown] + comps, [msg, shown], api_visibility="private")

    def on_field(name: str):
        def handler(value, baseline):
            baseline = baseline or stored_values()
            try:
                settings = holder.merged({name: value})  # never the rest of a possibly stale form
            except ValidationError as exc:
                return not_saved(exc), baseline
            if as_json(settings) == stored_values():
                return gr.skip(), baseline  # e.g. the page load setting the stored value: nothing to write
            if not settings.auto_save_settings and not holder.current.auto_save_settings:
                return "Changed: press Save Settings to apply.", baseline  # auto-save off: Save applies it
            # Merged into the settings as they are now, in one step: two fields saved at once both stay.
            settings = holder.apply({name: value})
            return "✅ Auto-saved.", {**baseline, name: as_json(settings)[name]}
        return handler

    for n in names:
        comp = controls[n]
        if isinstance(comp, gr.Textbox):
            # Saved when the box is left, with the text it shows then: read from the element itself, since on
            # a busy machine the component's value can lag a fast edit by a frame, and the stale one was saved.
            # always_last: Gradio's default for blur ("once") drops a blur while the previous one's save still
            # runs, so a quick second edit of the same box was never saved.
            comp.blur(on_field(n), [comp, shown], [msg, shown], api_visibility="private", show_progress="hidden",
                      js=_SHOWN_TEXT_JS % {"id": comp.elem_id}, trigger_mode="always_last")
        else:
            comp.change(on_field(n), [comp, shown], [msg, shown], api_visibility="private", show_progress="hidden")

    def on_clean():
        # Uploads reach jobs as copies in their job folders, so both upload folders are safe to empty.
        n = clean_gradio_temp(services.gradio_temp_dir) + clean_gradio_temp(services.paths.api_uploads_dir)
        return f"Removed {n} temporary file(s) from {services.gradio_temp_dir} and API uploads."

    clean.click(on_clean, None, msg, api_visibility="private")
