"""Real-ESRGAN video upscaling (optionally with GFPGAN face restoration).

Networks are built by spandrel from a state dict, so the same code path loads the official weights
(old or new ESRGAN key layouts) and, in tests, random-initialised networks of the same architectures.
Frames are processed one at a time, optionally in tiles (with a 10 px overlap that is cropped away),
and streamed into the output MP4, so memory does not grow with video length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from spandrel import ImageModelDescriptor
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN

from modules.cancel import CancelToken
from modules.media.video_io import MAX_PIXELS, iter_frames
from modules.memory.offload import resolve_device

from .common import PostProcessError, ProgressCallback, check_output, check_video, report
from .faces import FaceEnhancer
from .ffmpeg import write_frames
from .network_options import (UPSCALE_MODELS, ModelName, TileChoice, UpscaleModel, UpscaleOptions,  # noqa: F401
                              output_scale)
from .networks import load_descriptor, random_state_dict
from .weights import WeightSource

log = logging.getLogger(__name__)

TILE_PAD = 10  # context pixels around each tile, cropped from the result


def build_random_state_dict(name: str, seed: int = 0, **sizes: int) -> dict[str, torch.Tensor]:
    """A random-initialised state dict of the model's real architecture (for tests, benchmarks, the tiny set).
    `sizes` overrides the architecture's widths and depths (the tiny set: fewer, narrower blocks); spandrel
    reads them back from the shapes, so such weights load through `load_descriptor` like the official ones."""
    spec = UPSCALE_MODELS[name]
    cls = ESRGAN if spec.arch == "esrgan" else Compact
    return random_state_dict(lambda: cls(**{**spec.arch_kwargs, **sizes}), seed)


def blend_state_dicts(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], wa: float) -> dict[str, torch.Tensor]:
    """Deep network interpolation: wa * a + (1 - wa) * b, key by key (Real-ESRGAN's denoise strength)."""
    if a.keys() != b.keys():
        raise PostProcessError("cannot blend two models with different layers")
    return {k: a[k] * wa + b[k] * (1.0 - wa) for k in a}


class Upscaler:
    """One loaded super-resolution network with tiling."""

    def __init__(self, descriptor: ImageModelDescriptor, device: torch.device, name: str = "") -> None:
        self.name = name or descriptor.architecture.id
        self.device = device
        # fp16 on CUDA where the architecture supports it; fp32 on CPU.
        self.dtype = torch.float16 if device.type == "cuda" and descriptor.supports_half else torch.float32
        self.descriptor = descriptor.to(device)
        self.model = self.descriptor.model.to(dtype=self.dtype).eval()
        self.scale = int(descriptor.scale)
        req = descriptor.size_requirements
        self.multiple = max(1, req.multiple_of)
        self.minimum = max(1, req.minimum)

    @classmethod
    def load(cls, name: str, store: WeightSource, device: torch.device, denoise_strength: float = 0.5,
             progress: ProgressCallback | None = None) -> "Upscaler":
        spec = UPSCALE_MODELS[name]
        state = store.state_dict(spec.weights[0], progress)
        if len(spec.weights) == 2 and denoise_strength < 1.0:
            state = blend_state_dicts(state, store.state_dict(spec.weights[1], progress), denoise_strength)
        return cls(load_descriptor(state), device, name)

    @classmethod
    def random(cls, name: str, device: torch.device | str = "cpu", seed: int = 0) -> "Upscaler":
        return cls(load_descriptor(build_random_state_dict(name, seed)), torch.device(device), name)

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """x: 1x3xHxW float in [0, 1] on device; pads to the architecture's size needs."""
        _, _, h, w = x.shape
        ph = max(self.minimum, math.ceil(h / self.multiple) * self.multiple) - h
        pw = max(self.minimum, math.ceil(w / self.multiple) * self.multiple) - w
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.model(x.to(self.dtype)).float()
        return y[:, :, : h * self.scale, : w * self.scale].clamp_(0, 1)

    def upscale_tensor(self, x: torch.Tensor, tile: int | None) -> torch.Tensor:
        _, _, h, w = x.shape
        if not tile or (h <= tile and w <= tile):
            return self._run(x)
        s = self.scale
        out = torch.empty((1, 3, h * s, w * s), dtype=torch.float32, device=x.device)
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                py0, px0 = max(y0 - TILE_PAD, 0), max(x0 - TILE_PAD, 0)
                py1, px1 = min(y1 + TILE_PAD, h), min(x1 + TILE_PAD, w)
                res = self._run(x[:, :, py0:py1, px0:px1])
                out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = res[:, :, (y0 - py0) * s:(y1 - py0) * s,
                                                              (x0 - px0) * s:(x1 - px0) * s]
        return out

    def upscale(self, frame: np.ndarray, tile: int | None = None) -> np.ndarray:
        """H x W x 3 uint8 RGB -> (sH) x (sW) x 3 uint8 RGB. On CUDA out-of-memory the tile size halves."""
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        while True:
            try:
                y = self.upscale_tensor(x, tile)
                break
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                tile = min(tile or max(frame.shape[:2]), max(frame.shape[:2])) // 2
                if tile < 32:
                    raise
                log.warning("CUDA out of memory; retrying with tile %d", tile)
        return (y[0].permute(1, 2, 0) * 255.0).round_().byte().cpu().numpy()


def tile_size(choice: str, height: int, width: int, device: torch.device) -> int | None:
    """Auto: whole frames up to 512 px on a side (and on GPUs with room), else 512 px tiles."""
    if choice == "none":
        return None
    if choice != "auto":
        return int(choice)
    if max(height, width) <= 512:
        return None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if free > 12 * 1024**3 and height * width <= 1280 * 1280:
            return None
    return 512


FrameFilter = Callable[[np.ndarray], np.ndarray]


def upscale_video(input_path: Path, options: UpscaleOptions, output: Path,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None, *,
                  weights: WeightSource | None = None, upscaler: Upscaler | None = None,
                  face_restorer: FrameFilter | None = None) -> Path:
    """Upscale every frame by the model's scale; returns `output` (H.264 MP4, same fps and frame count).

    Pass `weights` to load the networks from a weight source (`tiny.weight_source`: the official weights,
    downloaded and verified on first use, or the tiny set), or a ready
    `upscaler` (tests: `Upscaler.random(...)`). With `face_enhance`, `face_restorer` (frame -> frame)
    is applied after upscaling; when not given it is built from `weights` (GFPGAN v1.4 + YuNet).
    """
    info = check_video(input_path)
    check_output(output, [input_path])
    scale = output_scale(options.model)
    if info.width * scale * info.height * scale > MAX_PIXELS:
        raise PostProcessError(f"{options.model} would make {info.width * scale}x{info.height * scale} frames; "
                               f"the limit is {MAX_PIXELS} pixels. Downscale or trim first.")
    device = resolve_device(options.device)
    if upscaler is None:
        if weights is None:
            raise PostProcessError("no weights store given to load the upscaler")
        upscaler = Upscaler.load(options.model, weights, device, options.denoise_strength, progress)
    if upscaler.scale != scale:
        raise PostProcessError(f"loaded network scales {upscaler.scale}x, {options.model} is {scale}x")
    if options.face_enhance and face_restorer is None:
        if weights is None:
            raise PostProcessError("face enhancement needs the weights store")
        face_restorer = FaceEnhancer.load(weights, device, progress).enhance
    tile = tile_size(options.tile, info.height, info.width, device)
    log.info("upscale %s %dx: %dx%d -> %dx%d (tile %s)", options.model, scale, info.width, info.height,
             info.width * scale, info.height * scale, tile or "none")

    def frames():
        for i, frame in enumerate(iter_frames(input_path)):
            if cancel is not None:
                cancel.raise_if_cancelled()
            out = upscaler.upscale(frame, tile)
            if options.face_enhance and face_restorer is not None:
                out = face_restorer(out)
            report(progress, "upscale", i + 1, info.frames)
            yield out

    return write_frames(Path(output), frames(), fps=info.fps, crf=options.crf)
