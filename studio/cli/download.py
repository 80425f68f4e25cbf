"""`python -m studio download [--f1] [--no-original] [--post]`: pre-fetch the real weights with progress bars.

FramePack models go into the Hugging Face cache: HF_HOME / HF_HUB_CACHE (or --hf-home / the `hf_home` setting).
Offline (HF_HUB_OFFLINE=1) it only checks that everything is already in the cache and names what is missing.
`--captioner` fetches the prompt helpers' vision-language model (the `captioner_model` setting, or
`--captioner-model`) into the same cache. `--post` fetches the post-processing weights (every Real-ESRGAN model, GFPGAN and its face detector, RIFE) into
the data directory's weights/postprocess folder, each sha256-checked; alone it fetches only those, with
--f1 / --no-original the FramePack models too. A file that cannot be downloaded gets one line saying where
to place a copy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.paths import DataPaths


def register(subparsers) -> None:
    p = subparsers.add_parser("download", help="download the model weights (FramePack into the Hugging Face cache; --post: "
                              "the post-processing networks)",
                              description=__doc__)
    p.add_argument("--f1", action="store_true", help="also the F1 transformer (~26 GB more)")
    p.add_argument("--no-original", action="store_true", help="skip the Original transformer")
    p.add_argument("--hf-home", type=Path, default=None,
                   help="Hugging Face home (default: the `hf_home` setting, else HF_HOME)")
    p.add_argument("--data-dir", default=None,
                   help="data directory whose settings.json is read (and whose weights/postprocess gets --post)")
    p.add_argument("--post", action="store_true",
                   help="the post-processing weights (Real-ESRGAN, GFPGAN + face detector, RIFE; ~0.6 GB); "
                   "alone: only those")
    p.add_argument("--captioner", action="store_true",
                   help="the captioner model of Caption / Describe video / Enhance (Qwen3-VL 2B: ~4.3 GB); "
                   "alone: only it")
    p.add_argument("--captioner-model", default=None,
                   help="with --captioner: which one (default: the captioner_model setting)")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="with --post: where they go (default: DATA/weights/postprocess, where `post` looks)")
    p.set_defaults(func=run)


def components_for(f1: bool, original: bool = True) -> list[str]:
    from modules.models.registry import SHARED_COMPONENTS, TRANSFORMER_COMPONENT, TransformerKind

    names = list(SHARED_COMPONENTS)
    if original:
        names.append(TRANSFORMER_COMPONENT[TransformerKind.ORIGINAL])
    if f1:
        names.append(TRANSFORMER_COMPONENT[TransformerKind.F1])
    return names


def wants_framepack(args: argparse.Namespace) -> bool:
    """`--post` / `--captioner` alone fetch only those; --f1 / --no-original (or neither flag) add FramePack."""
    return not (args.post or args.captioner) or args.f1 or args.no_original


def run(args: argparse.Namespace) -> int:
    from studio.paths import DataPaths, resolve_data_dir

    paths = DataPaths(resolve_data_dir(args.data_dir))
    rc = _download_framepack(args, paths) if wants_framepack(args) else 0
    if args.captioner:
        rc = max(rc, _download_captioner(args, paths))
    if args.post:
        rc = max(rc, _download_post(args.weights_dir or paths.postprocess_weights_dir))
    return rc


def _download_framepack(args: argparse.Namespace, paths: DataPaths) -> int:
    from modules.models.loader import ModelNotAvailableError, download, repo_size_gb

    from studio.settings import SettingsStore

    hf_home = args.hf_home
    if hf_home is None:
        settings = SettingsStore(paths.settings_file).load()
        hf_home = Path(settings.hf_home) if settings.hf_home else None
    names = components_for(args.f1, not args.no_original)
    try:
        folders = download(names, hf_home=hf_home, progress=True)
    except ModelNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    for repo, folder in folders.items():
        print(f"{repo} ({repo_size_gb(repo):.1f} GB): {folder}")
    return 0


def _download_captioner(args: argparse.Namespace, paths: DataPaths) -> int:
    from modules.models.loader import ModelNotAvailableError, fetch_components
    from modules.models.registry import CAPTIONER_MODELS, ModelSet

    from studio.settings import SettingsStore

    settings = SettingsStore(paths.settings_file).load()
    repo = args.captioner_model or settings.captioner_model
    if repo not in CAPTIONER_MODELS:
        print(f"error: --captioner-model {repo!r}: choose one of {', '.join(CAPTIONER_MODELS)}", file=sys.stderr)
        return 2
    hf_home = args.hf_home or (Path(settings.hf_home) if settings.hf_home else None)
    component = CAPTIONER_MODELS[repo]
    try:
        folder = fetch_components(repo, [component], ModelSet.REAL, hf_home, progress=True,
                                  download_cmd="python -m studio download --captioner")
    except ModelNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"{repo} ({component.approx_size_gb:.1f} GB): {folder}")
    return 0


def _download_post(folder: Path) -> int:
    """Every post-processing file through the one WeightStore (download, sha256, safetensors cache), one tqdm
    bar each; a file that fails does not stop the others, and each failure is one line on stderr."""
    from modules.postprocess.weights import WeightsError, WeightStore, offered_weights

    from studio.cli.post import ProgressBars

    store = WeightStore(folder)
    failed = 0
    for spec in offered_weights():
        bars = ProgressBars()
        try:
            path = store.fetch(spec, bars)
        except WeightsError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        finally:
            bars.close()
        print(f"{spec.filename}: {path}")
    if failed:
        print(f"error: {failed} of {len(offered_weights())} post-processing files are missing", file=sys.stderr)
        return 3
    return 0
