"""Post-processing tab: input/processed players, chaining, saving, housekeeping and one sub-tab per operation.

Operations come from modules/postprocess (each: input video + options -> output video, with progress and
a cancel token). Control ranges and defaults come from those modules' pydantic option models; the network
operations' models come from the torch-free network_options.py, and upscale / interpolation (torch, spandrel)
are imported when they first run, so building the tab loads neither.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import threading
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr
from pydantic import ValidationError

from modules.cancel import CancelledError, CancelToken
from modules.postprocess.common import PostProcessError
from modules.postprocess.export import ExportOptions, export_video
from modules.postprocess.filters import FilterOptions, FilterSettings, apply_filters
from modules.postprocess.frames import ExtractOptions, ReassembleOptions, extract_frames, reassemble_frames
from modules.postprocess.housekeeping import clear_folder, save_to_folder, unique_path
from modules.postprocess.join import JoinOptions, join_videos
from modules.postprocess.network_options import UPSCALE_MODELS, InterpolateOptions, UpscaleOptions
from modules.postprocess.presets import PresetStore as FilterPresets
from modules.postprocess.timing import (LoopOptions, ReverseOptions, SpeedOptions, TrimOptions, change_speed,
                                        loop_video, reverse_video, trim_video)
from modules.media.video_io import VideoError
from modules.errors import format_errors
from studio.ui import fields as F
from studio.ui.services import Services
from studio.ui.uploads import UploadError, check_video, file_path

if TYPE_CHECKING:
    from modules.postprocess.weights import WeightSource

log = logging.getLogger(__name__)

RIFE_OFF = "No interpolation"
RIFE_CHOICES = [RIFE_OFF] + [f"{f}x RIFE Interpolation" for f in typing.get_args(
    InterpolateOptions.model_fields["factor"].annotation)]
TILE_CHOICES = list(typing.get_args(UpscaleOptions.model_fields["tile"].annotation))

# Per-session cancel tokens for the running operation (tokens hold a threading.Event: not gr.State material).
_tokens: dict[str, CancelToken] = {}
_tokens_lock = threading.Lock()


def _token(request: gr.Request | None) -> CancelToken:
    key = getattr(request, "session_hash", None) or "default"
    with _tokens_lock:
        tok = CancelToken()
        _tokens[key] = tok
        return tok


def _cancel(request: gr.Request | None) -> None:
    key = getattr(request, "session_hash", None) or "default"
    with _tokens_lock:
        tok = _tokens.get(key)
    if tok is not None:
        tok.cancel()


def upscale_models() -> dict[str, int]:
    """Model name -> output scale, from the upscale module's table."""
    return {name: m.scale for name, m in UPSCALE_MODELS.items()}


def weight_store(services: Services) -> WeightSource:
    """Where post-processing weights come from: the cached files (the folder the `post` CLI uses), or the tiny
    networks when the `models` setting (`--models tiny`) says so."""
    # Imported here: weights.py loads torch, which only an upscale or interpolation needs, not the tab.
    from modules.postprocess.tiny import weight_source

    return weight_source(services.paths.postprocess_weights_dir, services.settings.current.models)


OPS = ("upscale", "filters", "adjust", "loop", "trim", "reverse", "join", "export", "reassembled")
_OP_SUFFIX = re.compile(r"_(?:%s)_" % "|".join(OPS))


