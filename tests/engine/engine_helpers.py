"""Helpers shared by the engine tests (a uniquely named module: tests have no packages)."""

from __future__ import annotations

from pathlib import Path

from modules.framepack.engine import Engine
from modules.framepack.events import DoneEvent
from modules.framepack.outputs import OutputOptions
from modules.framepack.params import GenerationParams
from modules.models.manager import ModelManager

GOLDEN_PROMPT = "The girl dances gracefully, with clear movements, full of charm."
GOLDEN_TYPES = {"original": "Original", "f1": "F1", "original_endframe": "Original with Endframe"}


def golden_params(golden_dir: Path, case: str, **overrides) -> GenerationParams:
    data = dict(
        generation_type=GOLDEN_TYPES[case], prompt=GOLDEN_PROMPT, negative_prompt="", seed=31337, width=64,
        height=64, total_seconds=2.0, latent_window_size=3, steps=4, cfg=1.0, distilled_cfg=10.0,
        cfg_rescale=0.0, cache_type="None", start_image=golden_dir / "start_image_64x64.png",
        end_image=golden_dir / "end_image_64x64.png" if case == "original_endframe" else None)
    data.update(overrides)
    return GenerationParams(**data)


def output_options(root: Path, **kw) -> OutputOptions:
    base = dict(output_dir=root / "out", work_dir=root / "work", crf=16, save_metadata=True, cleanup_videos=True)
    base.update(kw)
    return OutputOptions(**base)


def run_engine(manager: ModelManager, params: GenerationParams, out: OutputOptions, trace: bool = False,
               cancel=None) -> tuple[dict | None, list]:
    """(the job's trace dict, or None without trace=True; its events)."""
    tr = {} if trace else None
    events = list(Engine(manager).generate(params, out, cancel, trace=tr))
    assert isinstance(events[-1], DoneEvent)
    return tr, events


