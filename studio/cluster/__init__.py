"""Several machines: every GPU of a Ray cluster runs jobs of the one studio queue (docs/cluster.md).

Only `--cluster` imports anything here that needs Ray, and only then: `connect.py` checks Ray is installed
(requirements-cluster.txt) and says how to install it when it is not.

    transfer.py       what travels between the studio and an actor (job, work files, outputs) and the file
                      helpers on both sides
    actor.py          EngineActor: a Ray actor holding a resident engine on its GPU (runs on the worker machine)
    remote_engine.py  RemoteEngine / RayEngineProvider: the studio-side engine the unchanged Worker runs
    connect.py        joining the cluster, one ready actor per GPU, one Worker per actor
"""
