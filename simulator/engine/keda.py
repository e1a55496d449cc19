"""KEDA's own scaling for one ScaledObject: activation at zero and cooldown to zero.

KEDA (pkg/scaling/executor/scale_scaledobjects.go) acts only at the 0 ↔ N edges; the HPA does the
rest (kedacore/keda v2.20: externalscaler.proto and the metrics adapter). At every polling interval, with ``isActive`` from the external scaler:

- active and the target at 0 replicas → scale to max(minReplicaCount, 1);
- active otherwise → remember this instant as the last active time;
- inactive, replicas > 0, minReplicaCount 0, and the last active time more than
  ``cooldownPeriod`` ago (or never active) → scale to 0, possibly straight from N (keda#7770);
- inactive below minReplicaCount → scale to minReplicaCount.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class KedaController:
    """cooldown_s: cooldownPeriod, seconds. min_replicas: minReplicaCount, >= 0.
    last_active_s: last poll that found the scaler active, None if never."""

    cooldown_s: float
    min_replicas: int = 0
    last_active_s: float | None = None

    def poll(self, now_s: float, active: bool, current: int) -> int | None:
        """The replica count KEDA sets at this poll, or None when KEDA leaves it to the HPA."""
        if active:
            self.last_active_s = now_s
            if current == 0:
                return max(self.min_replicas, 1)
            return None
        if current > 0 and self.min_replicas == 0:
            if self.last_active_s is None or self.last_active_s + self.cooldown_s < now_s:
                return 0
            return None
        if current < self.min_replicas:
            return self.min_replicas
        return None
