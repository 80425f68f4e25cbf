"""One CPU copy per process of weights that several workers load (the same file, model set and dtype).

The first worker registers its copy under a key naming the weights; each later one adopts it only after checking
that it holds the same values, and its own copy is then freed. A copy that differs stays the worker's own, and
the registered one stays the one later workers share. Copies are held weakly: one lives only while some worker
still uses it. Used for streamed transformer blocks (streaming.HOST_BLOCKS) and for the encoders and VAE that
wait in RAM between uses (offload.HOST_COPIES)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

C = TypeVar("C")  # the shared copy (weakly referenceable)
R = TypeVar("R")  # what a worker gets back (its view of the copy)


class SharedCopies(Generic[C, R]):
    def __init__(self, what: str) -> None:
        self.what = what  # for the log line
        self._lock = threading.Lock()
        self._copies: weakref.WeakValueDictionary[Hashable, C] = weakref.WeakValueDictionary()
        self.adopted = 0  # how often a worker reused another's copy (tests, logs)

    def share(self, key: Hashable, make: Callable[[], tuple[R, C]], adopt: Callable[[C], R | None]) -> R:
        """adopt(copy): the worker's result on the registered copy, or None when the values differ (nothing
        changed). make(): the worker's own copy, as (result, copy to register)."""
        with self._lock:
            copy = self._copies.get(key)
            if copy is None:
                result, copy = make()
                self._copies[key] = copy
                return result
            adopted = adopt(copy)
            if adopted is not None:
                self.adopted += 1
                return adopted
            log.warning("%s %s differs from the shared copy; keeping its own", self.what, key)
            return make()[0]
