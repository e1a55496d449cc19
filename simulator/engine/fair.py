"""What makes a comparison fair and its limits visible: the warm start, the fluid ideal and the
warnings a run's report carries (docs/simulator.md, "A fair comparison").

- **Warm start.** Production fleets were running before the trace began. Schedules and static
  policies start with the replicas they hold at t=0; reactive policies with the replicas the
  opening traffic needs (``simulator.policyset.opening_replicas``), or more if their own rule
  asks for more on that traffic, and a state that has run at that count (``warm_state``).
- **Fluid ideal.** The cost of perfectly elastic capacity: every request's service time over a
  replica's batch slots, at the target utilization, at the price of a replica-hour.
- **Warnings.** A trace too short for reactive policies to leave their warm start, hour-of-day
  schedules on less than a day, a trailing schedule without a week of history.

Pure functions of the plan, the scenario and the policy objects: no clock, no files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from policies.queue_depth import QueueDepthPolicy
from policies.schedule import HISTORY_WEEK, DatedSchedulePolicy, replicas_for_rate
from policies.types import Observation
from simulator.engine.setup import ModelPolicy, ModelRun, Plan
from simulator.policyset import OPENING_S, opening_window_s
from simulator.results import TIME_BASED_KINDS
from simulator.scenario import Scenario

PROVISIONED_KINDS = ("schedule", "trailing-schedule", "hindsight-schedule", "static-peak", "static")
"""Kinds provisioned before the trace: they start with the replicas they hold at t=0."""

MIN_SPAN_CYCLES = 4
"""A comparison means little on a trace shorter than this many (longest scale-down window +
slowest warm-up): one for the policies to settle from their warm start, the rest for each to
scale up and back down a few times."""

DAY_S = 86400.0


def service_seconds(model: ModelRun) -> float:
    """Slot-seconds of service the model's requests need (the fluid ideal's numerator)."""
    return model.total_service_s


def requests_of(model: ModelRun) -> float:
    """Requests of the model in the trace."""
    return model.requests


def arrived_before(model: ModelRun, t_s: float) -> float:
    """Requests of the model that arrived before ``t_s`` seconds."""
    return float(model.arrived_before(np.array([t_s]))[0])


def replica_rps(model: ModelRun) -> float:
    """Requests/second one replica serves on this trace: its slots over the mean service time
    (as ``simulator.policyset`` sizes the trace-sized baselines); 0 without requests."""
    total, requests = service_seconds(model), requests_of(model)
    if total <= 0 or requests <= 0:
        return 0.0
    return model.concurrency * requests / total


def opening_need(model: ModelRun, scenario: Scenario, span_s: float) -> tuple[int, float]:
    """Replicas the model's opening traffic needs (within its minReplicas..maxReplicas), and
    that traffic's arrival rate, requests/second."""
    config = scenario.models[model.name].policy.to_policy_config()
    window = opening_window_s(span_s)
    rate = arrived_before(model, window) / window
    rps = replica_rps(model)
    need = replicas_for_rate(rate, rps, scenario.target_utilization) if rps > 0 else 0
    return max(config.min_replicas, min(config.max_replicas, need)), rate


def warm_counts(
    plan: Plan, scenario: Scenario, kind: str, objects: Sequence[ModelPolicy], span_s: float
) -> list[int]:
    """Replicas serving at t=0 per model for one policy entry (see the module docstring)."""
    counts = []
    for model, policy in zip(plan.models, objects, strict=True):
        if kind in PROVISIONED_KINDS:
            decision, _ = policy.decide(Observation(at_s=0.0, pending=0), policy.initial_state())
            counts.append(decision.desired)
            continue
        need, rate = opening_need(model, scenario, span_s)
        if need == 0:
            counts.append(0)
            continue
        # The rule's own view of that traffic, nothing queued: Little's law puts the arrival
        # rate x the mean service time in flight.
        in_flight = round(rate * _mean_service(model))
        steady = Observation(
            at_s=0.0, pending=0, in_flight=in_flight if model.counts_in_flight else None
        )
        decision, _ = policy.decide(steady, policy.warm_state(need))
        counts.append(max(need, decision.desired))
    return counts