class PostRunner:
    """Runs one operation into the temp folder; autosave copies the result to the permanent folder."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def crf(self) -> int:
        return self.services.settings.current.mp4_crf

    def output(self, input_path: Path, op: str, suffix: str = ".mp4") -> Path:
        # Chained operations keep the original name plus the latest operation, not a growing chain.
        base = _OP_SUFFIX.split(input_path.stem, maxsplit=1)[0][:40]
        return unique_path(self.services.post_temp_dir, f"{base}_{op}", suffix)

    def finish(self, out: Path, autosave: bool) -> tuple[str, str]:
        msg = f"✅ {out.name} ready."
        if autosave:
            saved = save_to_folder(out, self.services.post_output_dir)
            msg += f" Saved to {saved.parent.name}/{saved.name}."
        return str(out), msg


def _input(value) -> Path:
    path = file_path(value)
    if path is None:
        raise UploadError("Upload a video (or send one from Outputs) first")
    return check_video(path, "Input video")


def _progress_cb(progress: gr.Progress) -> Callable:
    def cb(p) -> None:
        try:
            progress(p.fraction, desc=f"{p.stage} {p.done}/{p.total}")
        except Exception:  # progress is cosmetic
            pass
    return cb


@dataclass
class _Wiring:
    """The components every panel's run button reads or writes, and how a run button becomes a handler."""

    services: Services
    runner: PostRunner
    in_video: gr.Video
    out_video: gr.Video
    autosave: gr.Checkbox
    status: gr.Markdown

    def handler(self, op: str, fn: Callable[..., Path], suffix: str = ".mp4") -> Callable:
        runner = self.runner

        # Gradio injects request/progress only into leading positional parameters, hence this order.
        def handler(request: gr.Request, progress=gr.Progress(), *args):
            value, auto, args = args[0], args[1], args[2:]
            try:
                src = _input(value)
                out = runner.output(src, op, suffix)
                token = _token(request)
                result = fn(src, out, *args, cb=_progress_cb(progress), cancel=token)
                return runner.finish(Path(result), bool(auto))
            except CancelledError:
                return gr.update(), "Stopped."
            except (UploadError, PostProcessError, VideoError, ValueError) as exc:
                msg = "; ".join(format_errors(exc)) if isinstance(exc, ValidationError) else str(exc)
                gr.Warning(msg[:300])
                return gr.update(), f"⚠️ {msg}"
        return handler

    def run_button(self, button: gr.Button, op: str, fn: Callable[..., Path], inputs: list) -> None:
        """Input video -> `fn` -> processed player, with autosave."""
        button.click(self.handler(op, fn), [self.in_video, self.autosave, *inputs], [self.out_video, self.status],
                     api_visibility="private")


def build(services: Services) -> gr.Video:
    """Renders the tab; returns its input video, which the Outputs tab's "Send to Post-processing" sets."""
    runner = PostRunner(services)
    w, toolbar = _players(services, runner)
    with gr.Tabs(elem_id="post_ops", overflow_behavior="wrap"):
        with gr.Tab("📈 Upscale Video (ESRGAN)", id="upscale"):
            _upscale_panel(w)
        with gr.Tab("🎨 Video Filters (FFmpeg)", id="filters"):
            _filters_panel(w)
        with gr.Tab("🎞️ Frame Adjust (Speed & Interpolation)", id="frames_adjust"):
            _adjust_panel(w)
        with gr.Tab("🔄 Video Loop", id="loop"):
            _loop_panel(w)
        with gr.Tab("✂️ Trim / Reverse / Join", id="edit"):
            _edit_panel(w)
        with gr.Tab("🖼️ Frames I/O", id="frames_io"):
            _frames_panel(w)
        with gr.Tab("📤 Export", id="export"):
            _export_panel(w)
    _wire_toolbar(w, toolbar)
    return w.in_video


@dataclass
class _Toolbar:
    use_processed: gr.Button
    save: gr.Button
    stop: gr.Button
    unload: gr.Button
    open_folder: gr.Button
    clear: gr.Button
    saved_files: gr.File


def _players(services: Services, runner: PostRunner) -> tuple[_Wiring, _Toolbar]:
    """Input/processed players, the chaining/saving/housekeeping buttons and the status line."""
    settings = services.settings.current
    with gr.Row(equal_height=False):
        with gr.Column():
            in_video = gr.Video(label="Upload Video (input)", sources=["upload"], elem_id="post_input", height=300)
        with gr.Column():
            out_video = gr.Video(label="Processed Video", interactive=False, elem_id="post_output", height=300)
    with gr.Row():
        use_processed = gr.Button("🔄 Use Processed as Input", elem_id="post_use_processed", size="sm")
        autosave = gr.Checkbox(value=settings.postprocess_autosave, label="Autosave",
                               info=settings.model_fields["postprocess_autosave"].description,
                               elem_id="post_autosave")
        save_btn = gr.Button("💾 Save to Permanent Folder", elem_id="post_save", size="sm",
                             visible=not settings.postprocess_autosave)
        stop_btn = gr.Button("⏹️ Stop operation", elem_id="post_stop", size="sm", variant="stop")
    with gr.Row():
        unload_btn = gr.Button("📤 Unload Studio Model", elem_id="post_unload", size="sm")
        open_btn = gr.Button("📁 Open Output Folder", elem_id="post_open", size="sm")
        clear_btn = gr.Button("🗑️ Clear Temporary Files", elem_id="post_clear", size="sm")
    status = gr.Markdown("", elem_id="post_status")
    saved_files = gr.File(label="Saved files (download)", file_count="multiple", interactive=False, visible=False,
                          elem_id="post_saved_files")
    wiring = _Wiring(services, runner, in_video, out_video, autosave, status)
    return wiring, _Toolbar(use_processed, save_btn, stop_btn, unload_btn, open_btn, clear_btn, saved_files)


