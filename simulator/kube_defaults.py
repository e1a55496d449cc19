"""KEDA's and Kubernetes' out-of-the-box settings: the one table the scenario's defaults and the
engine's HPA model both read.

Written in the objects' own field names, so each line can be checked against its source:

- KEDA ScaledObject ``spec.pollingInterval`` 30 s and ``spec.cooldownPeriod`` 300 s (KEDA's
  ScaledObject specification, https://keda.sh/docs/latest/reference/scaledobject-spec/).
- The HPA controller's sync period 15 s and tolerance 0.1 (kube-controller-manager
  ``--horizontal-pod-autoscaler-sync-period`` and ``--horizontal-pod-autoscaler-tolerance``,
  https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/).
- ``behavior.scaleUp`` and ``behavior.scaleDown`` as the API server fills them in
  (kubernetes ``pkg/apis/autoscaling/v2/defaults.go``, ``SetDefaults_HorizontalPodAutoscalerBehavior``):
  up at once, by max(100 %, 4 Pods) per 15 s; down after a 300 s window, by 100 % per 15 s.

No imports from the project: ``simulator.scenario`` and ``simulator.engine`` both import this.
"""

from __future__ import annotations

from typing import Final, Literal, TypedDict

__all__ = [
    "HPA_SCALE_DOWN",
    "HPA_SCALE_UP",
    "HPA_SYNC_PERIOD_S",
    "HPA_TOLERANCE",
    "KEDA_COOLDOWN_PERIOD_S",
    "KEDA_POLLING_INTERVAL_S",
    "HpaBehavior",
    "HpaRule",
]

KEDA_POLLING_INTERVAL_S: Final = 30.0
"""Seconds between KEDA's calls to the scaler (IsActive; GetMetrics comes with the HPA's sync)."""

KEDA_COOLDOWN_PERIOD_S: Final = 300.0
"""Seconds after the last active poll before KEDA scales the target to zero."""

HPA_SYNC_PERIOD_S: Final = 15.0
"""Seconds between the HPA controller's evaluations of each HPA."""

HPA_TOLERANCE: Final = 0.1
"""Relative deviation of the metric from its target that the HPA ignores, each direction."""


class HpaRule(TypedDict):
    """One ``behavior.scale*.policies`` entry: at most ``value`` Pods or percent per period."""

    type: Literal["Pods", "Percent"]
    value: int
    periodSeconds: int


class HpaBehavior(TypedDict):
    """``behavior.scaleUp`` or ``behavior.scaleDown`` (the window in seconds)."""

    stabilizationWindowSeconds: int
    selectPolicy: Literal["Max", "Min", "Disabled"]
    policies: tuple[HpaRule, ...]


HPA_SCALE_UP: Final[HpaBehavior] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": (
        {"type": "Percent", "value": 100, "periodSeconds": 15},
        {"type": "Pods", "value": 4, "periodSeconds": 15},
    ),
}

HPA_SCALE_DOWN: Final[HpaBehavior] = {
    "stabilizationWindowSeconds": 300,
    "selectPolicy": "Max",
    "policies": ({"type": "Percent", "value": 100, "periodSeconds": 15},),
}