def _mean_service(model: ModelRun) -> float:
    requests = requests_of(model)
    return service_seconds(model) / requests if requests > 0 else 0.0


def ideal_costs(plan: Plan, target_utilization: float) -> dict[str, float]:
    """Model name -> its fluid ideal, USD: service slot-seconds / (slots x utilization), in
    replica-hours, at the node price x gpus_per_replica / gpus_per_node."""
    out = {}
    for model in plan.models:
        pool = plan.pools[model.pool]
        replica_hours = service_seconds(model) / model.concurrency / target_utilization / 3600.0
        out[model.name] = replica_hours * pool.usd_per_hour * model.gpus / pool.gpus_per_node
    return out


def warm_assumption(entries: Sequence[tuple[str, list[int]]], names: Sequence[str]) -> str:
    """One line naming each policy's replicas at t=0."""
    parts = []
    for policy, counts in entries:
        if len(names) == 1:
            parts.append(f"{policy} {counts[0]}")
        else:
            per = ", ".join(f"{m} {n}" for m, n in zip(names, counts, strict=True))
            parts.append(f"{policy} ({per})")
    return (
        "warm start: schedules and static policies start with their t=0 replicas serving and "
        "their nodes up; reactive policies with the replicas the first "
        f"{OPENING_S / 60:g} minutes of traffic need (more if their own rule asks for more), "
        "their state as if they had run at that count, KEDA active and the HPA having "
        f"recommended it. Replicas at t=0: {'; '.join(parts)}"
    )


def warnings(
    span_s: float,
    plan: Plan,
    scenario: Scenario,
    entries: Sequence[tuple[str, str, Sequence[ModelPolicy]]],
) -> list[str]:
    """What limits this comparison, in sentences (empty when nothing does)."""
    out = []
    window = _longest_window(scenario, entries)
    warmup = max(
        (plan.pools[m.pool].launch_s[1] + m.startup_s[1] for m in plan.models), default=0.0
    )
    needed = MIN_SPAN_CYCLES * (window + warmup)
    if span_s < needed:
        out.append(
            f"The trace spans {_span(span_s)}, less than {MIN_SPAN_CYCLES} × (longest scale-down "
            f"window {window:g} s + slowest warm-up {warmup:g} s) = {_span(needed)}: the reactive "
            "policies barely leave their warm start, so treat the comparison as indicative only."
        )
    kinds = {kind for _, kind, _ in entries}
    if span_s < DAY_S and kinds & set(TIME_BASED_KINDS):
        out.append(
            f"The trace spans less than a day ({_span(span_s)}): hour-of-day schedules see "
            "each hour at most once, so the hindsight schedule holds each hour's own peak."
        )
    for name, _, objects in entries:
        dated = [p for p in objects if isinstance(p, DatedSchedulePolicy)]
        if not dated:
            continue
        last_day, _ = dated[0].day_hour(max(span_s - 1e-6, 0.0))
        history = dated[0].history[: last_day + 1]
        weekly = sum(1 for h in history if h == HISTORY_WEEK)
        if weekly < len(history):
            out.append(
                f"{name} had a previous week for {weekly} of the trace's {len(history)} days: "
                "its first day holds the opening traffic's replicas (no history at all), and "
                "days before a week of history are sized from the same hour of the previous "
                "days."
            )
    return out


def _longest_window(
    scenario: Scenario, entries: Sequence[tuple[str, str, Sequence[ModelPolicy]]]
) -> float:
    """The longest wait before a scale-down among the compared policies: a queue-depth
    policy's stabilization window, the HPA's scale-down window, KEDA's cooldown."""
    planes = [scenario.control_plane, *(p.control_plane for p in scenario.policies)]
    longest = 0.0
    for plane in planes:
        if plane is not None:
            longest = max(
                longest,
                float(plane.hpa.scale_down.stabilization_window_s),
                plane.keda.cooldown_period_s,
            )
    for _, _, objects in entries:
        for policy in objects:
            if isinstance(policy, QueueDepthPolicy):
                longest = max(longest, policy.config.stabilization_window_s)
    return longest


def _span(seconds: float) -> str:
    if seconds >= 2 * DAY_S:
        return f"{seconds / DAY_S:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"