def _upscale_panel(w: _Wiring) -> None:
    models = upscale_models()
    first = F.default(UpscaleOptions, "model")
    with gr.Row():
        up_model = gr.Dropdown([(f"{n} — {UPSCALE_MODELS[n].description}", n) for n in models], value=first,
                               label="ESRGAN Model", elem_id="up_model")
        up_scale = gr.Markdown(_scale_text(models, first), elem_id="up_scale")
    with gr.Row():
        up_tile = gr.Dropdown(TILE_CHOICES, value=F.default(UpscaleOptions, "tile"), label="Tile Size",
                              info=UpscaleOptions.model_fields["tile"].description, elem_id="up_tile")
        up_denoise = F.slider(UpscaleOptions, "denoise_strength", "Denoise strength", step=0.05,
                              elem_id="up_denoise", visible=len(UPSCALE_MODELS[first].weights) > 1)
        up_faces = F.checkbox(UpscaleOptions, "face_enhance", "Enhance Faces (GFPGAN)", elem_id="up_faces")
    up_run = gr.Button("Upscale", variant="primary", elem_id="up_run")

    def op_upscale(src, out, model, tile, denoise, faces, *, cb, cancel):
        from modules.postprocess.upscale import upscale_video  # torch and spandrel load on the first run only

        opts = UpscaleOptions(model=model, tile=tile, denoise_strength=float(denoise), face_enhance=bool(faces),
                              crf=w.runner.crf())
        return upscale_video(src, opts, out, cb, cancel, weights=weight_store(w.services))

    w.run_button(up_run, "upscale", op_upscale, [up_model, up_tile, up_denoise, up_faces])

    def on_model(name):
        m = UPSCALE_MODELS[name]
        return _scale_text(upscale_models(), name), gr.update(visible=len(m.weights) > 1)

    up_model.change(on_model, up_model, [up_scale, up_denoise], api_visibility="private")


def _filters_panel(w: _Wiring) -> None:
    filter_presets = FilterPresets(w.services.presets_dir)
    with gr.Row():
        preset_sel = gr.Dropdown(filter_presets.names(), value="none", label="Load Preset", elem_id="filter_preset")
        preset_name = gr.Textbox(label="Preset Name", elem_id="filter_preset_name")
        preset_save = gr.Button("💾 Save/Update", elem_id="filter_preset_save", size="sm")
        preset_del = gr.Button("🗑️ Delete", elem_id="filter_preset_delete", size="sm")
    sliders: dict[str, gr.Slider] = {}
    groups = {"Color": ("brightness", "contrast", "saturation", "temperature"),
              "Clarity": ("sharpen", "blur", "denoise"),
              "Artistic Effects": ("vignette", "s_curve", "film_grain")}
    for title, names_ in groups.items():
        gr.Markdown(f"**{title}**")
        with gr.Row():
            for n in names_:
                sliders[n] = F.slider(FilterSettings, n, n.replace("_", " ").title(), elem_id=f"filter_{n}")
    missing = set(FilterSettings.model_fields) - set(sliders)
    for n in sorted(missing):  # any filter the module adds later still gets a control
        sliders[n] = F.slider(FilterSettings, n, elem_id=f"filter_{n}")
    filter_run = gr.Button("Apply Filters", variant="primary", elem_id="filter_run")

    def op_filters(src, out, *vals, cb, cancel):
        s = FilterSettings(**dict(zip(sliders.keys(), vals)))
        return apply_filters(src, FilterOptions(settings=s, crf=w.runner.crf()), out, cb, cancel)

    w.run_button(filter_run, "filters", op_filters, list(sliders.values()))

    def on_preset(name):
        try:
            s = filter_presets.load(name)
        except PostProcessError as exc:
            return [gr.update() for _ in sliders] + [f"⚠️ {exc}", gr.update()]
        return [gr.update(value=getattr(s, k)) for k in sliders] + [f"Loaded preset **{name}**.", name]

    preset_sel.input(on_preset, preset_sel, [*sliders.values(), w.status, preset_name], api_visibility="private")

    def on_preset_save(name, *vals):
        try:
            s = FilterSettings(**dict(zip(sliders.keys(), vals)))
            filter_presets.save((name or "").strip(), s)
        except (PostProcessError, ValidationError) as exc:
            return gr.update(), f"⚠️ {exc}"
        return gr.update(choices=filter_presets.names(), value=name.strip()), f"Saved preset **{name.strip()}**."

    preset_save.click(on_preset_save, [preset_name, *sliders.values()], [preset_sel, w.status],
                      api_visibility="private")

    def on_preset_delete(name):
        try:
            filter_presets.delete(name)
        except PostProcessError as exc:
            return gr.update(), f"⚠️ {exc}"
        return gr.update(choices=filter_presets.names(), value="none"), f"Deleted preset **{name}**."

    preset_del.click(on_preset_delete, preset_sel, [preset_sel, w.status], api_visibility="private")


