"""PyTorch's deterministic mode, switched per job by the `deterministic` setting (off by default).

On CPU the studio is reproducible to the byte without it. On CUDA some kernels may give different bits from
run to run (atomics in reductions, cuBLAS workspaces, cuDNN autotuning) or between GPU models (TF32, attention
backends); this mode asks PyTorch for its deterministic algorithms and turns TF32 off, at some cost in speed.
It is process-wide PyTorch state, so it is applied at the start of every job (the setting may change between
jobs); docs/determinism.md says what it does and does not promise.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)

# cuBLAS needs a fixed workspace for deterministic GEMMs; read when cuBLAS initialises, so set it early.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def apply_determinism(enabled: bool) -> None:
    """Switch PyTorch's deterministic algorithms and TF32 for the next job (PyTorch's defaults when off)."""
    if enabled and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
        if torch.cuda.is_initialized():
            log.warning("deterministic mode: CUDA was already initialised; cuBLAS may stay non-deterministic "
                        "until the studio restarts")
    # warn_only: an operation without a deterministic version logs a warning instead of failing the job.
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = not enabled  # PyTorch's default is True for convolutions
    torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default; never TF32 for matmuls
