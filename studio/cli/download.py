"""`python -m studio download [--f1] [--no-original]`: pre-fetch the real weights with progress bars.

Honours HF_HOME / HF_HUB_CACHE (or --hf-home / the `hf_home` setting). Offline (HF_HUB_OFFLINE=1) it only
checks that everything is already in the cache and names what is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("download", help="download the model weights into the Hugging Face cache",
                              description=__doc__)
    p.add_argument("--f1", action="store_true", help="also the F1 transformer (~26 GB more)")
    p.add_argument("--no-original", action="store_true", help="skip the Original transformer")
    p.add_argument("--hf-home", type=Path, default=None,
                   help="Hugging Face home (default: the `hf_home` setting, else HF_HOME)")
    p.add_argument("--data-dir", default=None, help="data directory whose settings.json is read")
    p.set_defaults(func=run)


def components_for(f1: bool, original: bool = True) -> list[str]:
    from modules.models.registry import SHARED_COMPONENTS, TRANSFORMER_COMPONENT, TransformerKind

    names = list(SHARED_COMPONENTS)
    if original:
        names.append(TRANSFORMER_COMPONENT[TransformerKind.ORIGINAL])
    if f1:
        names.append(TRANSFORMER_COMPONENT[TransformerKind.F1])
    return names


def run(args: argparse.Namespace) -> int:
    from modules.models.loader import ModelNotAvailableError, download, repo_size_gb

    from studio.paths import DataPaths, resolve_data_dir
    from studio.settings import SettingsStore

    hf_home = args.hf_home
    if hf_home is None:
        settings = SettingsStore(DataPaths(resolve_data_dir(args.data_dir)).settings_file).load()
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
