"""The Horizontal Pod Autoscaler's arithmetic for one external AverageValue metric.

A transcription of kubernetes ``pkg/controller/podautoscaler`` (horizontal.go,
replica_calculator.go) as the HPA applies it to a KEDA external metric:

1. proposal: ``ratio = usage / (target × replicas)``; inside ``[1 − tolDown, 1 + tolUp]`` keep
   ``replicas``, else ``desired = ceil(usage / target)`` (quantities at milli precision, as KEDA
   hands them over); with several metrics (a ScaledObject with several triggers), one proposal
   per metric and the largest goes on (horizontal.go ``computeReplicasForMetrics``);
2. stabilize: the history of *unstabilized* proposals; scale-up takes the lowest proposal within
   ``scaleUp.stabilizationWindowSeconds``, scale-down the highest within the scale-down window;
3. rate-limit: each Pods/Percent rule allows a change relative to the replica count at the
   start of its period (``periodSeconds``): the current count minus the scale-ups plus the
   scale-downs of that period, *both* directions' events counted over the rule's own period;
   ``selectPolicy`` Max picks the most permissive rule, Min the least, Disabled forbids the
   direction. Scale events are kept as upstream keeps them (``storeScaleEvent``): one older
   than its direction's longest period is only marked outdated, still counted by a longer period
   of the other direction, until a new event of its direction takes its slot;
4. clamp to ``[minReplicas, maxReplicas]``.

Unlike the upstream controller, every stage takes ``now_s`` from the caller (so tests can pin a
window's edges) and returns its reason. Replicas at zero mean "scaling disabled": KEDA owns 0 ↔ 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from simulator import kube_defaults as kube

INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Rule:
    """One rate-limit policy: at most ``value`` Pods (or percent of the period-start count) per
    ``period_s`` seconds."""

    kind: Literal["Pods", "Percent"]
    value: int
    period_s: float


@dataclass(frozen=True, slots=True)
class Direction:
    """``behavior.scaleUp`` or ``behavior.scaleDown``.

    window_s:  stabilization window, seconds, >= 0.
    rules:     rate-limit rules (none: unlimited).
    select:    Max (most permissive rule wins), Min (least permissive) or Disabled.
    tolerance: relative metric deviation swallowed in this direction, >= 0 (default 0.1).
    """

    window_s: float
    rules: tuple[Rule, ...]
    select: Literal["Max", "Min", "Disabled"] = "Max"
    tolerance: float = kube.HPA_TOLERANCE


def from_behavior(behavior: kube.HpaBehavior, tolerance: float = kube.HPA_TOLERANCE) -> Direction:
    """A ``behavior.scaleUp``/``scaleDown`` in Kubernetes' field names as a ``Direction``."""
    return Direction(
        window_s=float(behavior["stabilizationWindowSeconds"]),
        rules=tuple(
            Rule(r["type"], r["value"], float(r["periodSeconds"])) for r in behavior["policies"]
        ),
        select=behavior["selectPolicy"],
        tolerance=tolerance,
    )


# Kubernetes defaults, from the one table the scenario reads too.
DEFAULT_UP = from_behavior(kube.HPA_SCALE_UP)
DEFAULT_DOWN = from_behavior(kube.HPA_SCALE_DOWN)


@dataclass(frozen=True, slots=True)
class HpaSpec:
    """min_replicas/max_replicas: the HPA's bounds (KEDA sets min to max(minReplicaCount, 1))."""

    min_replicas: int
    max_replicas: int
    up: Direction = DEFAULT_UP
    down: Direction = DEFAULT_DOWN


@dataclass(frozen=True, slots=True)
class HpaStep:
    """One sync's outcome: ``replicas`` to set (== current when nothing changes), the proposal
    before stabilization, and the condition reason Kubernetes would report."""

    replicas: int
    proposal: int
    reason: str


def milli(value: float) -> int:
    """A metric value as KEDA hands it to the HPA: milli-units, truncated; NaN/Inf/negative → 0."""
    if not math.isfinite(value) or value <= 0:
        return 0
    return int(value * 1000)


