"""RIFE frame interpolation, 2x or 4x.

Frame count: with n input frames the output has factor * (n - 1) + 1 frames (2n - 1 for 2x): every
original frame is kept and factor - 1 new frames are placed between each neighbouring pair; nothing is
invented after the last frame. The frame rate is multiplied by `factor`, so the duration stays the same
to within one output frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modules.cancel import CancelToken
from modules.media.video_io import iter_frames
from modules.memory.offload import resolve_device

from .common import PostProcessError, ProgressCallback, check_output, check_video, report
from .rife import PAD_MULTIPLE, IFNet, load_ifnet_state
from .ffmpeg import write_frames
from .network_options import InterpolateOptions
from .networks import build_with_state, random_state_dict
from .weights import RIFE_WEIGHTS, WeightSource

log = logging.getLogger(__name__)


class Interpolator:
    def __init__(self, net: IFNet, device: torch.device, scale: float = 1.0) -> None:
        self.net = net.to(device).eval()
        self.device = device
        self.scale = scale

    @classmethod
    def load(cls, store: WeightSource, device: torch.device, scale: float = 1.0,
             progress: ProgressCallback | None = None) -> "Interpolator":
        return cls(load_ifnet_state(store.state_dict(RIFE_WEIGHTS, progress)), device, scale)

    @classmethod
    def random(cls, device: torch.device | str = "cpu", seed: int = 0, scale: float = 1.0) -> "Interpolator":
        return cls(build_with_state(IFNet, random_state_dict(IFNet, seed)), torch.device(device), scale)

    def _tensor(self, frame: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float() / 255.0

    @torch.inference_mode()
    def between(self, a: np.ndarray, b: np.ndarray, times: list[float]) -> list[np.ndarray]:
        """Frames at each t in `times` (0 < t < 1) between RGB uint8 frames a and b."""
        h, w = a.shape[:2]
        m = int(PAD_MULTIPLE / min(self.scale, 1.0))
        ph, pw = (-h) % m, (-w) % m
        x0 = F.pad(self._tensor(a), (0, pw, 0, ph), mode="replicate")
        x1 = F.pad(self._tensor(b), (0, pw, 0, ph), mode="replicate")
        outs = []
        for t in times:
            y = self.net(x0, x1, t, self.scale)[0, :, :h, :w].clamp(0, 1)
            outs.append((y.permute(1, 2, 0) * 255.0).round().byte().cpu().numpy())
        return outs


def interpolate_video(input_path: Path, options: InterpolateOptions, output: Path,
                      progress: ProgressCallback | None = None, cancel: CancelToken | None = None, *,
                      weights: WeightSource | None = None, interpolator: Interpolator | None = None) -> Path:
    """Write a video with factor * (n - 1) + 1 frames at factor * fps. Returns `output`."""
    info = check_video(input_path)
    check_output(output, [input_path])
    if info.fps * options.factor > 240:
        raise PostProcessError(f"{info.fps:g} fps x {options.factor} would exceed 240 fps")
    if interpolator is None:
        if weights is None:
            raise PostProcessError("no weights store given to load RIFE")
        interpolator = Interpolator.load(weights, resolve_device(options.device), options.scale, progress)
    times = [i / options.factor for i in range(1, options.factor)]
    total = options.factor * (info.frames - 1) + 1

    def frames():
        prev = None
        done = 0
        for frame in iter_frames(input_path):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if prev is not None:
                for mid in interpolator.between(prev, frame, times):
                    done += 1
                    yield mid
            done += 1
            report(progress, "interpolate", done, total)
            yield frame
            prev = frame

    log.info("RIFE %dx: %d frames at %g fps -> %d frames at %g fps", options.factor, info.frames, info.fps,
             total, info.fps * options.factor)
    return write_frames(Path(output), frames(), fps=info.fps * options.factor, crf=options.crf)
