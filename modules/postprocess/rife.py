"""The RIFE 4.x intermediate-flow network (IFNet, layout of RIFE 4.25/4.26), written for FP-Studio.

Five IFBlocks refine a bidirectional flow and a fusion mask coarse-to-fine (1/16 .. 1/1 of the frame);
each block sees both frames, their 16-channel encoder features, the timestep, and (after the first)
the frames and features warped by the current flow plus the previous block's mask and 8 hidden
channels. The output frame is mask * warp(I0) + (1 - mask) * warp(I1).

Parameter names follow the official checkpoints (`block0..4`, `encode`) so their state dicts load as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .networks import build_with_state

HIDDEN = 8  # extra channels carried from block to block
FEAT = 16  # encoder channels per frame
BLOCK_WIDTHS = (192, 128, 96, 64, 32)
PAD_MULTIPLE = 64  # 1/16 scale then two stride-2 convs


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` at (x + flow_x, y + flow_y) with bilinear interpolation, borders clamped."""
    _, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    nx = gx + flow[:, 0] * (2.0 / max(w - 1, 1))
    ny = gy + flow[:, 1] * (2.0 / max(h - 1, 1))
    grid = torch.stack((nx, ny), dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, True))


class ResConv(nn.Module):
    """3x3 conv with a learned per-channel residual scale."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2), _conv(c // 2, c, 2))
        self.convblock = nn.Sequential(*(ResConv(c) for _ in range(8)))
        # 4 flow + 1 mask + HIDDEN, produced at 2x by a transposed conv then 2x more by pixel shuffle.
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * (5 + HIDDEN), 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        y = self.lastconv(self.convblock(self.conv0(x)))
        y = F.interpolate(y, scale_factor=scale, mode="bilinear", align_corners=False)
        return y[:, :4] * scale, y[:, 4:5], y[:, 5:]


class Head(nn.Module):
    """Per-frame feature encoder (full resolution, FEAT channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, FEAT, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class IFNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = BLOCK_WIDTHS) -> None:
        """`widths`: the five blocks' channels; the official weights use BLOCK_WIDTHS, the tiny set narrower."""
        super().__init__()
        if len(widths) != len(BLOCK_WIDTHS):
            raise ValueError(f"IFNet has {len(BLOCK_WIDTHS)} blocks, got {len(widths)} widths")
        first = 3 + 3 + 1 + 2 * FEAT  # I0, I1, t, F0, F1
        later = 3 + 3 + 1 + 1 + 4 + HIDDEN + 2 * FEAT  # warped I0, I1, t, mask, flow, hidden, warped F0, F1
        for i, c in enumerate(widths):
            setattr(self, f"block{i}", IFBlock(first if i == 0 else later, c))
        self.encode = Head()

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float = 0.5,
                scale: float = 1.0) -> torch.Tensor:
        """img0/img1: N x 3 x H x W in [0, 1], H and W multiples of PAD_MULTIPLE / scale."""
        t = torch.full_like(img0[:, :1], float(timestep))
        f0, f1 = self.encode(img0), self.encode(img1)
        flow = mask = hidden = None
        w0, w1 = img0, img1
        for i, s in enumerate((16, 8, 4, 2, 1)):
            block: IFBlock = getattr(self, f"block{i}")
            if flow is None:
                flow, mask, hidden = block(torch.cat((img0, img1, f0, f1, t), 1), None, s / scale)
            else:
                wf0, wf1 = backward_warp(f0, flow[:, :2]), backward_warp(f1, flow[:, 2:4])
                d_flow, mask, hidden = block(torch.cat((w0, w1, wf0, wf1, t, mask, hidden), 1), flow, s / scale)
                flow = flow + d_flow
            w0, w1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return w0 * m + w1 * (1 - m)


def ifnet_widths(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """The block widths a state dict was saved with (each block's first conv has width // 2 outputs)."""
    key = "block{}.conv0.0.0.weight"
    if any(key.format(i) not in state for i in range(len(BLOCK_WIDTHS))):
        return BLOCK_WIDTHS  # let the key check below name what is missing
    return tuple(2 * int(state[key.format(i)].shape[0]) for i in range(len(BLOCK_WIDTHS)))


def load_ifnet_state(state: dict[str, torch.Tensor]) -> IFNet:
    """An IFNet holding an official checkpoint (keys may carry DataParallel's `module.` prefix; extras are ignored).
    The block widths come from the weights' shapes, so the tiny set loads through this same path."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    widths = ifnet_widths(state)
    with torch.device("meta"):  # only the names and shapes are needed here
        own = IFNet(widths).state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"not a RIFE 4.25/4.26 IFNet checkpoint: {len(missing)} weights missing (e.g. {missing[0]})")
    bad = [k for k in own if state[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"not a RIFE 4.25/4.26 IFNet checkpoint: shape of {bad[0]} differs")
    return build_with_state(lambda: IFNet(widths), {k: state[k] for k in own})
