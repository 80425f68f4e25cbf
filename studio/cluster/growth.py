"""One actor per GPU of the cluster while the studio runs: a machine that joins gets actors, and an actor that died
is replaced (its job already went back to PENDING and resumes on another worker).

`app.py --cluster` connects (`join_service`), then checks every WATCH_S seconds until the studio closes. An actor
that cannot start (missing weights, no GPU memory) is left out with its reason logged, and is not tried again
until the cluster's count of GPUs changes (a machine joins or leaves), so a broken machine is not reloaded forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from studio.cluster.connect import (ClusterActor, cluster_units, ensure_connected, make_workers, require_ray,
                                    start_actors)
from studio.jobs.pool import PoolStopped

log = logging.getLogger(__name__)

WATCH_S = 15.0
RAY_PREFIX = "ray:"  # every cluster worker's name starts with it (connect.start_actors)


@dataclass
class ClusterGrowth:
    """Keeps a started QueueService's pool at one live Ray worker per unit (GPU, or `resource` in tests)."""

    service: Any  # QueueService
    resource: str | None = None
    poll_interval: float = 1.0
    progress_interval: float = 0.25
    _units: int = -1  # the cluster's units at the last step
    _left_out: int = 0  # actors that failed to start since the units last changed: not tried again until then

    def live(self) -> list[str]:
        """The names of the cluster workers that are not lost."""
        return [w.worker_name for w in self.service.workers.members
                if w.worker_name.startswith(RAY_PREFIX) and not w.lost.is_set()]

    def step(self) -> list[ClusterActor]:
        """Starts an actor for every unit that no live worker holds and adds its worker; returns the new actors."""
        units = cluster_units(self.resource)
        if units != self._units:
            if units == 0:
                log.warning("the Ray cluster has no %s: no cluster worker", self.resource or "GPU")
            self._units, self._left_out = units, 0
        missing = units - len(self.live()) - self._left_out
        if missing <= 0:
            return []
        settings = self.service.paths.resolved_settings(self.service.settings_provider())
        # A lost worker's name is free again: its replacement takes it (and the jobs pinned to it).
        actors = start_actors(missing, settings, resource=self.resource, taken=set(self.live()))
        self._left_out += missing - len(actors)
        return self._add(actors)

    def _add(self, actors: list[ClusterActor]) -> list[ClusterActor]:
        svc = self.service
        workers = make_workers(actors, svc.store, svc.paths, svc.settings_provider, preview_watch=svc.preview_watch,
                               poll_interval=self.poll_interval, progress_interval=self.progress_interval)
        added = []
        for actor, worker in zip(actors, workers):
            try:
                svc.workers.add(worker, label=f"{actor.info.device_name} ({actor.name})")
            except PoolStopped:  # the studio closed while the actor loaded its models
                require_ray().kill(actor.actor)
                continue
            added.append(actor)
        if added:
            log.info("cluster: %d Ray worker(s) take jobs: %s", len(added), ", ".join(a.name for a in added))
        return added

    def watch(self, interval: float = WATCH_S) -> None:
        """Steps every `interval` seconds until the service's workers stop."""
        while not self.service.workers.wait_stopped(interval):
            try:
                self.step()
            except Exception:  # the cluster is unreachable for a moment: the next step tries again
                log.exception("cluster: looking for new GPUs failed")


def join_service(service: Any, address: str | None, *, resource: str | None = None, poll_interval: float = 1.0,
                 progress_interval: float = 0.25, watch_s: float | None = None) -> list[ClusterActor]:
    """Connects and adds one Worker per usable actor to a started QueueService's worker pool (they start at
    once and claim from its queue); returns the actors. With `watch_s`, then keeps the pool growing with the
    cluster every watch_s seconds until the service closes (what `app.py --cluster` runs, on a thread of its
    own: ready() loads every actor's models, and the studio serves meanwhile)."""
    ensure_connected(address)
    growth = ClusterGrowth(service, resource, poll_interval, progress_interval)
    actors = growth.step()
    if watch_s is not None:
        growth.watch(watch_s)
    return actors
