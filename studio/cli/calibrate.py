"""`python -m studio calibrate`: measure MagCache magnitude ratios for a model by generating without caching.

A MagnitudeRecorder is attached to the transformer while the engine runs one job with caching off; it records,
per section and step, the mean token-wise ratio ||r_t|| / ||r_(t-1)|| of consecutive block-stack residuals
(conditional pass), and the per-step mean over all sections is written in the format of
modules/framepack/magcache_ratios.json (an existing file is merged: one table per model and step count),
so `modules.framepack.cache.load_magcache_ratios(kind, steps, path=<file>)` reads it directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Light imports only: `python -m studio --help` builds every sub-parser, so torch and the engine load in the
# handler (see `run`/`measure`).
from modules.framepack.params import CacheType, GenerationParams, GenerationType
from modules.models.registry import ModelSet

if TYPE_CHECKING:
    from modules.framepack.cache import MagnitudeRecorder

log = logging.getLogger(__name__)

FORMAT = "FP-Studio MagCache magnitude ratios v1"
DTYPES = ("float32", "bfloat16", "float16")  # torch dtype names, resolved in `run`


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = GenerationParams()
    p = subparsers.add_parser(
        "calibrate", help="measure MagCache magnitude ratios of a model (runs one uncached generation)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", choices=[m.value for m in ModelSet], default=ModelSet.REAL.value,
                   help="real weights from the HF cache, or the shipped tiny set")
    p.add_argument("--type", dest="generation_type", choices=[GenerationType.ORIGINAL.value, GenerationType.F1.value],
                   default=GenerationType.ORIGINAL.value, help="which transformer to calibrate")
    p.add_argument("--steps", type=int, default=defaults.steps, help="sampling steps (the table's length)")
    p.add_argument("--image", type=Path, default=None, help="start image (default: the latent image, black)")
    p.add_argument("--prompt", default="The girl dances gracefully, with clear movements, full of charm.")
    p.add_argument("--seconds", type=float, default=defaults.total_seconds, help="video length; more sections "
                   "average more measurements")
    p.add_argument("--width", type=int, default=defaults.width)
    p.add_argument("--height", type=int, default=defaults.height)
    p.add_argument("--latent-window-size", type=int, default=defaults.latent_window_size)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--cfg", type=float, default=defaults.cfg)
    p.add_argument("--distilled-cfg", type=float, default=defaults.distilled_cfg)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="default: bf16 on CUDA, float32 on CPU")
    p.add_argument("--hf-home", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None,
                   help="ratios JSON to write or merge into (default: print the JSON only)")
    p.set_defaults(func=run)


def calibration_params(args: argparse.Namespace) -> GenerationParams:
    return GenerationParams(
        generation_type=args.generation_type, prompt=args.prompt, start_image=args.image, steps=args.steps,
        total_seconds=args.seconds, width=args.width, height=args.height,
        latent_window_size=args.latent_window_size, seed=args.seed, cfg=args.cfg,
        distilled_cfg=args.distilled_cfg, cache_type=CacheType.NONE)  # the recorder is the only hook


def measure(manager: Any, params: GenerationParams) -> MagnitudeRecorder:
    """Run one uncached generation with a MagnitudeRecorder on the transformer; returns the recorder."""
    from modules.framepack.cache import MagnitudeRecorder, calls_per_step
    from modules.framepack.engine import Engine
    from modules.framepack.outputs import OutputOptions
    from modules.cancel import CancelToken
    from modules.framepack.events import DoneEvent, StepEvent

    params = params.model_copy(update={"cache_type": CacheType.NONE})
    recorder = MagnitudeRecorder(num_steps=params.steps, calls_per_step=calls_per_step(params))
    transformer = manager.transformer(params.transformer_kind)
    with tempfile.TemporaryDirectory(prefix="fp_calibrate_") as tmp:
        out = OutputOptions(output_dir=Path(tmp) / "out", work_dir=Path(tmp) / "work", crf=30,
                            save_metadata=False, cleanup_videos=True)
        with recorder.attach(transformer):
            for event in Engine(manager).generate(params, out, CancelToken()):
                if isinstance(event, StepEvent):
                    log.debug("section %d step %d/%d", event.section + 1, event.step, event.total_steps)
                elif isinstance(event, DoneEvent):
                    log.info("calibration run done: %d frames", event.result.frames)
    return recorder


def ratios_document(kind: str, steps: int, ratios: list[float], source: str,
                    existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ratios file (data-file format) with this table added or replaced."""
    doc = existing if existing and existing.get("format") == FORMAT else {
        "format": FORMAT,
        "about": "MagCache magnitude ratios measured by `python -m studio calibrate` (mean over sections of "
                 "the token-wise ||r_t|| / ||r_(t-1)|| of the block-stack residual; entry 0 is 1.0).",
        "models": {},
    }
    doc.setdefault("measurements", {})[f"{kind}/{steps}"] = source
    doc["models"].setdefault(kind, {})[str(steps)] = [round(r, 5) for r in ratios]
    return doc


def _existing_ratios(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SystemExit(f"calibrate: {path} exists and is not a ratios JSON file ({exc})") from exc
    if not isinstance(existing, dict) or existing.get("format") != FORMAT:
        raise SystemExit(f"calibrate: {path} exists and is not a ratios JSON file (format {FORMAT!r})")
    return existing


def run(args: argparse.Namespace) -> int:
    import torch

    from modules.models.manager import ModelManager, RuntimeConfig

    existing = _existing_ratios(args.out)  # refuse a foreign --out file before the long run
    params = calibration_params(args)
    manager = ModelManager(RuntimeConfig(model_set=ModelSet(args.models), device=args.device,
                                         dtype=getattr(torch, args.dtype) if args.dtype else None, hf_home=args.hf_home))
    recorder = measure(manager, params)
    ratios = recorder.mean_ratios()
    kind = params.transformer_kind.value
    source = (f"{datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}: models={args.models} type={kind} "
              f"steps={params.steps} sections={len(recorder.ratio_log)} {params.width}x{params.height} "
              f"lws={params.latent_window_size} seed={params.seed} cfg={params.cfg} "
              f"device={manager.device} dtype={str(manager.dtype).replace('torch.', '')}")
    doc = ratios_document(kind, params.steps, ratios, source, existing)
    text = json.dumps(doc, indent=1)
    for step, r in enumerate(ratios):
        log.info("step %3d  ratio %.5f", step, r)
    if args.out is None:
        print(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(args.out)
        print(args.out)
    return 0
