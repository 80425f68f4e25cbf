"""Resolution buckets and the centre crop of the start image.

FramePack trains on a fixed list of (height, width) buckets around 640x640. For any base resolution the
list is that 640 list scaled by base/640 and rounded to multiples of 16; the requested size picks its base
((w + h) / 2) and the image (or the request) picks the entry nearest in aspect ratio.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

# FramePack's 640-class buckets as (height, width).
BUCKETS_640: tuple[tuple[int, int], ...] = (
    (416, 960), (448, 864), (480, 832), (512, 768), (544, 704), (576, 672), (608, 640),
    (640, 608), (672, 576), (704, 544), (768, 512), (832, 480), (864, 448), (960, 416),
)


def _round16(x: float) -> int:
    return max(16, int(round(x / 16.0)) * 16)


def bucket_list(base: int) -> list[tuple[int, int]]:
    """The bucket list for `base` (640 gives the list above), as (height, width)."""
    out: list[tuple[int, int]] = []
    for h, w in BUCKETS_640:
        hw = (_round16(h * base / 640), _round16(w * base / 640))
        if hw not in out:
            out.append(hw)
    return out


def find_bucket(width: int, height: int, image_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """(height, width) of the bucket for a request of width x height and, if any, an image of image_hw."""
    base = int(round((width + height) / 2))
    h_ref, w_ref = image_hw if image_hw is not None else (height, width)
    best, best_metric = None, math.inf
    for bh, bw in bucket_list(base):
        # FramePack's metric (cross-multiplied aspect difference); `<=` lets the later entry win ties,
        # which maps a square request to 640 high x 608 wide as FramePack does.
        metric = abs(h_ref * bw - w_ref * bh) / (h_ref * bh)
        if metric <= best_metric:
            best, best_metric = (bh, bw), metric
    assert best is not None
    return best


def resize_and_center_crop(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale the image to cover width x height (Lanczos), then crop the centre. uint8 HxWx3 in and out."""
    h0, w0 = image.shape[:2]
    if (h0, w0) == (height, width):
        return image.copy()
    scale = max(width / w0, height / h0)
    nw, nh = max(width, round(w0 * scale)), max(height, round(h0 * scale))
    pil = Image.fromarray(image).resize((nw, nh), Image.LANCZOS)
    arr = np.asarray(pil)
    top, left = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(arr[top:top + height, left:left + width])
