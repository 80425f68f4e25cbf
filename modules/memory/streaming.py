"""Block streaming for diffusers' HunyuanVideoFramepackTransformer3DModel (any module with block lists).

Resident blocks and every non-block module live on the device. Each streamed block keeps its weights in one
flat (pinned, on CUDA) host buffer per dtype; forward pre-hooks copy it into a device staging slot and point
the block's parameters at views of that slot; the copy of the next streamed block is issued on a side CUDA
stream so it overlaps the compute of the current one. Post-hooks point parameters back at the host buffer.
The same code path runs on CPU (device="cpu": synchronous copies into separate slot memory), which is what the
tests use to prove outputs do not depend on the plan. Inference only: slots are overwritten while autograd
would still reference them.

Workers of one process that stream the same weights share one host copy (`HOST_BLOCKS`): a streamer given a
`host_key` (which weights: component, model set, cache, dtype) adopts the host buffers another streamer packed
for the same block, after checking they hold the same values, and its own copy is freed. Streaming only reads
the host buffers, and LoRAs are hooks beside the weights, so sharing changes no output.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch
from torch import nn

from modules.memory.planner import ResidencyPlan
from modules.memory.shared_copies import SharedCopies

log = logging.getLogger(__name__)

BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")
_ALIGN = 64  # elements; keeps every view 128-byte aligned for bf16 kernels


def transformer_blocks(transformer: nn.Module) -> list[nn.Module]:
    """Blocks in execution order: dual-stream, then single-stream."""
    blocks: list[nn.Module] = []
    for name in BLOCK_LISTS:
        blocks.extend(getattr(transformer, name, None) or [])
    if not blocks:
        raise ValueError(f"{type(transformer).__name__} has none of the block lists {BLOCK_LISTS}")
    return blocks


def module_bytes(module: nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def describe_transformer(transformer: nn.Module) -> tuple[list[int], int]:
    """(bytes of each block in execution order, bytes of everything else) as the planner wants them."""
    sizes = [module_bytes(b) for b in transformer_blocks(transformer)]
    return sizes, module_bytes(transformer) - sum(sizes)


def _host_empty(n: int, dtype: torch.dtype, pin: bool) -> torch.Tensor:
    if pin:
        try:
            return torch.empty(n, dtype=dtype, pin_memory=True)
        except RuntimeError as exc:  # pinned memory is limited on some systems (WSL, small Windows pagefiles)
            log.warning("cannot pin %.0f MB of host memory (%s); streaming from pageable memory (slower)",
                        n * torch.empty(0, dtype=dtype).element_size() / 2**20, exc)
    return torch.empty(n, dtype=dtype)


@dataclass
class _Entry:
    module: nn.Module
    name: str
    is_param: bool
    dtype: torch.dtype
    offset: int
    shape: torch.Size

    def numel(self) -> int:
        return self.shape.numel()

    def point_at(self, flat: torch.Tensor) -> None:
        view = flat[self.offset : self.offset + self.numel()].view(self.shape)
        if self.is_param:
            self.module._parameters[self.name].data = view
        else:
            self.module._buffers[self.name] = view


class _Flats(dict):
    """A block's flat host tensors by dtype (a dict subclass so HOST_BLOCKS can hold it weakly)."""