def proposal(usage: float, target: float, replicas: int, tol_up: float, tol_down: float) -> int:
    """Step 1 (GetExternalPerPodMetricReplicas): replicas the metric asks for."""
    usage_m, target_m = milli(usage), max(milli(target), 1)
    ratio = usage_m / (target_m * replicas)
    if 1.0 - tol_down <= ratio <= 1.0 + tol_up:
        return replicas
    return math.ceil(usage_m / target_m)


@dataclass(slots=True)
class ScaleEvent:
    """One rescale the HPA made (upstream ``timestampedScaleEvent``).

    at_s:     when, seconds.
    change:   replicas added (a scale-up event) or removed (a scale-down event), > 0.
    outdated: found older than its direction's longest policy period when a later event of the
              same direction was stored; its slot is the next one reused, and until then it
              still counts in any period that reaches back to it.
    """

    at_s: float
    change: int
    outdated: bool = False


def store_event(events: list[ScaleEvent], rules: Direction, now_s: float, change: int) -> None:
    """storeScaleEvent for one direction: mark events older than the direction's longest policy
    period outdated (``markScaleEventsOutdated``: strictly before ``now − longest``), then put the
    new event in the slot of the last outdated one, or append it when none is."""
    cutoff = now_s - max((r.period_s for r in rules.rules), default=0.0)
    slot = -1
    for i, event in enumerate(events):
        if event.at_s < cutoff:
            event.outdated = True
        if event.outdated:
            slot = i
    if slot >= 0:
        events[slot] = ScaleEvent(now_s, change)
    else:
        events.append(ScaleEvent(now_s, change))


def _change_in_period(events: Sequence[ScaleEvent], now_s: float, period_s: float) -> int:
    """getReplicasChangePerPeriod: every kept event strictly after ``now − period``, outdated or
    not."""
    cutoff = now_s - period_s
    return sum(e.change for e in events if e.at_s > cutoff)


def scale_up_limit(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: Direction,
    now_s: float,
) -> int:
    """calculateScaleUpLimitWithScalingRules: the most replicas the rules allow now."""
    if rules.select == "Disabled":
        return current
    result = INT32_MAX if rules.select == "Min" else -INT32_MAX
    for rule in rules.rules:
        start = (
            current
            - _change_in_period(up_events, now_s, rule.period_s)
            + _change_in_period(down_events, now_s, rule.period_s)
        )
        if rule.kind == "Pods":
            proposed = start + rule.value
        else:
            proposed = math.ceil(start * (1 + rule.value / 100))
        result = min(result, proposed) if rules.select == "Min" else max(result, proposed)
    return result if rules.rules else INT32_MAX


def scale_down_limit(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: Direction,
    now_s: float,
) -> int:
    """calculateScaleDownLimitWithBehaviors: the fewest replicas the rules allow now."""
    if rules.select == "Disabled":
        return current
    result = -INT32_MAX if rules.select == "Min" else INT32_MAX
    for rule in rules.rules:
        start = (
            current
            - _change_in_period(up_events, now_s, rule.period_s)
            + _change_in_period(down_events, now_s, rule.period_s)
        )
        if rule.kind == "Pods":
            proposed = start - rule.value
        else:
            proposed = int(start * (1 - rule.value / 100))
        result = max(result, proposed) if rules.select == "Min" else min(result, proposed)
    return result if rules.rules else 0


