"""The vocabulary every policy speaks: an observation in, a decision (with its reason) out.

Pure data: no I/O, no clock, no protobuf. Time arrives as ``at_s`` (seconds, any fixed origin:
Unix time in the live scaler, simulated seconds in the simulator) and is never read here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class Observation:
    """What the edge saw for one model at one instant.

    at_s:      time of the observation, seconds.
    pending:   tasks waiting in the broker for this model (all its queues and priority lists), >= 0.
    in_flight: tasks a worker has taken but not finished (Celery's reserved/unacked), >= 0;
               None when the edge does not count them.
    ready:     replicas serving now, >= 0; None when the edge does not know (the live scaler
               without the Kubernetes API: the policy then trusts its own past decisions).
    warming:   replicas that exist or were requested but are not serving yet (node launch, image
               pull, weight load), >= 0; None when unknown.
    """

    at_s: float
    pending: int
    in_flight: int | None = None
    ready: int | None = None
    warming: int | None = None

    def __post_init__(self) -> None:
        if self.pending < 0:
            raise ValueError(f"pending must be >= 0, got {self.pending}")
        for name in ("in_flight", "ready", "warming"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")

    @property
    def observed_replicas(self) -> int | None:
        """ready + warming when the edge reported either, else None."""
        if self.ready is None and self.warming is None:
            return None
        return (self.ready or 0) + (self.warming or 0)


class Reason(enum.StrEnum):
    """Why a decision came out as it did. Values are stable: they label logs and metrics."""

    ACTIVATE = "activate"  # at zero replicas, work arrived: wake up at once
    SCALE_UP = "scale-up"  # pending per replica above the up threshold
    SCALE_UP_LOOKAHEAD = "scale-up-lookahead"  # backlog expected when new capacity is ready
    SCALE_UP_IN_FLIGHT = "scale-up-in-flight"  # in-flight work (projected) fills the replicas
    HOLD_WARMING = "hold-warming"  # above threshold, but capacity on its way covers it
    HOLD = "hold"  # between the thresholds
    HOLD_STABILIZING = "hold-stabilizing"  # below the down threshold, window not yet elapsed
    HOLD_IN_FLIGHT = "hold-in-flight"  # would step down, but in-flight work needs the replicas
    HOLD_MIN = "hold-min"  # would step down, already at minReplicas
    SEASONAL_FLOOR = "seasonal-floor"  # earlier days' load at this time (one warm-up ahead)
    SCALE_DOWN = "scale-down"  # below the down threshold for a whole window: one step down
    SCALE_TO_ZERO = "scale-to-zero"  # idle through a whole window with minReplicas 0
    IDLE = "idle"  # at zero and nothing pending
    CAPPED_MAX = "capped-max"  # the rules wanted more than maxReplicas
    PASSTHROUGH = "passthrough"  # pending mode: the raw pending count is the metric
    SCHEDULE = "schedule"  # time-based policy: the schedule says so
    STATIC = "static"  # fixed replica count


@dataclass(frozen=True, slots=True)
class Decision:
    """What a policy wants for one model.

    desired:      replicas the policy wants, >= 0.
    reason:       why (stable enum, for metrics).
    detail:       one human sentence with the numbers behind the reason (for logs).
    metric_value: the value to hand KEDA/HPA for this decision (replicas mode: desired replicas;
                  pending mode: the pending count).
    """

    desired: int
    reason: Reason
    detail: str
    metric_value: float

    @property
    def active(self) -> bool:
        """KEDA's IsActive: true exactly when the policy wants at least one replica."""
        return self.desired >= 1


S = TypeVar("S")


class Policy(Protocol[S]):
    """Every policy, live or simulated, has this shape.

    name:          short identifier used in reports and logs.
    metric_target: the target value KEDA puts in the HPA (AverageValue per replica), > 0.
    """

    @property
    def name(self) -> str: ...

    @property
    def metric_target(self) -> float: ...

    def initial_state(self) -> S: ...

    def warm_state(self, replicas: int) -> S:
        """The state of this policy after running steadily at ``replicas`` (>= 0) replicas, all
        ready: a simulation's warm start. The live scaler starts from ``initial_state``."""
        ...

    def decide(self, observation: Observation, state: S) -> tuple[Decision, S]: ...