def _adjust_panel(w: _Wiring) -> None:
    rife = gr.Radio(RIFE_CHOICES, value=RIFE_OFF, label="RIFE Frame Interpolation", elem_id="rife_mode")
    speed = F.slider(SpeedOptions, "factor", "Adjust Video Speed Factor", elem_id="speed_factor")
    adjust_run = gr.Button("Apply", variant="primary", elem_id="adjust_run")

    def op_adjust(src, out, mode, factor, *, cb, cancel):
        current = src
        if mode != RIFE_OFF:
            from modules.postprocess.interpolate import interpolate_video  # torch loads on the first run only

            opts = InterpolateOptions(factor=int(mode.split("x", 1)[0]), crf=w.runner.crf())
            tmp = out.with_name(out.stem + "_rife.mp4") if float(factor) != 1.0 else out
            current = Path(interpolate_video(current, opts, tmp, cb, cancel, weights=weight_store(w.services)))
        if float(factor) != 1.0:
            current = change_speed(current, SpeedOptions(factor=float(factor), crf=w.runner.crf()), out, cb, cancel)
        elif current == src:
            raise PostProcessError("Nothing to do: choose RIFE interpolation or a speed other than 1.0")
        return current

    w.run_button(adjust_run, "adjust", op_adjust, [rife, speed])


def _loop_panel(w: _Wiring) -> None:
    loop_mode = gr.Radio(["loop", "ping-pong"], value="loop", label="Loop Type", elem_id="loop_mode")
    loop_n = F.slider(LoopOptions, "repeats", "Number of Loops", elem_id="loop_repeats")
    loop_run = gr.Button("Create Loop", variant="primary", elem_id="loop_run")

    def op_loop(src, out, mode, repeats, *, cb, cancel):
        return loop_video(src, LoopOptions(mode="pingpong" if mode == "ping-pong" else "loop", repeats=int(repeats),
                                           crf=w.runner.crf()), out, cb, cancel)

    w.run_button(loop_run, "loop", op_loop, [loop_mode, loop_n])


def _edit_panel(w: _Wiring) -> None:
    """Trim, reverse and join."""
    with gr.Row():
        trim_start = F.number(TrimOptions, "start", "Trim start (s)", elem_id="trim_start")
        trim_end = gr.Number(None, label="Trim end (s; empty or 0 = to the end)", elem_id="trim_end")
        trim_run = gr.Button("✂️ Trim", elem_id="trim_run")
    reverse_run = gr.Button("⏪ Reverse", elem_id="reverse_run")
    join_files = gr.File(label="Videos to append after the input (join)", file_count="multiple",
                         file_types=["video"], elem_id="join_files")
    join_run = gr.Button("🔗 Join", elem_id="join_run")

    def op_trim(src, out, start, end, *, cb, cancel):
        return trim_video(src, TrimOptions(start=float(start or 0), end=float(end) if end else None,
                                           crf=w.runner.crf()), out, cb, cancel)

    w.run_button(trim_run, "trim", op_trim, [trim_start, trim_end])

    def op_reverse(src, out, *, cb, cancel):
        return reverse_video(src, ReverseOptions(crf=w.runner.crf()), out, cb, cancel)

    w.run_button(reverse_run, "reverse", op_reverse, [])

    def op_join(src, out, files, *, cb, cancel):
        others = [check_video(file_path(f), "Join video") for f in (files or [])]
        if not others:
            raise PostProcessError("Add at least one more video to join after the input")
        return join_videos([src, *others], JoinOptions(crf=w.runner.crf()), out, cb, cancel)

    w.run_button(join_run, "join", op_join, [join_files])


