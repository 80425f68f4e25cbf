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
    ray = require_ray()
    from studio.cluster.actor import remote_class

    if not ray.is_initialized():
        target = cluster_address(address)
        try:
            ray.init(address=target, **(init_kwargs or {}))
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterUnavailable(f"cannot reach the Ray cluster at {target!r}: {exc}") from exc
    key = resource or "GPU"
    units = int(sum(n["Resources"].get(key, 0) for n in ray.nodes() if n.get("Alive")))
    if units == 0:
        log.warning("the Ray cluster has no %s: no cluster worker", key)
        return []
    options = {"resources": {resource: 1}} if resource else {"num_gpus": 1}
    cls = remote_class(**options)
    actors = [cls.remote(hf_home=hf_home) for _ in range(units)]
    data = settings.model_dump(mode="json")
    pending = {a.ready.remote(data): a for a in actors}
    ready_refs, late = ray.wait(list(pending), num_returns=len(pending), timeout=ready_timeout)
    usable: list[ClusterActor] = []
    per_node: dict[str, int] = {}
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
        index = per_node.get(info.node_ip, 0)
        per_node[info.node_ip] = index + 1
        unit = "gpu" if not resource else resource.replace(":", "_")
        usable.append(ClusterActor(f"ray:{info.node_ip}:{unit}{index}", actor, info))
    for ref in late:
        log.error("Ray worker left out: not ready after %.0f s (no free %s, or its models still load)",
                  ready_timeout, key)
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


def join_service(service: Any, address: str | None, *, resource: str | None = None, poll_interval: float = 1.0,
                 progress_interval: float = 0.25) -> list[ClusterActor]:
    """Connects and adds one Worker per usable actor to a started QueueService's worker pool (they start at
    once and claim from its queue); returns the actors. What `app.py --cluster` runs, on a thread of its own:
    ready() loads every actor's models, and the studio serves meanwhile."""
    settings = service.paths.resolved_settings(service.settings_provider())
    actors = connect(address, settings, resource=resource)
    workers = make_workers(actors, service.store, service.paths, service.settings_provider,
                           preview_watch=service.preview_watch, poll_interval=poll_interval,
                           progress_interval=progress_interval)
    for actor, worker in zip(actors, workers):
        service.workers.add(worker, label=f"{actor.info.device_name} ({actor.name})")
    if actors:
        log.info("cluster: %d Ray worker(s) take jobs: %s", len(actors), ", ".join(a.name for a in actors))
    return actors
