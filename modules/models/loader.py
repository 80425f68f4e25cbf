"""Fetch and load model components named in the registry.

Real and tiny weights go through the same path: `snapshot_download` (with the registry's
allow_patterns) resolves a local snapshot folder, then the component class loads it with
`from_pretrained`. The tiny set is the same call with cache_dir=TINY_HUB_DIR and local_files_only.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from tqdm.auto import tqdm

from modules.models.registry import COMPONENTS, Component, ModelSet, cache_dir_for

# One model construction at a time per process: from_pretrained builds the model under accelerate's
# init_empty_weights, which swaps torch.nn.Module.register_parameter for every thread while it runs, so two
# workers loading at once would leave each other's weights on the meta device. It also keeps the host-memory
# peak of loading to one model's worth.
_FROM_PRETRAINED = threading.Lock()

log = logging.getLogger(__name__)


class ModelNotAvailableError(RuntimeError):
    """Weights are not in the cache and cannot be downloaded (offline or unreachable)."""


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def repo_size_gb(repo_id: str, names: list[str] | None = None) -> float:
    return sum(c.approx_size_gb for c in COMPONENTS.values()
               if c.repo_id == repo_id and (names is None or c.name in names))


def _patterns_for(repo_id: str, components: list[Component]) -> list[str]:
    pats: list[str] = []
    for c in components:
        if c.repo_id == repo_id:
            pats.extend(p for p in c.allow_patterns if p not in pats)
    if repo_id == COMPONENTS["vae"].repo_id and "model_index.json" not in pats:
        pats.append("model_index.json")
    return pats


DownloadListener = Callable[[str], None]


def listening_tqdm(listener: DownloadListener, repo_id: str) -> type[tqdm]:
    """A tqdm class that also reports each update as one line of text (for the UI's job progress)."""

    class _ReportingBar(tqdm):
        # Own counters: a disabled tqdm (no terminal, HF_HUB_DISABLE_PROGRESS_BARS) tracks nothing itself.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._done, self._total = 0.0, kwargs.get("total") or 0
            self._bytes = kwargs.get("unit") == "B"
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            self._done += n or 0
            total = getattr(self, "total", None) or self._total
            if total:
                if self._bytes:
                    listener(f"Downloading {repo_id}: {self._done / 1e9:.2f} / {total / 1e9:.2f} GB")
                else:
                    listener(f"Downloading {repo_id}: {int(self._done)} / {int(total)} files")
            return shown

    return _ReportingBar


def fetch_repo(repo_id: str, names: list[str], model_set: ModelSet = ModelSet.REAL,
               hf_home: Path | None = None, progress: bool = True,
               listener: DownloadListener | None = None) -> Path:
    """Return the local snapshot folder holding the given components of `repo_id`, downloading if allowed.

    `listener`, when given, receives a line of text per progress update of a download (any thread)."""
    return fetch_components(repo_id, [COMPONENTS[n] for n in names], model_set, hf_home, progress, listener)


def fetch_components(repo_id: str, components: list[Component], model_set: ModelSet = ModelSet.REAL,
                     hf_home: Path | None = None, progress: bool = True,
                     listener: DownloadListener | None = None, download_cmd: str = "python -m studio download") -> Path:
    """fetch_repo for components given as registry records (the captioner models are not in COMPONENTS);
    `download_cmd` is the command that fetches them, for the message when they are missing."""
    names = [c.name for c in components]
    size_gb = sum(c.approx_size_gb for c in components)
    local_only = model_set == ModelSet.TINY or is_offline()
    cache_dir = cache_dir_for(model_set, hf_home)
    patterns = _patterns_for(repo_id, components)
    kwargs: dict[str, Any] = dict(repo_id=repo_id, allow_patterns=patterns, local_files_only=local_only)
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    if progress and not local_only:
        kwargs["tqdm_class"] = listening_tqdm(listener, repo_id) if listener else tqdm
        if listener:
            listener(f"Checking {repo_id} ({', '.join(names)}; about {size_gb:.1f} GB)")
    try:
        path = Path(snapshot_download(**kwargs))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        where = cache_dir or os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "the default HF cache"
        how = ("the tiny model set is missing from the installation" if model_set == ModelSet.TINY else
               f"run `{download_cmd}` with network access (or copy the repo into {where}); "
               f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}")
        raise ModelNotAvailableError(
            f"Model weights for {repo_id} ({', '.join(names)}; about {size_gb:.1f} GB) are not available "
            f"in {where}: {how}. ({exc.__class__.__name__}: {exc})") from exc
    missing = [c for c in components if c.subfolder and not (path / c.subfolder).is_dir()]
    if missing:
        raise ModelNotAvailableError(
            f"Snapshot of {repo_id} at {path} lacks {', '.join(c.name for c in missing)} (about "
            f"{sum(c.approx_size_gb for c in missing):.1f} GB); run `{download_cmd}`.")
    return path


def _component_class(c: Component):
    if c.class_name == "SiglipImageProcessor":
        # The PIL backend gives the same pixels whether or not torchvision is installed (the golden data used it).
        import transformers
        return getattr(transformers, "SiglipImageProcessorPil", transformers.SiglipImageProcessor)
    module = importlib.import_module(c.library)
    return getattr(module, c.class_name)


def load_component(name: str, model_set: ModelSet = ModelSet.REAL, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, hf_home: Path | None = None, progress: bool = True,
                   listener: DownloadListener | None = None):
    """Load one component (model on `device` in `dtype`, eval mode; tokenizers/processors as they are)."""
    c = COMPONENTS[name]
    root = fetch_repo(c.repo_id, [name], model_set, hf_home, progress, listener)
    folder = root / c.subfolder if c.subfolder else root
    cls = _component_class(c)
    log.info("loading %s (%s) from %s", name, c.class_name, c.repo_id)
    if name == "tokenizer":
        # transformers 5's Llama tokenizer classes rebuild the pre-tokenizer and change the padding side;
        # the generic fast tokenizer uses tokenizer.json verbatim.
        return cls.from_pretrained(str(folder), padding_side="right")
    if name.startswith("tokenizer") or name == "feature_extractor":
        return cls.from_pretrained(str(folder))
    # transformers 5 names the argument `dtype`; diffusers still `torch_dtype`.
    key = "dtype" if c.library == "transformers" else "torch_dtype"
    with _FROM_PRETRAINED:
        # use_safetensors: never fall back to a pickled .bin that may sit in a shared HF cache.
        model = cls.from_pretrained(str(folder), use_safetensors=True, **{key: dtype})
    model.requires_grad_(False)
    model.eval()
    return model.to(device)


def download(names: list[str], hf_home: Path | None = None, progress: bool = True) -> dict[str, Path]:
    """Pre-fetch the real weights of the given components, grouped per repo. Returns repo -> snapshot folder."""
    by_repo: dict[str, list[str]] = {}
    for n in names:
        by_repo.setdefault(COMPONENTS[n].repo_id, []).append(n)
    out: dict[str, Path] = {}
    for repo, comp in by_repo.items():
        log.info("fetching %s (%s; about %.1f GB)", repo, ", ".join(comp), repo_size_gb(repo, comp))
        out[repo] = fetch_repo(repo, comp, ModelSet.REAL, hf_home, progress)
    return out


def load_captioner(component: Component, model_set: ModelSet = ModelSet.REAL, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, hf_home: Path | None = None, progress: bool = True,
                   listener: DownloadListener | None = None) -> tuple[Any, Any]:
    """A vision-language model of the registry's CAPTIONER_MODELS and its processor, from the same snapshot
    (downloaded with progress when allowed), through transformers' native Auto classes."""
    import transformers

    root = fetch_components(component.repo_id, [component], model_set, hf_home, progress, listener,
                            download_cmd="python -m studio download --captioner")
    log.info("loading the captioner %s", component.repo_id)
    processor = transformers.AutoProcessor.from_pretrained(str(root))
    with _FROM_PRETRAINED:
        model = getattr(transformers, component.class_name).from_pretrained(str(root), use_safetensors=True,
                                                                           dtype=dtype)
    model.requires_grad_(False)
    model.eval()
    return model.to(device), processor