@dataclass
class _HostBlock:
    """One streamed block: its weights packed into flat host tensors (one per dtype)."""

    entries: list[_Entry]
    flat: _Flats = field(default_factory=_Flats)

    @staticmethod
    def layout(block: nn.Module) -> tuple[list[_Entry], list[torch.Tensor], dict[torch.dtype, int]]:
        entries: list[_Entry] = []
        sizes: dict[torch.dtype, int] = defaultdict(int)
        sources: list[torch.Tensor] = []
        for mod in block.modules():
            for is_param, table in ((True, mod._parameters), (False, mod._buffers)):
                for name, t in table.items():
                    if t is None:
                        continue
                    off = sizes[t.dtype]
                    entries.append(_Entry(mod, name, is_param, t.dtype, off, t.shape))
                    sources.append(t)
                    sizes[t.dtype] = off + -(-t.numel() // _ALIGN) * _ALIGN
        return entries, sources, dict(sizes)

    @classmethod
    def pack(cls, block: nn.Module, pin: bool) -> "_HostBlock":
        entries, sources, sizes = cls.layout(block)
        hb = cls(entries)
        for dtype, n in sizes.items():
            hb.flat[dtype] = _host_empty(n, dtype, pin)
        # Copy and re-point one tensor at a time so the old storage is freed as we go (no second full copy).
        for e, src in zip(entries, sources):
            hb.flat[e.dtype][e.offset : e.offset + e.numel()].copy_(src.detach().reshape(-1))
            e.point_at(hb.flat[e.dtype])
        return hb

    @classmethod
    def adopt(cls, block: nn.Module, flat: _Flats) -> "_HostBlock | None":
        """The block re-pointed at `flat` (another streamer's buffers) when they have its layout and values;
        None (nothing changed) otherwise."""
        entries, sources, sizes = cls.layout(block)
        if {dt: t.numel() for dt, t in flat.items()} != sizes:
            return None
        for e, src in zip(entries, sources):
            view = flat[e.dtype][e.offset : e.offset + e.numel()].view(e.shape)
            if not torch.equal(view, src.detach().to(view.device)):
                return None
        for e in entries:
            e.point_at(flat[e.dtype])
        return cls(entries, flat)

    def numel_by_dtype(self) -> dict[torch.dtype, int]:
        return {dt: t.numel() for dt, t in self.flat.items()}

    def point_at_host(self) -> None:
        for e in self.entries:
            e.point_at(self.flat[e.dtype])


HOST_BLOCKS: SharedCopies[_Flats, _HostBlock] = SharedCopies("streamed block")


def _shared_block(key: Hashable, block: nn.Module, pin: bool) -> _HostBlock:
    """The block's host copy, adopted from another streamer of the same weights when it holds the same values."""
    def make() -> tuple[_HostBlock, _Flats]:
        hb = _HostBlock.pack(block, pin)
        return hb, hb.flat

    return HOST_BLOCKS.share((key, pin), make, lambda flat: _HostBlock.adopt(block, flat))



class BlockStreamer:
    """Places a transformer according to a ResidencyPlan and streams its non-resident blocks.

    `BlockStreamer(transformer, device, plan).attach()`; `detach()` removes the hooks (streamed blocks stay in
    host memory, resident ones on the device). Re-run `refresh()` after anything adds or replaces parameters
    inside blocks (e.g. LoRA adapters), since the packed host layout is built at attach time.
    """

    def __init__(self, transformer: nn.Module, device: str | torch.device, plan: ResidencyPlan,
                 pin_memory: bool | None = None, host_key: Hashable | None = None) -> None:
        """host_key: which weights these are (the same key means the same values); streamers with the same key
        share one host copy of each streamed block (HOST_BLOCKS). None: a private copy."""
        self.transformer = transformer
        self.host_key = host_key
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.plan = plan
        self.blocks = transformer_blocks(transformer)
        if len(plan.resident) != len(self.blocks):
            raise ValueError(f"plan covers {len(plan.resident)} blocks, transformer has {len(self.blocks)}")
        self._cuda = self.device.type == "cuda"
        self.pin = self._cuda if pin_memory is None else pin_memory
        self.attached = False
        self.copies = 0  # host -> device block copies since attach (for tests and logs)
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._host: list[_HostBlock] = []
        self._slots: list[dict[torch.dtype, torch.Tensor]] = []
        self._owner: list[int | None] = []
        self._live: set[int] = set()  # streamed blocks whose parameters currently point at a slot

    # -- placement ---------------------------------------------------------------------------------------------
    def attach(self) -> "BlockStreamer":
        if self.attached:
            return self
        streamed = [self.blocks[i] for i in self.plan.streamed]
        resident_ids = {id(self.blocks[i]) for i, r in enumerate(self.plan.resident) if r}
        for name, child in self.transformer.named_children():
            if name not in BLOCK_LISTS:
                child.to(self.device)
        for block in self.blocks:
            if id(block) in resident_ids:
                block.to(self.device)
        self._host = [_HostBlock.pack(b, self.pin) if self.host_key is None
                      else _shared_block((self.host_key, i), b, self.pin)
                      for i, b in zip(self.plan.streamed, streamed)]
        n_slots = min(max(self.plan.slots, 1), len(streamed)) if streamed else 0
        need: dict[torch.dtype, int] = defaultdict(int)
        for hb in self._host:
            for dt, n in hb.numel_by_dtype().items():
                need[dt] = max(need[dt], n)
        self._slots = [{dt: torch.empty(n, dtype=dt, device=self.device) for dt, n in need.items()}
                       for _ in range(n_slots)]
        self._owner = [None] * n_slots
        if self._cuda and n_slots:
            self._copy_stream = torch.cuda.Stream(self.device)
            self._ready = [torch.cuda.Event() for _ in range(n_slots)]
            self._free = [torch.cuda.Event() for _ in range(n_slots)]
        if streamed:
            self._hooks.append(self.transformer.register_forward_pre_hook(self._on_forward_start))
            for j, block in enumerate(streamed):
                self._hooks.append(block.register_forward_pre_hook(self._make_pre(j)))
                self._hooks.append(block.register_forward_hook(self._make_post(j)))
                for child in block.children():
                    self._hooks.append(child.register_forward_pre_hook(self._make_child_pre(j)))
        self.attached = True
        self.copies = 0
        log.info("transformer placed on %s: %s", self.device, self.plan.summary())
        return self

    def detach(self) -> None:
        """Remove hooks and staging slots; streamed blocks stay in (pinned) host memory."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._release_all()
        if self._cuda and self._slots:
            torch.cuda.current_stream(self.device).wait_stream(self._copy_stream)
        self._slots, self._owner = [], []
        self._host = []  # the parameters' own views keep the host buffers alive; a re-plan repacks them
        self.attached = False

    def refresh(self) -> None:
        """Rebuild the host layout (after LoRA adapters were added or weights replaced)."""
        self.detach()
        self.attach()

    def __enter__(self) -> "BlockStreamer":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    @property
    def slot_bytes_allocated(self) -> int:
        return sum(t.numel() * t.element_size() for slot in self._slots for t in slot.values())

    # -- streaming ---------------------------------------------------------------------------------------------
    def _slot_of(self, j: int) -> int:
        return j % len(self._slots)

    def _prefetch(self, j: int) -> None:
        """Start copying streamed block j into its slot (asynchronously on CUDA)."""
        slot = self._slot_of(j)
        if self._owner[slot] == j:
            return
        for other in [o for o in self._live if o != j and self._slot_of(o) == slot]:
            self._release(other)  # only after out-of-order standalone calls; normally the slot is idle
        dst = self._slots[slot]
        if self._cuda:
            stream = self._copy_stream
            stream.wait_event(self._free[slot])  # the previous user of this slot has finished computing
            with torch.cuda.stream(stream):
                for dt, src in self._host[j].flat.items():
                    dst[dt][: src.numel()].copy_(src, non_blocking=True)
                self._ready[slot].record(stream)
        else:
            for dt, src in self._host[j].flat.items():
                dst[dt][: src.numel()].copy_(src)
        self._owner[slot] = j
        self.copies += 1

    def _load(self, j: int) -> None:
        """Make block j's parameters device views of its slot, with the copy complete for the compute stream."""
        if j in self._live:
            return
        self._prefetch(j)
        slot = self._slot_of(j)
        if self._cuda:
            torch.cuda.current_stream(self.device).wait_event(self._ready[slot])
        for e in self._host[j].entries:
            e.point_at(self._slots[slot][e.dtype])
        self._live.add(j)

    def _release(self, j: int) -> None:
        if j not in self._live:
            return
        if self._cuda:
            self._free[self._slot_of(j)].record(torch.cuda.current_stream(self.device))
        self._host[j].point_at_host()
        self._live.discard(j)

    def _release_all(self) -> None:
        for j in list(self._live):
            self._release(j)

    def _on_forward_start(self, module: nn.Module, args: tuple) -> None:
        self._release_all()  # blocks a step cache loaded but then skipped
        # Weights may have been changed in place on the host between calls: never trust old slot contents.
        self._owner = [None] * len(self._slots)
        self._prefetch(0)  # overlaps the embedders and any resident blocks before the first streamed one

    def _make_pre(self, j: int):
        def pre(module: nn.Module, args: tuple) -> None:
            self._load(j)
            if len(self._slots) > 1 and j + 1 < len(self._host):
                self._prefetch(j + 1)  # overlaps this block's compute
        return pre

    def _make_post(self, j: int):
        def post(module: nn.Module, args: tuple, output) -> None:
            self._release(j)
            if len(self._slots) == 1 and j + 1 < len(self._host):
                self._prefetch(j + 1)  # starts once this block is done; overlaps resident blocks in between
        return post

    def _make_child_pre(self, j: int):
        # A sub-module called on its own (TeaCache evaluates transformer_blocks[0].norm1 before the blocks run).
        def child_pre(module: nn.Module, args: tuple) -> None:
            if j not in self._live:
                self._load(j)
        return child_pre
