"""Joining a Ray cluster: one ready EngineActor per GPU (or per unit of a custom resource), one Worker each.

Ray is imported only here and only when asked (`app.py --cluster`): the studio without Ray works as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.settings import Settings

if TYPE_CHECKING:
    from studio.cluster.transfer import ActorInfo
    from studio.jobs.store import JobStore
    from studio.jobs.watch import PreviewWatch
    from studio.jobs.worker import Worker
    from studio.paths import DataPaths

log = logging.getLogger(__name__)

INSTALL_HINT = "--cluster needs Ray: pip install -r requirements-cluster.txt"
READY_TIMEOUT_S = 900.0  # loading real weights from a cold disk takes minutes; an actor with no free GPU never starts


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be used (Ray missing, no address reachable); the message says what to do."""


def require_ray() -> Any:
    """The ray module, or ClusterUnavailable saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterUnavailable(INSTALL_HINT) from exc
    return ray


def cluster_address(value: str | None) -> str:
    """--cluster's value, else RAY_ADDRESS, else "auto" (a cluster started on this machine with `ray start`)."""
    return (value or os.environ.get("RAY_ADDRESS") or "auto").strip()


@dataclass
class ClusterActor:
    """A usable actor: its worker name (also what a job names to run there), the Ray handle, what it said."""

    name: str
    actor: Any
    info: ActorInfo


def connect(address: str | None, settings: Settings, *, resource: str | None = None, hf_home: str | None = None,
            ready_timeout: float = READY_TIMEOUT_S, init_kwargs: dict | None = None) -> list[ClusterActor]:
    """Connects to the cluster (unless this process already did) and returns its usable actors.

    One actor per GPU of every alive node (`num_gpus=1`), or, with `resource`, one per unit of that custom
    resource (tests declare `fp_worker` on a CPU-only cluster). Each is checked with ready(), which loads the
    shared models: one that fails (no GPU, out of memory, missing weights) is logged with the reason, killed
    and left out. settings: resolved (absolute folders), as the Worker passes them to an engine."""
    ensure_connected(address, init_kwargs)
    units = cluster_units(resource)
    if units == 0:
        log.warning("the Ray cluster has no %s: no cluster worker", resource or "GPU")
        return []
    return start_actors(units, settings, resource=resource, hf_home=hf_home, ready_timeout=ready_timeout)


def ensure_connected(address: str | None, init_kwargs: dict | None = None) -> None:
    """Joins the cluster at `address` (cluster_address) unless this process already did."""
    ray = require_ray()
    if not ray.is_initialized():
        target = cluster_address(address)
        try:
            ray.init(address=target, **(init_kwargs or {}))
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterUnavailable(f"cannot reach the Ray cluster at {target!r}: {exc}") from exc


def cluster_units(resource: str | None = None) -> int:
    """GPUs (or units of `resource`) of the cluster's alive nodes: how many actors it can hold."""
    ray = require_ray()
    return int(sum(n["Resources"].get(resource or "GPU", 0) for n in ray.nodes() if n.get("Alive")))


def start_actors(count: int, settings: Settings, *, resource: str | None = None, hf_home: str | None = None,
                 ready_timeout: float = READY_TIMEOUT_S, taken: set[str] | frozenset[str] = frozenset()
                 ) -> list[ClusterActor]:
    """Starts `count` actors and returns the ones that became ready, each named "ray:<node ip>:<unit><n>" with
    the lowest n not in `taken` (names of workers that exist already) on its node."""
    ray = require_ray()
    from studio.cluster.actor import remote_class

    options = {"resources": {resource: 1}} if resource else {"num_gpus": 1}
    cls = remote_class(**options)
    actors = [cls.remote(hf_home=hf_home) for _ in range(count)]
    data = settings.model_dump(mode="json")
    pending = {a.ready.remote(data): a for a in actors}
    ready_refs, late = ray.wait(list(pending), num_returns=len(pending), timeout=ready_timeout)
    usable: list[ClusterActor] = []
    names = set(taken)
    unit = "gpu" if not resource else resource.replace(":", "_")
    for ref in ready_refs:
        actor = pending[ref]
        try:
            info = ray.get(ref)
        except Exception as exc:  # ActorNotReady inside RayTaskError, or the actor died starting
            reason = getattr(exc, "cause", None) or exc
            log.error("Ray worker left out: %s", str(reason).strip().splitlines()[0] if str(reason).strip()
                      else reason.__class__.__name__)
            ray.kill(actor)
            continue
        index = 0
        while f"ray:{info.node_ip}:{unit}{index}" in names:
            index += 1
        name = f"ray:{info.node_ip}:{unit}{index}"
        names.add(name)
        usable.append(ClusterActor(name, actor, info))
    for ref in late:
        log.error("Ray worker left out: not ready after %.0f s (no free %s, or its models still load)",
                  ready_timeout, resource or "GPU")
        ray.kill(pending[ref])
    for a in usable:
        log.info("Ray worker %s: %s (%s)%s", a.name, a.info.device_name, a.info.device,
                 f", {a.info.vram_total_mb / 1024:.0f} GiB" if a.info.vram_total_mb else "")
    return usable


def make_workers(actors: list[ClusterActor], store: JobStore, paths: DataPaths,
                 settings_provider: Callable[[], Settings], *, preview_watch: PreviewWatch | None = None,
                 poll_interval: float = 1.0, progress_interval: float = 0.25) -> list[Worker]:
    """One queue Worker per actor (not started), over the studio's one store: it claims a job, and the actor
    runs it. A job waits PENDING while no worker is free; one whose actor dies goes back to PENDING."""
    from studio.cluster.remote_engine import RayEngineProvider
    from studio.jobs.worker import Worker

    return [Worker(store, paths, settings_provider, RayEngineProvider(a.actor, a.name), poll_interval=poll_interval,
                   progress_interval=progress_interval, preview_watch=preview_watch, worker_name=a.name)
            for a in actors]
