"""ModelManager: the one long-lived owner of loaded model components across jobs.

The queue worker keeps one manager, so a second job on the same model loads nothing. Switching the
transformer kind (Original <-> F1) frees the other one first; `unload()` frees everything.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from modules.memory.offload import resolve_device
from modules.models import loader
from modules.models.lora import LoraApplier
from modules.models.memory import ManagerMemory, make_policy
from modules.models.registry import SHARED_COMPONENTS, TRANSFORMER_COMPONENT, ModelSet, TransformerKind

log = logging.getLogger(__name__)


@dataclass
class RuntimeConfig:
    model_set: ModelSet = ModelSet.REAL
    device: str = "auto"
    dtype: torch.dtype | None = None  # None: bf16 on CUDA, float32 on CPU
    hf_home: Path | None = None
    lora_dir: Path | None = None
    preserved_memory_gb: float = 6.0
    deterministic: bool = False  # PyTorch's deterministic algorithms, TF32 off (modules/models/determinism.py)


@dataclass
class SharedModels:
    tokenizer: Any
    text_encoder: Any
    tokenizer_2: Any
    text_encoder_2: Any
    vae: Any
    feature_extractor: Any
    image_encoder: Any


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class ModelManager:
    """Lazily loads and keeps models; thread-safe for one worker plus UI threads asking for summaries."""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        self.config = config or RuntimeConfig()
        self.device = resolve_device(self.config.device)
        self.dtype = self.config.dtype or default_dtype(self.device)
        self._lock = threading.RLock()
        self._shared: SharedModels | None = None
        self._transformer: Any = None
        self._kind: TransformerKind | None = None
        self._lora_applier: LoraApplier | None = None
        self.load_count = 0  # number of component loads so far (tests check reuse)
        self.memory: ManagerMemory | None = None  # the memory policy; CUDA only
        # Receives download progress lines while weights are fetched (the queue worker shows them on the job).
        self.download_listener: loader.DownloadListener | None = None
        if self.device.type == "cuda":
            self.memory = make_policy(self)

    # -- loading -------------------------------------------------------------------------------------------
    def _load(self, name: str):
        self.load_count += 1
        if self.memory is not None:  # CUDA: the memory policy picks the load device and places the model
            model = loader.load_component(name, self.config.model_set, self.memory.load_device(name), self.dtype,
                                          self.config.hf_home, listener=self.download_listener)
            return self.memory.after_load(name, model)
        return loader.load_component(name, self.config.model_set, self.device, self.dtype, self.config.hf_home,
                                     listener=self.download_listener)

    def shared(self) -> SharedModels:
        with self._lock:
            if self._shared is None:
                self._shared = SharedModels(**{n: self._load(n) for n in SHARED_COMPONENTS})
            return self._shared

    def transformer(self, kind: TransformerKind) -> Any:
        with self._lock:
            kind = TransformerKind(kind)
            if self._transformer is not None and self._kind == kind:
                return self._transformer
            if self._transformer is not None:
                log.info("switching transformer %s -> %s (freeing the old one first)", self._kind.value, kind.value)
                self._free_transformer()
            self._transformer = self._load(TRANSFORMER_COMPONENT[kind])
            self._kind = kind
            return self._transformer

    @property
    def transformer_kind(self) -> TransformerKind | None:
        return self._kind

    def apply_loras(self, specs: list) -> None:
        """Make the loaded transformer carry exactly these LoRAs (delegates to modules.models.lora)."""
        with self._lock:
            if self._transformer is None:
                raise RuntimeError("load a transformer before applying LoRAs")
            if self._lora_applier is None or getattr(self._lora_applier, "transformer", self._transformer) \
                    is not self._transformer:
                self._lora_applier = LoraApplier(self._transformer)
            lora_dir = self.config.lora_dir or Path("loras")
            self._lora_applier.apply(list(specs), lora_dir)

    @property
    def active_loras(self) -> list:
        return list(self._lora_applier.active) if self._lora_applier is not None else []

    # -- device memory (modules/models/memory.py on CUDA; no-ops on the CPU) ---------------------------------
    def using(self, *modules: Any):
        """Context manager: these encoders/VAE are on the device while it is open (then offloaded if needed)."""
        return self.memory.using(*modules) if self.memory is not None else contextlib.nullcontext()

    def before_section(self, transformer: Any, tokens: int) -> None:
        """Re-plan which transformer blocks stay resident for the next section (nothing moves if unchanged)."""
        if self.memory is not None:
            self.memory.place(transformer, tokens=tokens)

    # -- freeing -------------------------------------------------------------------------------------------
    def _free_transformer(self) -> None:
        if self.memory is not None:
            self.memory.release()
        self._transformer = None
        self._kind = None
        self._lora_applier = None
        self._collect()

    def _collect(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def unload(self) -> None:
        with self._lock:
            self._shared = None
            self._free_transformer()
            log.info("all models unloaded")

    def loaded_summary(self) -> dict:
        with self._lock:
            shared = [f.name for f in fields(SharedModels)] if self._shared is not None else []
            return {
                "model_set": self.config.model_set.value,
                "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""),
                "shared": shared,
                "transformer": self._kind.value if self._kind else None,
                "loras": [s.model_dump() if hasattr(s, "model_dump") else s for s in self.active_loras],
                "memory": self.memory.summary() if self.memory is not None else None,
            }
