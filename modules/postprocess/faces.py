"""Face restoration with GFPGAN v1.4: detection, alignment, restoration and paste-back.

- Detector: OpenCV's YuNet (`face_detection_yunet_2023mar.onnx` from opencv_zoo, run by
  `cv2.FaceDetectorYN`): a box and five landmarks per face, ONNX (no pickle), sha256-verified.
  Any object with `detect(rgb) -> list[Face]` can replace it (tests use a stub with known boxes; the tiny
  model set uses `CentreFaceDetector`, one centred face).
- Alignment: a similarity transform maps the five landmarks onto the FFHQ 512x512 five-point template
  that GFPGAN was trained on (eyes, nose tip, mouth corners).
- Restoration: GFPGANv1Clean (channel multiplier 2, 512 px), built by spandrel from the state dict,
  run with fixed noise so the same frame always gives the same result.
- Paste-back: the restored crop is warped back with the inverse transform and blended with a feathered
  mask that is limited to the detected box grown by `paste_margin`; pixels outside it are untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from spandrel import ImageModelDescriptor
from spandrel.architectures.GFPGAN import GFPGAN

from .common import PostProcessError, ProgressCallback
from .networks import build_with_state, load_descriptor, random_state_dict
from .weights import FACE_DETECTOR_WEIGHTS, GFPGAN_WEIGHTS, WeightSource

log = logging.getLogger(__name__)

FACE_SIZE = 512
# FFHQ five-point template at 512 px (image-left eye, image-right eye, nose tip, left and right mouth corner).
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.19360], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)
# Where those points sit relative to a face box (x, y as fractions), used when a detector gives boxes only.
_BOX_LANDMARKS = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.35, 0.78], [0.65, 0.78]], dtype=np.float32)


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    landmarks: np.ndarray | None = None  # 5 x 2 (x, y), order as FFHQ_TEMPLATE_512
    score: float = 1.0

    def points(self) -> np.ndarray:
        if self.landmarks is not None:
            return np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)
        x1, y1, x2, y2 = self.box
        return np.array([x1, y1], np.float32) + _BOX_LANDMARKS * np.array([x2 - x1, y2 - y1], np.float32)


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an H x W x 3 uint8 RGB image."""
        ...


class YuNetDetector:
    name = "OpenCV YuNet face_detection_yunet_2023mar (cv2.FaceDetectorYN)"

    def __init__(self, model_path: Path, score_threshold: float = 0.7, nms_threshold: float = 0.3) -> None:
        self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold, nms_threshold, 5000)

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        faces = []
        for r in rows if rows is not None else []:
            x, y, bw, bh = (float(v) for v in r[:4])
            faces.append(Face((x, y, x + bw, y + bh), np.asarray(r[4:14], np.float32).reshape(5, 2), float(r[14])))
        return faces


class CentreFaceDetector:
    """The tiny set's stand-in detector: one face, centred, half the shorter side. YuNet is an ONNX file that
    OpenCV runs, with no random-weight twin, and a random detector would find nothing to restore; this keeps
    the detect -> align -> GFPGAN -> paste path running on every frame."""

    name = "centre stand-in (tiny model set)"

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        half = min(h, w) / 4
        cx, cy = w / 2, h / 2
        return [Face((cx - half, cy - half, cx + half, cy + half))]


def gfpgan_kwargs(narrow: float = 1.0, num_style_feat: int = 512) -> dict:
    """GFPGANv1Clean as v1.4 uses it; narrow < 1 and a smaller style width keep the architecture, thinner."""
    return dict(out_size=FACE_SIZE, num_style_feat=num_style_feat, channel_multiplier=2, decoder_load_path=None,
                fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=narrow, sft_half=True)


def gfpgan_sizes(state: dict[str, torch.Tensor]) -> tuple[float, int]:
    """(narrow, num_style_feat) read from a state dict's shapes: final_conv has int(256 * narrow) outputs."""
    try:
        narrow = state["final_conv.weight"].shape[0] / 256
        return (1.0 if narrow == 1 else narrow), int(state["stylegan_decoder.style_mlp.1.weight"].shape[0])
    except KeyError as exc:
        raise PostProcessError(f"not GFPGAN weights: {exc.args[0]} is missing") from None


