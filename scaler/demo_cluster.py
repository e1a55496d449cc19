"""The demo's stand-in for Kubernetes and vLLM: replicas that warm up, then drain tasks.

Pure and clock-free: every method takes ``now_s`` (seconds). ``depthscale demo`` feeds it the
replica count KEDA + HPA would set and asks how many tasks the ready replicas served since the
last tick. It models just enough to see the policy work: a new replica serves ``warmup_s`` after
it was asked for (GPU node launch + image pull + weight load, scaled down for the
demo), a scale-down removes the youngest replicas first (warming ones before serving ones), and a
ready replica serves ``tasks_per_s`` tasks a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def hpa_replicas(active: bool, metric_value: float, target: float) -> int:
    """Replicas KEDA + HPA would set from one poll (AverageValue): 0 when inactive, else
    ``max(1, ceil(metric / target))``. The HPA's 10% tolerance and behavior windows are left out:
    in replicas mode the policy owns stabilization (docs/scaler.md)."""
    if not active:
        return 0
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target}")
    return max(1, math.ceil(metric_value / target - 1e-9))


@dataclass
class ModelReplicas:
    """One model's Deployment.

    warmup_s:    seconds from request to serving, >= 0.
    tasks_per_s: tasks one ready replica finishes per second, > 0.
    ready_at_s:  when each replica serves (seconds), oldest first.
    """

    warmup_s: float
    tasks_per_s: float
    ready_at_s: list[float] = field(default_factory=list)
    _carry: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_s < 0:
            raise ValueError(f"warmup_s must be >= 0, got {self.warmup_s}")
        if not self.tasks_per_s > 0:
            raise ValueError(f"tasks_per_s must be > 0, got {self.tasks_per_s}")

    def scale_to(self, replicas: int, now_s: float) -> None:
        """Set the replica count: new ones start warming now, removals take the youngest."""
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        while len(self.ready_at_s) < replicas:
            self.ready_at_s.append(now_s + self.warmup_s)
        del self.ready_at_s[replicas:]

    def ready(self, now_s: float) -> int:
        return sum(1 for at in self.ready_at_s if at <= now_s)

    def warming(self, now_s: float) -> int:
        return len(self.ready_at_s) - self.ready(now_s)

    def capacity(self, now_s: float, dt_s: float) -> int:
        """Whole tasks the ready replicas can take in the ``dt_s`` seconds ending at ``now_s``;
        a fraction carries over to the next tick, unused whole tasks do not."""
        self._carry += self.ready(now_s) * self.tasks_per_s * max(dt_s, 0.0)
        whole = int(self._carry)
        self._carry -= whole
        return whole