@dataclass(slots=True)
class HpaController:
    """One HPA's memory: unstabilized proposals, (seconds, replicas), and its scale events."""

    spec: HpaSpec
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[ScaleEvent] = field(default_factory=list)
    down_events: list[ScaleEvent] = field(default_factory=list)
    _last_key: tuple[float, float, int] = (-1.0, -1.0, -1)  # memo of the last proposal's inputs
    _last_raw: int = 0

    def sync(
        self,
        now_s: float,
        current: int,
        usage: float,
        target: float,
        others: Sequence[tuple[float, float]] = (),
    ) -> HpaStep:
        """One reconcile at ``now_s`` with ``current`` spec replicas and the metric ``usage``
        (AverageValue ``target`` per replica). ``others``: further AverageValue metrics, as
        (usage, target), of the same HPA (a ScaledObject's further triggers): each gets its
        own proposal, tolerance included, and the largest proposal goes on
        (``computeReplicasForMetrics``)."""
        spec = self.spec
        if current == 0:
            return HpaStep(0, 0, "ScalingDisabled")
        if current > spec.max_replicas:
            return self._rescale(now_s, current, spec.max_replicas, current, "TooManyReplicas")
        if current < spec.min_replicas:
            return self._rescale(now_s, current, spec.min_replicas, current, "TooFewReplicas")
        key = (usage, target, current)
        if key == self._last_key:
            raw = self._last_raw
        else:
            raw = proposal(usage, target, current, spec.up.tolerance, spec.down.tolerance)
            self._last_key, self._last_raw = key, raw
        for other_usage, other_target in others:
            raw = max(
                raw,
                proposal(
                    other_usage, other_target, current, spec.up.tolerance, spec.down.tolerance
                ),
            )
        if raw == current:
            # Stabilization keeps ``current`` whatever the history (the lowest recent proposal
            # is <= current, the highest >= current), and no rate limit applies: only record.
            self.recommendations.append((now_s, raw))
            if len(self.recommendations) > 256:
                self._stabilize(now_s, current, raw)
                self.recommendations.pop()
            return HpaStep(current, raw, "ReadyForNewScale")
        stabilized, reason = self._stabilize(now_s, current, raw)
        limited, limit_reason = self._rate_limit(now_s, current, stabilized)
        if limited != stabilized:
            reason = limit_reason
        elif stabilized == raw:
            reason = "DesiredWithinRange" if raw != current else "ReadyForNewScale"
        return self._rescale(now_s, current, limited, raw, reason)

    def _stabilize(self, now_s: float, current: int, raw: int) -> tuple[int, str]:
        up_cut = now_s - self.spec.up.window_s
        down_cut = now_s - self.spec.down.window_s
        recs = self.recommendations
        # Entries are in time order: forget what neither window can still see (upstream reuses
        # the slot of one such old sample instead).
        horizon = min(up_cut, down_cut)
        drop = 0
        while drop < len(recs) and recs[drop][0] <= horizon:
            drop += 1
        if drop:
            del recs[:drop]
        up_rec = down_rec = raw
        for t, rec in recs:
            if t > up_cut and rec < up_rec:
                up_rec = rec
            if t > down_cut and rec > down_rec:
                down_rec = rec
        recs.append((now_s, raw))
        stabilized = min(max(current, up_rec), down_rec)
        reason = "ScaleUpStabilized" if raw >= current else "ScaleDownStabilized"
        return stabilized, reason

    def _rate_limit(self, now_s: float, current: int, desired: int) -> tuple[int, str]:
        spec = self.spec
        if desired > current:
            limit = max(
                scale_up_limit(current, self.up_events, self.down_events, spec.up, now_s), current
            )
            allowed = min(spec.max_replicas, limit)
            why = "ScaleUpLimit" if limit < spec.max_replicas else "TooManyReplicas"
            return (allowed, why) if desired > allowed else (desired, "DesiredWithinRange")
        if desired < current:
            limit = min(
                scale_down_limit(current, self.up_events, self.down_events, spec.down, now_s),
                current,
            )
            allowed = max(spec.min_replicas, limit)
            why = "ScaleDownLimit" if limit > spec.min_replicas else "TooFewReplicas"
            return (allowed, why) if desired < allowed else (desired, "DesiredWithinRange")
        return desired, "DesiredWithinRange"

    def _rescale(self, now_s: float, current: int, desired: int, raw: int, reason: str) -> HpaStep:
        if desired != current:
            self._store_event(now_s, current, desired)
        return HpaStep(desired, raw, reason)

    def _store_event(self, now_s: float, before: int, after: int) -> None:
        if after > before:
            store_event(self.up_events, self.spec.up, now_s, after - before)
        else:
            store_event(self.down_events, self.spec.down, now_s, before - after)