class GFPGANRestorer:
    """GFPGAN v1.4 on 512 x 512 aligned RGB crops."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.model = model.to(device).eval()

    @classmethod
    def from_descriptor(cls, descriptor: ImageModelDescriptor, device: torch.device) -> "GFPGANRestorer":
        if descriptor.architecture.id != "GFPGAN":
            raise PostProcessError(f"expected GFPGAN weights, got {descriptor.architecture.id}")
        return cls(descriptor.model, device)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], device: torch.device) -> "GFPGANRestorer":
        """v1.4's sizes load through spandrel (detection and all); thinner weights (the tiny set, tests) are
        built with the sizes read from their shapes, since spandrel assumes v1.4's."""
        narrow, style = gfpgan_sizes(state)
        if (narrow, style) == (1.0, 512):
            return cls.from_descriptor(load_descriptor(state), device)
        return cls(build_with_state(lambda: GFPGAN(**gfpgan_kwargs(narrow, style)), state), device)

    @classmethod
    def random(cls, device: torch.device | str = "cpu", seed: int = 0, narrow: float = 1.0,
               num_style_feat: int = 512) -> "GFPGANRestorer":
        """GFPGANv1Clean with random weights. narrow=1 is v1.4 itself; narrow<1 keeps the architecture but thins
        every layer (fast tests of the detect/align/paste path)."""
        return cls.from_state(random_state_dict(lambda: GFPGAN(**gfpgan_kwargs(narrow, num_style_feat)), seed),
                              torch.device(device))

    @torch.inference_mode()
    def restore(self, crop: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        # randomize_noise=False: use the network's stored noise, so results are deterministic.
        y = self.model(x, return_rgb=False, randomize_noise=False)[0]
        return ((y[0].clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def align_matrix(points: np.ndarray) -> np.ndarray:
    """2x3 similarity transform from image landmarks to the FFHQ 512 template."""
    m, _ = cv2.estimateAffinePartial2D(points.astype(np.float32), FFHQ_TEMPLATE_512, method=cv2.LMEDS)
    if m is None:
        raise PostProcessError("face alignment failed (degenerate landmarks)")
    return m


def _box_mask(shape: tuple[int, int], box: tuple[float, float, float, float], margin: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A feathered rectangle (1 inside the grown box, 0 outside) and its integer bounds."""
    h, w = shape
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    bx1, by1 = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
    bx2, by2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    mask = np.zeros((h, w), np.float32)
    if bx2 <= bx1 or by2 <= by1:
        return mask, (0, 0, 0, 0)
    feather = max(1, int(0.08 * min(bx2 - bx1, by2 - by1)))
    inner = mask[by1:by2, bx1:bx2]
    inner[...] = 1.0
    # Linear ramps on each edge, inside the box, so the mask is exactly 0 outside it.
    ramp = np.linspace(0.0, 1.0, feather + 2, dtype=np.float32)[1:-1]
    for i, v in enumerate(ramp):
        inner[i, :] = np.minimum(inner[i, :], v)
        inner[-1 - i, :] = np.minimum(inner[-1 - i, :], v)
        inner[:, i] = np.minimum(inner[:, i], v)
        inner[:, -1 - i] = np.minimum(inner[:, -1 - i], v)
    return mask, (bx1, by1, bx2, by2)


class FaceEnhancer:
    """Detect -> align -> GFPGAN -> paste back, for every face in a frame."""

    def __init__(self, detector: FaceDetector, restorer: GFPGANRestorer, paste_margin: float = 0.25,
                 max_faces: int = 16) -> None:
        self.detector = detector
        self.restorer = restorer
        self.paste_margin = paste_margin
        self.max_faces = max_faces

    @classmethod
    def load(cls, store: WeightSource, device: torch.device,
             progress: ProgressCallback | None = None) -> "FaceEnhancer":
        # The tiny set has no detector file (see CentreFaceDetector); everything else loads the same way.
        detector: FaceDetector = (CentreFaceDetector() if store.tiny
                                  else YuNetDetector(store.verified_file(FACE_DETECTOR_WEIGHTS, progress)))
        restorer = GFPGANRestorer.from_state(store.state_dict(GFPGAN_WEIGHTS, progress), device)
        log.info("face restoration: GFPGAN v1.4%s, detector %s", " (tiny)" if store.tiny else "", detector.name)
        return cls(detector, restorer)

    def enhance(self, image: np.ndarray) -> np.ndarray:
        faces = sorted(self.detector.detect(image), key=lambda f: -f.score)[: self.max_faces]
        out = image
        for face in faces:
            out = self._paste(out, face)
        return out

    def _paste(self, image: np.ndarray, face: Face) -> np.ndarray:
        h, w = image.shape[:2]
        m = align_matrix(face.points())
        crop = cv2.warpAffine(image, m, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
        restored = self.restorer.restore(crop)
        inv = cv2.invertAffineTransform(m)
        back = cv2.warpAffine(restored, inv, (w, h), flags=cv2.INTER_LINEAR)
        # Where the crop square lands, shrunk a little so its resampled border never shows.
        valid = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), np.float32), inv, (w, h), flags=cv2.INTER_LINEAR)
        valid = cv2.erode(valid, np.ones((3, 3), np.uint8))
        box_mask, (bx1, by1, bx2, by2) = _box_mask((h, w), face.box, self.paste_margin)
        if bx2 <= bx1:
            return image
        mask = (valid * box_mask)[by1:by2, bx1:bx2, None]
        out = image.copy()
        region = out[by1:by2, bx1:bx2].astype(np.float32)
        out[by1:by2, bx1:bx2] = np.clip(region * (1 - mask) + back[by1:by2, bx1:bx2] * mask + 0.5, 0, 255).astype(np.uint8)
        return out
