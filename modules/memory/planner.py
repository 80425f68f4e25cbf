"""Which transformer blocks stay on the GPU and which stream from CPU memory: a pure function of sizes.

No torch here, so the policy is unit-testable with hand-computed numbers. Sizes are bytes; blocks are listed in
execution order (dual-stream blocks first, then single-stream blocks).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

GIB = 1024**3


@dataclass(frozen=True)
class ResidencyPlan:
    """Placement of every transformer block for one device budget.

    `resident[i]` is True when block i lives on the device for the whole job; the others are copied from pinned
    CPU memory into one of `slots` device staging buffers of `slot_bytes` each, just before they run.
    """

    block_bytes: tuple[int, ...]
    resident: tuple[bool, ...]
    slots: int
    slot_bytes: int
    budget_bytes: int  # device bytes available for blocks and slots
    fits: bool  # False when even streaming one block at a time exceeds the budget (expect an OOM)
    forced: bool = False

    @property
    def streamed(self) -> tuple[int, ...]:
        return tuple(i for i, r in enumerate(self.resident) if not r)

    @property
    def all_resident(self) -> bool:
        return all(self.resident)

    @property
    def prefetch(self) -> bool:
        """Block k+1 is copied while block k computes (needs two staging slots)."""
        return self.slots >= 2

    @property
    def resident_bytes(self) -> int:
        return sum(b for b, r in zip(self.block_bytes, self.resident) if r)

    @property
    def streamed_bytes(self) -> int:
        """Bytes copied host -> device per transformer forward."""
        return sum(b for b, r in zip(self.block_bytes, self.resident) if not r)

    @property
    def device_bytes(self) -> int:
        """Device memory the blocks occupy: resident blocks plus staging slots."""
        return self.resident_bytes + self.slots * self.slot_bytes

    def same_placement(self, other: "ResidencyPlan") -> bool:
        """Equal where it matters for the weights (the budget itself may drift between sections)."""
        return (self.block_bytes, self.resident, self.slots, self.slot_bytes) == (
            other.block_bytes, other.resident, other.slots, other.slot_bytes)

    def summary(self) -> dict:
        return {
            "mode": "resident" if self.all_resident else "streaming",
            "resident_blocks": sum(self.resident),
            "streamed_blocks": len(self.streamed),
            "resident_gb": round(self.resident_bytes / GIB, 3),
            "streamed_gb_per_forward": round(self.streamed_bytes / GIB, 3),
            "slots": self.slots,
            "prefetch": self.prefetch,
            "fits": self.fits,
            "forced": self.forced,
        }


def estimate_activation_bytes(tokens: int, inner_dim: int, mlp_ratio: float = 4.0, dtype_bytes: int = 2) -> int:
    """Peak activation memory of one transformer forward (batch 1, flash/SDPA attention: no N x N matrix).

    A single-stream block holds its input, the norm output, q/k/v, the attention output, the MLP hidden state
    before and after the activation and their concatenation: about (2 * mlp_ratio + 6) token-by-width tensors.
    25 % is added for allocator fragmentation.
    """
    per_copy = tokens * inner_dim * dtype_bytes
    return int(per_copy * (2 * mlp_ratio + 6) * 1.25)


def _spread(indices: Sequence[int], count: int) -> set[int]:
    """`count` of `indices`, evenly spaced, so streamed blocks sit between resident ones and copies overlap."""
    n = len(indices)
    return {indices[int((j + 0.5) * n / count)] for j in range(count)} if count else set()


def plan_residency(
    block_bytes: Sequence[int],
    fixed_bytes: int,
    free_bytes: int,
    preserved_gb: float,
    activation_bytes: int = 0,
    *,
    force_streaming: bool = False,
    prefetch: bool = True,
) -> ResidencyPlan:
    """Choose resident blocks so that `preserved_gb` (and at least the activation estimate) stays free.

    `free_bytes` is the device memory free before any transformer weight is placed; `fixed_bytes` are the
    non-block modules (embedders, refiner, output head) that always live on the device. Budget for blocks =
    free - fixed - max(preserved, activation). When every block fits, all are resident and nothing streams.
    Otherwise two staging slots (prefetch) are reserved when possible, else one (no overlap), and the largest
    resident byte total that fits is kept, with the streamed blocks spread evenly through the stack.
    `force_streaming` streams every block (the low-memory path, reachable on any card for testing).
    """
    sizes = tuple(int(b) for b in block_bytes)
    if not sizes:
        raise ValueError("no transformer blocks to plan")
    if any(s <= 0 for s in sizes):
        raise ValueError("block sizes must be positive")
    reserve = max(int(preserved_gb * GIB), int(activation_bytes))
    budget = int(free_bytes) - int(fixed_bytes) - reserve

    if not force_streaming and sum(sizes) <= budget:
        return ResidencyPlan(sizes, (True,) * len(sizes), 0, 0, budget, True)

    by_size: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(sizes):
        by_size[s].append(i)

    for slots in ((2, 1) if prefetch else (1,)):
        best: tuple[int, set[int], int] | None = None  # (resident bytes, resident set, slot size)
        for m in sorted(by_size):  # m: the largest streamed block, which sizes the slots
            cap = budget - slots * m
            if cap < 0:
                continue
            if force_streaming:
                if m == max(by_size):
                    best = (0, set(), m)
                continue
            keep: set[int] = set()
            for s in sorted(by_size, reverse=True):
                group = by_size[s]
                if s > m:
                    n_keep = len(group)  # larger than a slot: must be resident
                    if s * n_keep > cap:
                        keep = None  # type: ignore[assignment]
                        break
                else:
                    limit = len(group) - 1 if s == m else len(group)  # at least one block of size m streams
                    n_keep = min(limit, cap // s)
                cap -= s * n_keep
                keep |= set(group) - _spread(group, len(group) - n_keep)
            if keep is None:
                continue
            kept = sum(sizes[i] for i in keep)
            if best is None or kept > best[0]:
                best = (kept, keep, m)
        if best is not None:
            _, keep, m = best
            resident = tuple(i in keep for i in range(len(sizes)))
            slot = max(s for s, r in zip(sizes, resident) if not r)
            return ResidencyPlan(sizes, resident, slots, slot, budget, True, force_streaming)

    # Not even one block fits beside the reserve: stream everything one at a time and let the caller warn.
    return ResidencyPlan(sizes, (False,) * len(sizes), 1, max(sizes), budget, False, force_streaming)
