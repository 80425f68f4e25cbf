"""The NVIDIA GPUs this process may use, and their memory in use, read through NVML without torch.

Start-up plans one worker per GPU and the header shows each GPU's memory while no job has loaded torch (about
870 MiB and seconds for a page that may only show the queue); NVML also never creates a CUDA context, so reading
it takes no VRAM from the jobs. CUDA_VISIBLE_DEVICES is honoured (indices or UUIDs), so index i here is the
device PyTorch calls cuda:i when CUDA_DEVICE_ORDER=PCI_BUS_ID (NVML's order; the studio sets nothing itself).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

_NVML_SUCCESS = 0


@dataclass(frozen=True)
class GpuInfo:
    index: int  # as PyTorch numbers it (cuda:index) within CUDA_VISIBLE_DEVICES
    name: str
    uuid: str
    total_bytes: int


@dataclass(frozen=True)
class GpuMemory:
    used_bytes: int
    total_bytes: int


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class _Nvml:
    """Loaded once per process, on first use; `lib` is None on machines without the NVIDIA driver. The devices
    are listed once too: the driver's device list does not change while a process runs, and the header asks for
    each GPU's memory every few seconds."""

    def __init__(self) -> None:
        self.lib: ctypes.CDLL | None = None
        names = ("nvml.dll",) if sys.platform == "win32" else ("libnvidia-ml.so.1", "libnvidia-ml.so")
        for name in names:
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                continue
            if lib.nvmlInit_v2() == _NVML_SUCCESS:
                self.lib = lib
                break
        self.devices = self._handles()

    def _handles(self) -> list[tuple[ctypes.c_void_p, str, str]]:
        """(handle, name, uuid) of every device the driver sees, in NVML (PCI bus) order."""
        if self.lib is None:
            return []
        count = ctypes.c_uint(0)
        if self.lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != _NVML_SUCCESS:
            return []
        out = []
        for i in range(count.value):
            handle = ctypes.c_void_p()
            if self.lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != _NVML_SUCCESS:
                continue
            name, uuid = ctypes.create_string_buffer(96), ctypes.create_string_buffer(96)
            self.lib.nvmlDeviceGetName(handle, name, 96)
            self.lib.nvmlDeviceGetUUID(handle, uuid, 96)
            out.append((handle, name.value.decode(errors="replace"), uuid.value.decode(errors="replace")))
        return out

    def memory(self, handle: ctypes.c_void_p) -> GpuMemory | None:
        mem = _Memory()
        if self.lib is None or self.lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)) != _NVML_SUCCESS:
            return None
        return GpuMemory(used_bytes=int(mem.used), total_bytes=int(mem.total))


_nvml: _Nvml | None = None
_nvml_lock = threading.Lock()


def _lib() -> _Nvml:
    global _nvml
    with _nvml_lock:
        if _nvml is None:
            _nvml = _Nvml()
        return _nvml


def _visible(handles: list[tuple[ctypes.c_void_p, str, str]], spec: str | None) -> list[int]:
    """NVML indices of the devices CUDA_VISIBLE_DEVICES leaves visible, in CUDA's numbering order."""
    if spec is None:
        return list(range(len(handles)))
    chosen: list[int] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            break
        if item.isdigit():
            n = int(item)
            if n >= len(handles):
                break  # CUDA stops at the first invalid entry, too
            chosen.append(n)
            continue
        match = [i for i, (_, _, uuid) in enumerate(handles) if uuid.startswith(item if item.startswith("GPU-")
                                                                                  else f"GPU-{item}")]
        if len(match) != 1:
            break
        chosen.append(match[0])
    return chosen


def parse_gpu_selection(text: str | None) -> str | tuple[int, ...]:
    """The one reading of the `gpus` setting and `--gpus` flag: "all", "none", or GPU numbers ("0, 2" -> (0, 2)).

    ValueError (a sentence naming the bad part) for anything else; whether those GPUs exist is the caller's check."""
    spec = (text or "all").strip().lower()
    if spec in ("all", "none"):
        return spec
    numbers: list[int] = []
    for item in (s.strip() for s in spec.split(",")):
        if not (item.isdigit() and len(item) <= 2):
            raise ValueError(f"{item!r} is not a GPU number: use all, none or GPU numbers like 0,2")
        if int(item) not in numbers:
            numbers.append(int(item))
    return tuple(numbers)


def visible_gpus() -> list[GpuInfo]:
    """The GPUs a worker may run on; [] without an NVIDIA driver (CPU machines, macOS)."""
    nvml = _lib()
    out = []
    for cuda_index, nvml_index in enumerate(_visible(nvml.devices, os.environ.get("CUDA_VISIBLE_DEVICES"))):
        handle, name, uuid = nvml.devices[nvml_index]
        mem = nvml.memory(handle)
        out.append(GpuInfo(index=cuda_index, name=name, uuid=uuid, total_bytes=mem.total_bytes if mem else 0))
    return out


def gpu_memory(index: int) -> GpuMemory | None:
    """Memory in use on visible GPU `index` (every process's, as nvidia-smi shows it); None when unknown."""
    nvml = _lib()
    visible = _visible(nvml.devices, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return nvml.memory(nvml.devices[visible[index]][0]) if index < len(visible) else None
