"""The tiny post-processing set: random, narrow networks of the real architectures, for `--models tiny`.

`weight_source` below is the one switch: it hands a `TinyWeights` to the upscaler, face restoration and RIFE
instead of the `WeightStore` when the model set (the `models` setting, `--models`) is tiny. Each PyTorch file of
`weights.WEIGHTS` gets a state dict of its own architecture (ESRGAN / Compact at the same scale and
pixel-unshuffle, GFPGANv1Clean, IFNet) at a small width, seeded from its key, and the consumers load it through
the same code as the official file: spandrel, or the loaders that read their widths from the shapes. The ONNX
face detector has no random twin; `faces.CentreFaceDetector` stands in. So upscale, face restore and RIFE run
offline on a CPU in seconds, and give the same bytes on every run.

Built in memory rather than saved as files: building takes milliseconds, nothing is shipped or kept in sync,
and nothing lands in the post-processing weights folder, where a tiny `RealESRGAN_x4plus.safetensors` would be
mistaken for the real one after switching back to the real set.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch
from spandrel.architectures.GFPGAN import GFPGAN

from modules.models.registry import ModelSet

from .common import ProgressCallback
from .faces import gfpgan_kwargs
from .network_options import UPSCALE_MODELS
from .networks import random_state_dict
from .rife import IFNet
from .upscale import build_random_state_dict
from .weights import (FACE_DETECTOR_WEIGHTS, GFPGAN_WEIGHTS, RIFE_WEIGHTS, WEIGHTS, WeightFile, WeightsError,
                      WeightSource, WeightStore)

# Sizes of the tiny networks: the real layer layout, a handful of channels.
TINY_UPSCALER_SIZES: dict[str, dict[str, int]] = {
    "esrgan": {"num_blocks": 1, "num_filters": 8},
    "compact": {"num_conv": 2, "num_feat": 8},
}
TINY_GFPGAN = {"narrow": 1 / 32, "num_style_feat": 32}  # 512 px crops as v1.4, ~0.3 s a face on a CPU
TINY_RIFE_WIDTHS = (16, 16, 16, 16, 16)


def tiny_seed(key: str) -> int:
    """A fixed seed per file (crc32, not hash(): that one changes between processes)."""
    return zlib.crc32(key.encode())


def tiny_state_dict(key: str) -> dict[str, torch.Tensor]:
    """The tiny weights standing in for WEIGHTS[key]."""
    seed = tiny_seed(key)
    upscaler = next((m for m in UPSCALE_MODELS.values() if key in m.weights), None)
    if upscaler is not None:
        return build_random_state_dict(upscaler.name, seed, **TINY_UPSCALER_SIZES[upscaler.arch])
    if key == GFPGAN_WEIGHTS:
        return random_state_dict(lambda: GFPGAN(**gfpgan_kwargs(**TINY_GFPGAN)), seed)
    if key == RIFE_WEIGHTS:
        return random_state_dict(lambda: IFNet(TINY_RIFE_WIDTHS), seed)
    raise WeightsError(f"the tiny model set has no stand-in for {key}")


class TinyWeights:
    """A WeightSource that builds the tiny weights in memory; it never reads a folder or the network."""

    tiny = True

    def state_dict(self, spec: WeightFile | str, progress: ProgressCallback | None = None) -> dict[str, torch.Tensor]:
        return tiny_state_dict(spec if isinstance(spec, str) else spec.key)

    def verified_file(self, spec: WeightFile | str, progress: ProgressCallback | None = None) -> Path:
        key = spec if isinstance(spec, str) else spec.key
        # Only the face detector is used as a file, and faces.FaceEnhancer uses a stand-in for it in the tiny set.
        raise WeightsError(f"the tiny model set has no file for {WEIGHTS[key].filename if key in WEIGHTS else key}"
                           f" (the face detector {FACE_DETECTOR_WEIGHTS} is replaced by a centred stand-in)")


def weight_source(folder: Path, models: ModelSet | str = ModelSet.REAL, *,
                  allow_unverified: bool = False) -> WeightSource:
    """The one place that picks real or tiny post-processing weights (UI and `post` CLI both call it)."""
    if ModelSet(models) is ModelSet.TINY:
        return TinyWeights()
    return WeightStore(folder, allow_unverified=allow_unverified)
