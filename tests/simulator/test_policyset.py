"""Building the compared policies from a scenario and a trace: one policy per model and entry,
sized from the trace where the kind says so, bad params named by their key path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from policies.config import Mode
from policies.queue_depth import QueueDepthPolicy
from policies.schedule import SchedulePolicy
from policies.static import StaticPolicy
from policies.types import Observation
from simulator.policyset import PolicySetError, build_policies
from simulator.scenario import Scenario
from simulator.traces.trace import Trace, build_trace

HOUR = 3600.0
DAY = 24 * HOUR


def scenario(policies: list[dict[str, Any]] | None = None, max_replicas: int = 50) -> Scenario:
    data: dict[str, Any] = {
        "models": {
            "small": {
                "served_model": "small",
                "node_pool": "gpu",
                "max_concurrency": 10,
                "policy": {"maxReplicas": max_replicas},
            },
            "big": {"served_model": "big", "node_pool": "gpu", "max_concurrency": 10},
        },
        "node_pools": {"gpu": {"instance_type": "g5.xlarge"}},
    }
    if policies is not None:
        data["policies"] = policies
    return Scenario.model_validate(data)


def trace() -> Trace:
    # Measured service 10 s on 10 slots: one replica serves 1 request/s, 0.8 at 80%.
    # small: Monday 10:00-10:05 (trace starts Monday 00:00 UTC), 600 requests = 2 req/s
    # -> ceil(2 / 0.8) = 3 replicas; Monday 22:00-22:05, 120 requests = 0.4 req/s -> 1.
    # big: one request at Saturday 03:00.
    busy = 10 * HOUR + np.arange(600) * 0.5
    night = 22 * HOUR + np.arange(120) * 2.5
    weekend = np.array([5 * DAY + 3 * HOUR])
    arrivals = np.concatenate([busy, night, weekend])
    model = np.array([0] * 720 + [1], dtype=np.int32)
    n = len(arrivals)
    return build_trace(
        arrivals,
        model,
        ["small", "big"],
        np.full(n, 200, np.int32),
        np.full(n, 180, np.int32),
        np.full(n, 10.0),
    )


def desired(policy: Any, at_s: float) -> int:
    decision, _ = policy.decide(Observation(at_s=at_s, pending=0), policy.initial_state())
    return int(decision.desired)


def test_default_list_gives_one_policy_per_model() -> None:
    built = build_policies(scenario(), trace())
    assert [(name, kind) for name, kind, _ in built] == [
        ("depthscale", "depthscale"),
        ("seed-rule", "depthscale"),
        ("keda-native", "keda-native"),
        ("business-hours", "schedule"),
        ("trailing-schedule", "trailing-schedule"),
        ("hindsight-schedule", "hindsight-schedule"),
        ("static-peak", "static-peak"),
    ]
    for name, _, per_model in built:
        assert set(per_model) == {"small", "big"}
        assert all(p.name == name for p in per_model.values())


def test_sizing_from_the_trace() -> None:
    built = {name: per_model for name, _, per_model in build_policies(scenario(), trace())}
    peak = built["static-peak"]
    assert isinstance(peak["small"], StaticPolicy)
    assert (peak["small"].replicas, peak["big"].replicas) == (3, 1)
    hindsight = built["hindsight-schedule"]["small"]
    assert isinstance(hindsight, SchedulePolicy)
    assert hindsight.replicas[10] == 3
    assert hindsight.replicas[22] == 1
    assert hindsight.replicas[12] == 0
    # Business hours: 3 replicas 08-20 on weekdays (the 10:00 peak), 1 otherwise (the 22:00 one).
    hours = built["business-hours"]["small"]
    assert desired(hours, 2 * DAY + 9 * HOUR) == 3  # Wednesday 09:00
    assert desired(hours, 2 * DAY + 21 * HOUR) == 1
    assert desired(hours, 5 * DAY + 12 * HOUR) == 1  # Saturday noon
    # big's only request fell on a Saturday: nothing inside business hours.
    assert desired(built["business-hours"]["big"], 9 * HOUR) == 0
    assert desired(built["business-hours"]["big"], 5 * DAY + 3 * HOUR) == 1


def test_keda_native_is_the_pending_passthrough() -> None:
    built = build_policies(scenario(), trace(), names=["keda-native"])
    policy = built[0][2]["small"]
    assert isinstance(policy, QueueDepthPolicy)
    assert policy.config.mode is Mode.PENDING
    assert policy.metric_target == 50.0
    assert desired(policy, 0.0) == 0
    decision, _ = policy.decide(Observation(at_s=0.0, pending=101), policy.initial_state())
    assert decision.desired == 3  # ceil(101 / 50)


def test_sizing_respects_max_replicas() -> None:
    built = build_policies(scenario(max_replicas=2), trace(), names=["static-peak"])
    assert built[0][2]["small"].replicas == 2  # type: ignore[attr-defined]


def test_explicit_params() -> None:
    policies = [
        {"name": "two", "kind": "static", "params": {"replicas": 2}},
        {
            "name": "office",
            "kind": "schedule",
            "params": {"peak": {"small": 5, "big": 4}, "off_peak": 0},
        },
        {
            "name": "strict",
            "kind": "depthscale",
            "params": {"scaleUpPending": 10, "scaleDownPending": 1},
        },
    ]
    built = {n: p for n, _, p in build_policies(scenario(policies), trace())}
    assert built["two"]["small"].replicas == 2  # type: ignore[attr-defined]
    assert built["two"]["big"].replicas == 2  # type: ignore[attr-defined]
    assert desired(built["office"]["small"], 9 * HOUR) == 5
    assert desired(built["office"]["big"], 9 * HOUR) == 4
    assert desired(built["office"]["big"], 7 * HOUR) == 0
    assert built["strict"]["small"].config.scale_up_pending == 10  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("label", "entry", "message"),
    [
        (
            "unknown param",
            {"name": "p", "kind": "static-peak", "params": {"windw_s": 60}},
            "policies.p.params.windw_s: unknown param",
        ),
        (
            "mapping misses a model",
            {"name": "s", "kind": "schedule", "params": {"peak": {"small": 1}}},
            "policies.s.params.peak: the mapping must name every model",
        ),
        (
            "bad time zone",
            {"name": "h", "kind": "hindsight-schedule", "params": {"timezone": "Mars/Olympus"}},
            "policies.h.params.timezone: unknown time zone",
        ),
        (
            "fractional peak",
            {"name": "b", "kind": "schedule", "params": {"peak": 2.5}},
            "policies.b.params.peak: expected an integer",
        ),
        (
            "bad threshold",
            {"name": "d", "kind": "depthscale", "params": {"scaleUpPending": -1}},
            "policies.d.params",
        ),
        (
            "window not dividing 15 minutes",
            {"name": "p", "kind": "static-peak", "params": {"window_s": 420}},
            "policies.p.params: window_s",
        ),
    ],
)
def test_bad_params_name_their_key(label: str, entry: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicySetError) as caught:
        build_policies(scenario([entry]), trace())
    assert str(caught.value).startswith(message), (label, str(caught.value))


def test_unknown_policy_name_lists_the_known() -> None:
    with pytest.raises(PolicySetError, match=r"no policy named nope \(known: depthscale"):
        build_policies(scenario(), trace(), names=["nope"])
