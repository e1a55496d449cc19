"""The policy's one way in: an ``Observation`` built from what an edge counted.

Both edges build it here. The live scaler (``scaler/service.py``) passes its broker read and,
with ``serve --replicas-from kubernetes``, the ready and warming replicas of the ScaledObject's
target; the simulator's control loop passes its queue's counts and, with the scenario's
``control_plane.replicas_from: kubernetes``, its cluster's counts for the model's Deployment. So
the scaler the simulator runs is fed as the deployed one is.

Nothing is adjusted on the way: an unknown count stays None (the policy then counts on its own
past decisions), and replicas above the policy's last decision (a scale-down the HPA has not
carried out yet) are discounted by the policy itself, the one place that knows that decision.
"""

from __future__ import annotations

from typing import Literal, get_args

from policies.types import Observation

ReplicasFrom = Literal["decisions", "kubernetes"]
"""Where the policy learns how many replicas run: ``decisions``, its own past decisions (no
counts in the observation); ``kubernetes``, the counts the cluster reports."""

REPLICA_SOURCES: tuple[str, ...] = get_args(ReplicasFrom)
"""The values of ``ReplicasFrom``, in order: the choices of ``serve --replicas-from`` and of
the scenario's ``replicas_from``."""


def observe(
    at_s: float, pending: int, in_flight: int | None, replicas: tuple[int, int] | None
) -> Observation:
    """What the policy sees at ``at_s`` (seconds).

    pending:   tasks waiting in the broker, >= 0.
    in_flight: tasks taken by a worker and not finished, >= 0; None when the edge does not count
               them (``includeUnacked`` off).
    replicas:  (ready, warming) replicas of the model's workload, each >= 0; None when unknown
               (``decisions``, or the count could not be read).

    Raises ``ValueError`` for a negative count, as ``Observation`` does.
    """
    if replicas is None:
        return Observation(at_s=at_s, pending=pending, in_flight=in_flight)
    ready, warming = replicas
    return Observation(
        at_s=at_s, pending=pending, in_flight=in_flight, ready=ready, warming=warming
    )
