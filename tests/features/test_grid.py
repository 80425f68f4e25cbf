"""Grid jobs: expansion and validation, the composed grid video (decoded), run_grid with a fake engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modules.framepack.outputs import OutputOptions
from modules.cancel import CancelledError, CancelToken
from modules.framepack.events import (
    DoneEvent, GenerationResult, SectionEvent, StageEvent, StepEvent,
)
from modules.framepack.grid import run_grid
from modules.framepack.grid_axes import GridError, expand_grid, parse_axis_values
from modules.framepack.metadata import params_from_metadata
from modules.framepack.sections import section_count
from modules.framepack.params import CacheType, GenerationParams, GenerationType, GridAxis, LoraSpec
from modules.media.grid_video import compose_grid_video, layout_grid
from modules.media.video_io import probe_video, read_comment, read_video, write_video


def grid_params(x: tuple[str, list], y: tuple[str, list] | None = None, **kw) -> GenerationParams:
    return GenerationParams(
        generation_type=GenerationType.GRID, prompt="a cat", width=64, height=64, total_seconds=1.0, steps=2,
        grid_x=GridAxis(parameter=x[0], values=x[1]),
        grid_y=GridAxis(parameter=y[0], values=y[1]) if y else None, **kw)


# --- expansion -------------------------------------------------------------------------------------------

def test_expand_two_axes_row_major_with_parsed_values():
    p = grid_params(("steps", [5, "10", 15.0]), ("seed", ["1", 2]), cfg=1.5)
    cells = expand_grid(p)
    assert [(c.x_index, c.y_index, c.x_value, c.y_value) for c in cells] == [
        (0, 0, 5, 1), (1, 0, 10, 1), (2, 0, 15, 1), (0, 1, 5, 2), (1, 1, 10, 2), (2, 1, 15, 2)]
    for c in cells:
        assert c.params.generation_type == GenerationType.ORIGINAL
        assert (c.params.steps, c.params.seed) == (c.x_value, c.y_value)
        assert c.params.grid_x is None and c.params.grid_y is None
        assert c.params.cfg == 1.5 and c.params.prompt == "a cat"  # the base job's other parameters


def test_cell_types_follow_grid_model_and_end_frame(tmp_path):
    end = tmp_path / "end.png"
    assert {c.params.generation_type for c in expand_grid(
        grid_params(("steps", [1, 2]), grid_model="F1"))} == {GenerationType.F1}
    cells = expand_grid(grid_params(("end_frame_strength", [0.5, "1"]), end_image=end))
    assert [c.params.generation_type for c in cells] == [GenerationType.ORIGINAL_ENDFRAME] * 2
    assert [c.params.end_frame_strength for c in cells] == [0.5, 1.0]


def test_lora_weight_and_teacache_axes():
    loras = [LoraSpec(name="a.safetensors", weight=1.0), LoraSpec(name="b.safetensors", weight=0.3)]
    cells = expand_grid(grid_params(("lora_weight", [0, 0.5, 2]), loras=loras, cache_type=CacheType.NONE))
    assert [[s.weight for s in c.params.loras] for c in cells] == [[0, 0], [0.5, 0.5], [2, 2]]
    assert [s.name for s in cells[0].params.loras] == ["a.safetensors", "b.safetensors"]
    cells = expand_grid(grid_params(("teacache_threshold", [0.1, 0.2]), cache_type=CacheType.NONE))
    assert [(c.params.cache_type, c.params.teacache_threshold) for c in cells] == [
        (CacheType.TEACACHE, 0.1), (CacheType.TEACACHE, 0.2)]
    cells = expand_grid(grid_params(("prompt", ["a dog", "[0s: a cat] [0.5s: a bird]"])))
    assert [c.params.prompt for c in cells] == ["a dog", "[0s: a cat] [0.5s: a bird]"]


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(x=("steps", ["abc"])), "grid_x (steps): value 'abc'"),
    (dict(x=("steps", [2.5])), "whole number"),
    (dict(x=("steps", [0, 5])), "grid cell grid_x=0: steps"),
    (dict(x=("seed", [1]), y=("distilled_cfg", [10, 40])), "grid_y=40: distilled_cfg"),
    (dict(x=("lora_weight", [0.5])), "no LoRA"),
    (dict(x=("lora_weight", [3.0]), loras=[LoraSpec(name="a.safetensors")]), "loras.0.weight"),
    (dict(x=("end_frame_strength", [0.5])), "no end frame"),
    (dict(x=("steps", [5, "5"])), "repeated value(s) 5"),
    (dict(x=("steps", [5]), y=("steps", [6])), "same parameter"),
    (dict(x=("prompt", ["[1s: a"])), "never closed"),
    (dict(x=("prompt", ["  "])), "empty prompt"),
    (dict(x=("seed", list(range(9))), y=("steps", list(range(1, 9)))), "at most 64"),
])
def test_invalid_grids_name_axis_and_value(kwargs, fragment):
    x, y = kwargs.pop("x"), kwargs.pop("y", None)
    with pytest.raises(GridError) as info:
        expand_grid(grid_params(x, y, **kwargs))
    assert fragment in str(info.value)


def test_parse_axis_values_from_text():
    assert parse_axis_values("steps", "10, 20 30;40") == [10, 20, 30, 40]
    assert parse_axis_values("distilled_cfg", "1.5,10") == [1.5, 10.0]
    assert parse_axis_values("prompt", "a cat, sitting\n\n a dog ") == ["a cat, sitting", "a dog"]
    with pytest.raises(ValueError):
        parse_axis_values("seed", "1, x")


# --- composition -----------------------------------------------------------------------------------------

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def _cell_video(path: Path, colour, n: int, h: int = 48, w: int = 64) -> Path:
    # Brightness ramps with the frame index, so "held last frame" is visible after decoding.
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i] = np.clip(np.array(colour) * (0.5 + 0.5 * i / max(1, n - 1)), 0, 255)
    return write_video(path, frames, fps=30, crf=1)


def _tile_mean(frame: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    return frame[y + 4:y + h - 4, x + 4:x + w - 4].reshape(-1, 3).mean(0)


def test_compose_grid_places_tiles_labels_and_holds_last_frame(tmp_path):
    lengths = [6, 10, 8, 10]
    vids = [_cell_video(tmp_path / f"c{i}.mp4", COLOURS[i], lengths[i]) for i in range(4)]
    out = compose_grid_video([[vids[0], vids[1]], [vids[2], vids[3]]], "Steps", ["5", "10"], "Seed", ["1", "2"],
                             tmp_path / "grid.mp4", fps=30, crf=4)
    frames, fps = read_video(out)
    layout = layout_grid(2, 2, 64, 48, "Steps", ["5", "10"], "Seed", ["1", "2"])
    assert fps == 30 and frames.shape == (10, layout.height, layout.width, 3)
    assert layout.width == layout.label_w + 2 * 64 and layout.label_w >= 64
    assert layout.height == layout.header_h + 2 * (48 + layout.caption_h)
    for i, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        box = layout.tile_box(r, c)
        for t in (0, lengths[i] - 1):
            expected = np.array(COLOURS[i]) * (0.5 + 0.5 * t / (lengths[i] - 1))
            assert np.abs(_tile_mean(frames[t], box) - expected).max() < 8, (i, t)
        if lengths[i] < 10:  # held: every later frame equals the last one
            last = _tile_mean(frames[lengths[i] - 1], box)
            assert np.abs(_tile_mean(frames[9], box) - last).max() < 3
    # Labels: text pixels in the header, the row-label column and each caption strip; background elsewhere.
    f = frames[0].astype(int)
    assert (f[:layout.header_h, layout.label_w:] > 150).any()
    assert (f[layout.header_h:, :layout.label_w - 4] > 150).any()
    for r in range(2):
        for c in range(2):
            x, y, w, h = layout.tile_box(r, c)
            assert (f[y + h + 1:y + h + layout.caption_h - 1, x:x + w] > 150).any(), (r, c)
    assert f[:layout.header_h, :layout.label_w - 4].max() < 60  # empty corner stays background


def test_compose_single_row_without_y(tmp_path):
    vids = [_cell_video(tmp_path / f"c{i}.mp4", COLOURS[i], 4) for i in range(3)]
    out = compose_grid_video([vids], "Prompt", ["a very long prompt about a cat in the rain", "b", "c"],
                             None, None, tmp_path / "row.mp4", fps=30, crf=10)
    info = probe_video(out)
    layout = layout_grid(1, 3, 64, 48, "Prompt", ["a very long prompt about a cat in the rain", "b", "c"],
                         None, None)
    assert (info.width, info.height, info.frames) == (3 * 64, layout.height, 4) and layout.label_w == 0
    with pytest.raises(ValueError, match="do not match"):
        compose_grid_video([vids], "X", ["1", "2"], None, None, tmp_path / "bad.mp4", fps=30, crf=10)


# --- run_grid with a fake engine -------------------------------------------------------------------------

class FakeEngine:
    """Writes a small solid-colour video per job (colour from steps and seed) and yields engine events."""

    def __init__(self, cancel_after: int | None = None, cancel: CancelToken | None = None) -> None:
        self.calls: list[GenerationParams] = []
        self.cancel_after, self.cancel = cancel_after, cancel

    @staticmethod
    def colour(p: GenerationParams) -> tuple[int, int, int]:
        return (min(255, p.steps * 20), (p.seed * 70) % 256, 90)

    def generate(self, params, out, cancel):
        self.calls.append(params)
        if self.cancel_after is not None and len(self.calls) > self.cancel_after:
            self.cancel.cancel()
        sections = section_count(params.total_seconds, params.latent_window_size)
        yield StageEvent("Loading models")
        for s in range(sections):
            for step in range(1, params.steps + 1):
                cancel.raise_if_cancelled()
                yield StepEvent(s, sections, step, params.steps, None)
            yield SectionEvent(s, sections, 4 * (s + 1))
        n = int(params.total_seconds * 8)
        frames = np.zeros((n, 32, 48, 3), np.uint8)
        frames[:] = self.colour(params)
        path = write_video(Path(out.output_dir) / f"{out.name}.mp4", frames, fps=30, crf=1)
        meta = None
        if out.save_metadata:
            meta = Path(out.output_dir) / f"{out.name}.json"
            meta.write_text(json.dumps({"params": params.model_dump(mode="json")}))
        yield DoneEvent(GenerationResult(video=path, metadata=meta, thumbnail=None, frames=n, fps=30,
                                         width=48, height=32, seed=params.seed, skipped_steps=1))


def _out(tmp_path: Path, **kw) -> OutputOptions:
    return OutputOptions(output_dir=tmp_path / "outputs", work_dir=tmp_path / "work", crf=4, save_metadata=True,
                         cleanup_videos=True, **kw)


def test_run_grid_with_fake_engine(tmp_path):
    p = grid_params(("steps", [2, 4]), ("total_seconds", [1, 2]), seed=3)
    engine = FakeEngine()
    events = list(run_grid(engine, p, _out(tmp_path, name="my grid"), CancelToken()))
    assert len(engine.calls) == 4 and [c.steps for c in engine.calls] == [2, 4, 2, 4]

    steps = [e for e in events if isinstance(e, StepEvent)]
    # Cells of 1 s have 1 section, of 2 s 2 (latent window 9): the grid reads as one job of 6 sections.
    assert {e.total_sections for e in steps} == {6}
    assert [e.section for e in events if isinstance(e, SectionEvent)] == list(range(6))
    assert [e.step for e in steps[:6]] == [1, 2, 1, 2, 3, 4]
    assert sum(1 for e in events if isinstance(e, StageEvent) and e.message.startswith("Grid cell")) == 4

    done = events[-1]
    assert isinstance(done, DoneEvent)
    res = done.result
    assert res.video == tmp_path / "outputs" / "my_grid.mp4" and res.video.is_file()
    assert res.skipped_steps == 4 and res.thumbnail.is_file()
    frames, _ = read_video(res.video)
    assert frames.shape[0] == 16 == res.frames  # longest cell: 2 s * 8 frames
    layout = layout_grid(2, 2, 48, 32, "Steps", ["2", "4"], "Length (s)", ["1", "2"])
    assert frames.shape[1:3] == (layout.height, layout.width) == (res.height, res.width)
    for cell_params, (r, c) in zip(engine.calls, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        mean = _tile_mean(frames[-1], layout.tile_box(r, c))
        assert np.abs(mean - np.array(FakeEngine.colour(cell_params))).max() < 8

    cells_dir = tmp_path / "outputs" / "my_grid_cells"
    assert sorted(f.name for f in cells_dir.glob("*.mp4")) == [
        "my_grid_x0_y0.mp4", "my_grid_x0_y1.mp4", "my_grid_x1_y0.mp4", "my_grid_x1_y1.mp4"]
    assert all(f in res.extra_files for f in cells_dir.glob("*.mp4"))

    meta = json.loads(res.metadata.read_text())
    assert res.metadata == tmp_path / "outputs" / "my_grid.json"
    assert meta["derived"]["grid"]["x"] == {"parameter": "steps", "values": [2, 4]}
    assert meta["derived"]["grid"]["y"] == {"parameter": "total_seconds", "values": [1.0, 2.0]}
    assert [(c["x_value"], c["y_value"], c["frames"]) for c in meta["derived"]["grid"]["cells"]] == [
        (2, 1.0, 8), (4, 1.0, 8), (2, 2.0, 16), (4, 2.0, 16)]
    assert [(c["x_index"], c["y_index"]) for c in meta["run"]["cells"]] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    stats = res.info["stats"]
    assert stats["cells_dir"] == "my_grid_cells" and len(stats["cell_files"]) == 4
    assert params_from_metadata(meta) == p  # Upload Metadata restores the Grid job
    assert json.loads(read_comment(res.video))["derived"]["grid"]["x"]["values"] == [2, 4]


def test_run_grid_cancel_then_resume_skips_finished_cells(tmp_path):
    p = grid_params(("seed", [1, 2, 3]))
    token = CancelToken()
    engine = FakeEngine(cancel_after=1, cancel=token)  # cancelled during the second cell
    with pytest.raises(CancelledError):
        list(run_grid(engine, p, _out(tmp_path), token))
    outputs = tmp_path / "outputs"
    assert not list(outputs.glob("*.mp4"))  # no grid video under a final name

    engine2 = FakeEngine()
    events = list(run_grid(engine2, p, _out(tmp_path), CancelToken()))
    assert [c.seed for c in engine2.calls] == [2, 3]  # cell 1 was finished before the cancel
    assert any(isinstance(e, StageEvent) and "already done" in e.message for e in events)
    res = events[-1].result
    assert res.video.parent == outputs and res.video.name.startswith("grid_")
    assert probe_video(res.video).frames == 8


def test_a_cell_out_of_range_is_refused_by_the_input_checker(tmp_path):
    """Every cell is validated when the Grid job is checked (at add time), naming the cell and the field."""
    from modules.framepack.inputs import InputError, check_inputs

    for axis, values, needle in (("grid_x", {"parameter": "steps", "values": [2, 500]}, "steps"),
                                 ("grid_y", {"parameter": "distilled_cfg", "values": [5, 100]}, "distilled_cfg")):
        grid = {"grid_x": {"parameter": "seed", "values": [1, 2]}, axis: values}
        with pytest.raises(InputError) as err:
            check_inputs(GenerationParams(generation_type="Grid", prompt="x", **grid))
        message = err.value.fields["grid_x"]
        assert "grid cell" in message and needle in message and ("500" in message or "100" in message)
    check_inputs(GenerationParams(generation_type="Grid", prompt="x", grid_x={"parameter": "steps",
                                                                              "values": [2, 4]}))