def _frames_panel(w: _Wiring) -> None:
    """Extract frames to a folder; reassemble a folder or uploaded images into a video."""
    with gr.Row():
        every_n = F.slider(ExtractOptions, "every_nth", "Extract every Nth frame", elem_id="extract_n")
        img_fmt = gr.Radio(["png", "jpg"], value=F.default(ExtractOptions, "image_format"),
                           label="Image format", elem_id="extract_fmt")
        extract_run = gr.Button("Extract Frames", elem_id="extract_run")
    with gr.Row():
        frame_folder = gr.Dropdown([], label="Extracted folder to reassemble", elem_id="reassemble_folder",
                                   allow_custom_value=False)
        folder_refresh = gr.Button("🔄", size="sm", elem_id="reassemble_refresh", scale=0)
    frame_uploads = gr.File(label="…or upload frames", file_count="multiple", file_types=["image"],
                            elem_id="reassemble_uploads")
    with gr.Row():
        re_fps = F.slider(ReassembleOptions, "fps", "Output fps", step=1, elem_id="reassemble_fps")
        reassemble_run = gr.Button("Reassemble Frames", elem_id="reassemble_run")

    services, runner, status = w.services, w.runner, w.status
    frames_root = lambda: services.post_temp_dir / "frames"  # noqa: E731

    def folders():
        root = frames_root()
        return sorted((p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      reverse=True) if root.is_dir() else []

    def on_extract(value, n, fmt, request: gr.Request = None, progress=gr.Progress()):
        try:
            src = _input(value)
            folder = extract_frames(src, ExtractOptions(every_nth=int(n), image_format=fmt), frames_root(),
                                    _progress_cb(progress), _token(request))
        except CancelledError:
            return gr.update(), "Stopped."
        except (UploadError, PostProcessError, VideoError, ValueError) as exc:
            return gr.update(), f"⚠️ {exc}"
        count = sum(1 for _ in folder.iterdir())
        return gr.update(choices=folders(), value=folder.name), f"✅ Extracted {count} frame(s) into {folder.name}."

    extract_run.click(on_extract, [w.in_video, every_n, img_fmt], [frame_folder, status], api_visibility="private")
    folder_refresh.click(lambda: gr.update(choices=folders()), None, frame_folder, api_visibility="private")

    def on_reassemble(folder_name, uploads, fps, auto, request: gr.Request = None, progress=gr.Progress()):
        try:
            files = [file_path(f) for f in (uploads or [])]
            if files:
                source: Any = files
                stem = "frames"
            elif folder_name:
                source = (frames_root() / Path(folder_name).name)  # a name from the list, never a path
                stem = source.name
            else:
                raise PostProcessError("Choose an extracted folder or upload frames")
            out = unique_path(services.post_temp_dir, f"{stem}_reassembled", ".mp4")
            result = reassemble_frames(source, ReassembleOptions(fps=float(fps), crf=runner.crf()), out,
                                       _progress_cb(progress), _token(request))
            return runner.finish(Path(result), bool(auto))
        except CancelledError:
            return gr.update(), "Stopped."
        except (PostProcessError, VideoError, ValueError) as exc:
            return gr.update(), f"⚠️ {exc}"

    reassemble_run.click(on_reassemble, [frame_folder, frame_uploads, re_fps, w.autosave], [w.out_video, status],
                         api_visibility="private")


def _export_panel(w: _Wiring) -> None:
    """Export to a downloadable file (not the processed player)."""
    with gr.Row():
        ex_fmt = gr.Radio(["mp4", "webm", "gif"], value=F.default(ExportOptions, "format"), label="Format",
                          elem_id="export_format")
        ex_quality = F.slider(ExportOptions, "quality", "Quality", elem_id="export_quality")
        ex_width = gr.Number(None, label="Max width (empty = keep)", precision=0, elem_id="export_width")
    ex_run = gr.Button("Export", variant="primary", elem_id="export_run")
    ex_file = gr.File(label="Exported file", interactive=False, elem_id="export_file")
    runner = w.runner

    def on_export(value, fmt, quality, width, request: gr.Request = None, progress=gr.Progress()):
        try:
            src = _input(value)
            opts = ExportOptions(format=fmt, quality=int(quality), max_width=int(width) if width else None)
            out = runner.output(src, "export", f".{fmt}")
            result = export_video(src, opts, out, _progress_cb(progress), _token(request))
        except CancelledError:
            return gr.update(), "Stopped."
        except (UploadError, PostProcessError, VideoError, ValueError) as exc:
            msg = "; ".join(format_errors(exc)) if isinstance(exc, ValidationError) else str(exc)
            return gr.update(), f"⚠️ {msg}"
        return str(result), f"✅ Exported {Path(result).name}."

    ex_run.click(on_export, [w.in_video, ex_fmt, ex_quality, ex_width], [ex_file, w.status],
                 api_visibility="private")


def _wire_toolbar(w: _Wiring, t: _Toolbar) -> None:
    """Chaining, saving, stopping and housekeeping."""
    services, status = w.services, w.status

    def on_use(value):
        path = file_path(value)
        if path is None:
            return gr.update(), "⚠️ Nothing processed yet."
        return str(path), "Processed video is now the input."

    t.use_processed.click(on_use, w.out_video, [w.in_video, status], api_visibility="private")
    w.autosave.change(lambda a: gr.update(visible=not a), w.autosave, t.save, api_visibility="private")

    def on_save(value):
        path = file_path(value)
        if path is None:
            return "⚠️ Nothing processed yet."
        saved = save_to_folder(path, services.post_output_dir)
        return f"💾 Saved {saved.name} to {saved.parent}."

    t.save.click(on_save, w.out_video, status, api_visibility="private")
    t.stop.click(_cancel, None, None, api_visibility="private")

    def on_unload() -> str:
        captioner = services.captioner.unload()
        if services.queue.unload_models():
            return "Studio model unloaded."
        if captioner:
            return "Captioner unloaded; the studio model stays: a job is running."
        return "Nothing unloaded: a job is running (or no studio model is loaded)."

    t.unload.click(on_unload, None, status, api_visibility="private")

    def on_open(request: gr.Request = None):
        folder = services.post_output_dir
        files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime, reverse=True)[:200]
        opened = _is_local(request) and _open_folder(folder)
        text = (f"Opened {folder}." if opened else f"{len(files)} saved file(s) in {folder} (download below).")
        return text, gr.update(value=[str(p) for p in files] or None, visible=bool(files))

    t.open_folder.click(on_open, None, [status, t.saved_files], api_visibility="private")

    def on_clear():
        n = clear_folder(services.post_temp_dir)
        return f"🗑️ Removed {n} temporary item(s)."

    t.clear.click(on_clear, None, status, api_visibility="private")


def _scale_text(models: dict, name: str) -> str:
    scale = models.get(name)
    return f"Output scale: **{scale}x**" if isinstance(scale, (int, float)) else "Output scale: -"


def _is_local(request: gr.Request | None) -> bool:
    host = getattr(getattr(request, "client", None), "host", None)
    in_docker = Path("/.dockerenv").exists()
    return host in ("127.0.0.1", "::1", "localhost") and not in_docker and bool(
        os.environ.get("DISPLAY") or platform.system() in ("Windows", "Darwin"))


def _open_folder(folder: Path) -> bool:
    try:
        if platform.system() == "Windows":
            os.startfile(folder)  # type: ignore[attr-defined]
        elif platform.system() == "Darwin":
            subprocess.Popen(["open", str(folder)])
        elif shutil.which("xdg-open"):
            subprocess.Popen(["xdg-open", str(folder)])
        else:
            return False
        return True
    except OSError:
        return False
