"""Fidelity: the engine against queueing theory and against timelines worked out by hand.

Expected values come from formulas (Erlang C) or from the documented rules of KEDA, the HPA and
the node model, never from running the engine.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from policies.queue_depth import QueueDepthPolicy
from policies.state import QueueDepthState
from policies.static import StaticPolicy
from policies.types import Observation
from simulator import engine
from simulator.engine.loop import simulate
from simulator.engine.setup import default_policies, per_model, plan
from tests.simulator.engine_support import Steps, Until, one_model_trace, scenario


def erlang_c(c: int, lam: float, mu: float) -> tuple[float, float]:
    """M/M/c: (probability an arrival waits, mean wait in queue in seconds)."""
    a = lam / mu
    top = a**c / math.factorial(c) * c / (c - a)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait, p_wait / (c * mu - lam)


@pytest.mark.parametrize(("servers", "lam"), [(2, 1.0), (4, 2.0)])
def test_mean_wait_matches_erlang_c(servers: int, lam: float) -> None:
    # A million Poisson arrivals, exponential service of mean 1 s, concurrency 1, a static
    # replica count. Traffic starts at t=60 s, after KEDA (t=0) and the HPA (t=0, 15) have
    # brought the replicas up on nodes that launch and start instantly.
    n = 1_000_000
    rng = np.random.default_rng(7)
    arrival = 60.0 + np.cumsum(rng.exponential(1.0 / lam, n))
    trace = one_model_trace(arrival, rng.exponential(1.0, n))
    p_wait, mean_wait = erlang_c(servers, lam, 1.0)
    # With an SLO of 0 s, attainment is the share of requests that never waited: 1 - C.
    result = engine.run(
        trace, scenario(slo_wait_s=0.0), [("static", "static", StaticPolicy(servers))]
    )
    total = result.policies[0].total
    assert total.unserved == 0
    assert total.wait_s.mean == pytest.approx(mean_wait, rel=0.03)
    assert 1.0 - total.slo_attainment == pytest.approx(p_wait, rel=0.03)


def test_overloaded_single_slot_serves_in_order_until_the_end() -> None:
    # One slot, 10 s per request, a request every 0.5 s from t=0 for 10 minutes, the run ends
    # at t=600. The replica is ready at t=0 (instant node and start-up), so request k starts at
    # 10·k: starts 0, 10, ..., 590 are before the end -> 60 served; the wait of request k is
    # 10·k - 0.5·k = 9.5·k.
    arrival = np.arange(0.0, 600.0, 0.5)
    trace = one_model_trace(arrival, 10.0)
    result = engine.run(
        trace,
        scenario(duration_s=600.0, policy={"maxReplicas": 1}),
        [("one", "static", StaticPolicy(1))],
    )
    total = result.policies[0].total
    assert total.requests == arrival.size
    assert total.served == 60
    assert total.unserved == arrival.size - 60
    assert total.served + total.unserved == total.requests
    assert total.wait_s.max == pytest.approx(9.5 * 59)
    assert total.wait_s.mean == pytest.approx(9.5 * 29.5)


@pytest.mark.parametrize(("launch", "startup"), [(240.0, 60.0), (120.0, 0.0), (0.0, 90.0)])
def test_node_launch_and_startup_delay_readiness(launch: float, startup: float) -> None:
    # One request at t=1. The KEDA poll at t=30 sees it pending and activates the model: the pod
    # asks for a node at t=30, the node is ready at 30 + launch, the replica at
    # 30 + launch + startup, and the request waits that minus its arrival.
    trace = one_model_trace([1.0], 5.0)
    sc = scenario(launch_s=launch, startup_s=startup, duration_s=1800.0)
    result = engine.run(trace, sc)
    policy = result.policies[0]
    assert policy.total.wait_s.max == pytest.approx(30.0 + launch + startup - 1.0)
    assert policy.total.node_launches == 1
    series = policy.series["m"]
    ready_at = 30.0 + launch + startup
    assert np.all(series.replicas_ready[series.t_s < ready_at] == 0)
    assert series.replicas_ready[np.searchsorted(series.t_s, ready_at)] == 1


def test_warm_buffer_node_lets_a_replica_skip_the_launch() -> None:
    # A pool keeping one spare node: its placeholder's node is launched at t=0 and ready at 240.
    # A request at t=401 is seen at the t=420 poll; the replica preempts the placeholder on the
    # ready node and serves at 420 + 60 (start-up): wait 79 s. The evicted placeholder asks for
    # a new node, so two nodes were launched. Without the buffer: 420 + 240 + 60 - 401 = 319 s.
    trace = one_model_trace([401.0], 5.0)
    common = {"launch_s": 240.0, "startup_s": 60.0, "duration_s": 1800.0}
    with_buffer = engine.run(trace, scenario(pool={"warm_buffer": {"nodes": 1}}, **common))
    without = engine.run(trace, scenario(**common))
    assert with_buffer.policies[0].total.wait_s.max == pytest.approx(79.0)
    assert with_buffer.policies[0].total.node_launches == 2
    assert without.policies[0].total.wait_s.max == pytest.approx(319.0)
    assert without.policies[0].total.node_launches == 1


def test_cooldown_to_zero_then_consolidation_sets_the_bill() -> None:
    # The policy wants 1 replica until t=600, then none. KEDA: active at t=0 (0 -> 1, node
    # launched at 0), last active at the t=570 poll, inactive after; 570 + 300 < t first holds
    # at the t=900 poll -> scaled to 0 at 900. The idle replica goes at once, its node is empty
    # from 900 and removed 900 s later, at 1800. Bill: 1800 s × $2/h = $1.00.
    trace = one_model_trace([10.0], 1.0)
    result = engine.run(
        trace,
        scenario(price=2.0, duration_s=3600.0),
        [("until", "static", Until(1, 600.0))],
    )
    total = result.policies[0].total
    assert total.node_hours == pytest.approx(0.5)
    assert total.cost_usd == pytest.approx(1.0)
    assert total.scale_events == 2
    desired = result.policies[0].series["m"]
    assert desired.replicas_desired[desired.t_s == 840.0][0] == 1
    assert desired.replicas_desired[desired.t_s == 900.0][0] == 0


def test_scale_down_drains_requests_in_service() -> None:
    # As above, but a 100 s request arrives at t=880 on the replica that KEDA removes at 900:
    # it finishes (graceful drain) at 980, so the node is empty from 980 and removed at the
    # first control instant at or after 980 + 900 = 1880, which is 1890 (15 s grid).
    trace = one_model_trace([880.0], 100.0)
    result = engine.run(
        trace,
        scenario(price=3600.0, duration_s=3600.0),
        [("until", "static", Until(1, 600.0))],
    )
    total = result.policies[0].total
    assert total.served == 1
    assert total.wait_s.max == 0.0
    assert total.cost_usd == pytest.approx(1890.0)


def _bursty_trace(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.sort(rng.uniform(0.0, 6 * 3600.0, 20_000))
    burst = np.sort(rng.uniform(3600.0, 3900.0, 6_000))
    arrival = np.sort(np.concatenate([base, burst]))
    return arrival, rng.exponential(4.0, arrival.size)


def _spot_scenario(seed: int):  # type: ignore[no-untyped-def]
    return scenario(
        concurrency=8,
        gpus_per_node=4,
        launch_s={"low": 180.0, "high": 300.0},
        startup_s={"low": 60.0, "high": 120.0},
        pool={"capacity_type": "spot", "spot_interruptions_per_hour": 0.5},
        seed=seed,
    )


def test_same_seed_same_result_and_every_request_accounted() -> None:
    arrival, service = _bursty_trace(3)
    trace = one_model_trace(arrival, service)
    first = engine.run(trace, _spot_scenario(11))
    second = engine.run(trace, _spot_scenario(11))
    other = engine.run(trace, _spot_scenario(12))
    a, b = first.policies[0], second.policies[0]
    assert a.total == b.total
    assert a.per_model == b.per_model
    assert a.reasons == b.reasons
    for name in (
        "t_s",
        "arrival_rps",
        "queue_depth",
        "replicas_desired",
        "replicas_ready",
        "nodes",
    ):
        assert np.array_equal(getattr(a.series["m"], name), getattr(b.series["m"], name))
    for result in (first, other):
        total = result.policies[0].total
        assert total.requests == arrival.size
        assert total.served + total.unserved == total.requests
    # Another seed draws other launch delays and interruptions.
    assert other.policies[0].total.node_hours != a.total.node_hours


def test_spot_interruptions_replace_replicas() -> None:
    # Interruptions every ~2 hours per node over 6 hours: nodes are reclaimed and replacements
    # launched, while the Deployment's replica count never drops because of them.
    arrival, service = _bursty_trace(5)
    trace = one_model_trace(arrival, service)
    spot = engine.run(trace, _spot_scenario(1)).policies[0]
    assert spot.total.served == arrival.size
    on_demand = engine.run(
        trace,
        scenario(
            concurrency=8,
            gpus_per_node=4,
            launch_s={"low": 180.0, "high": 300.0},
            startup_s={"low": 60.0, "high": 120.0},
            seed=1,
        ),
    ).policies[0]
    assert spot.total.node_launches > on_demand.total.node_launches


def test_simulated_decisions_equal_direct_policy_calls() -> None:
    # The engine calls the policy objects of policies/; fed the same observations, a fresh
    # policy (its state stored and read back between calls, as the live scaler does through its
    # state store) decides exactly the same, reason and detail included.
    arrival, service = _bursty_trace(9)
    trace = one_model_trace(arrival, service)
    sc = _spot_scenario(2)
    the_plan = plan(trace, sc)
    run = simulate(the_plan, per_model(default_policies(sc)[0], ["m"]), record_decisions=True)
    seen = run.decisions[0]
    assert len(seen) == int(the_plan.is_eval.sum())
    policy = QueueDepthPolicy(sc.models["m"].policy.to_policy_config())
    state = policy.initial_state()
    for obs, decision in seen:
        direct, state = policy.decide(obs, state)
        state = QueueDepthState.from_dict(state.to_dict())
        assert direct == decision, obs
    reasons = {d.reason.value for _, d in seen}
    assert "activate" in reasons
    assert len(reasons) >= 3  # the run exercised more than one branch of the policy


def test_no_warm_up_cascade() -> None:
    # A cold start into steady traffic (20 requests/s) while GPU nodes take 3-5 minutes and pods
    # 1-2 more. The backlog grows linearly while capacity warms; a loop that ignored capacity
    # on its way would keep multiplying replicas every poll (aibrix#2670). The policy's
    # documented bound: desired <= ceil((pending + growth · lookahead) / scaleUpPending), where
    # growth cannot exceed the arrival rate. maxReplicas is high so no cap hides a cascade.
    lam, lookahead, per_replica = 20.0, 300.0, 50.0
    rng = np.random.default_rng(1)
    n = int(lam * 3600)
    arrival = 60.0 + np.sort(rng.uniform(0.0, 3600.0, n))
    trace = one_model_trace(arrival, rng.exponential(1.0, n))
    sc = scenario(
        concurrency=8,
        gpus_per_node=8,
        launch_s={"low": 180.0, "high": 300.0},
        startup_s={"low": 60.0, "high": 120.0},
        duration_s=3600.0,
        policy={"maxReplicas": 5000},
    )
    the_plan = plan(trace, sc)
    run = simulate(the_plan, per_model(default_policies(sc)[0], ["m"]), record_decisions=True)
    # The scaler sees no replica counts (as live); nothing can serve before the first arrival
    # (60 s) plus the fastest node launch (180 s) and pod start-up (60 s).
    first_ready_s = 60.0 + 180.0 + 60.0
    warming: list[tuple[Observation, int]] = []
    for obs, decision in run.decisions[0]:
        if obs.pending > 0 and obs.at_s < first_ready_s:
            warming.append((obs, decision.desired))
    assert len(warming) >= 5  # several polls happen while nothing serves yet
    for obs, desired in warming:
        bound = math.ceil((obs.pending + lam * 1.5 * lookahead) / per_replica)
        assert desired <= bound, (obs, desired)
    # ... and never grows geometrically: no poll more than doubles the previous ask.
    asks = [d for _, d in warming]
    assert all(b <= 2 * a for a, b in pairwise(asks) if a > 0)


def _hpa(tolerance: float) -> dict[str, object]:
    rules = [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    return {
        "hpa": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": rules, "tolerance": tolerance},
            "scaleDown": {
                "stabilizationWindowSeconds": 0,
                "policies": rules,
                "tolerance": tolerance,
            },
        }
    }


@pytest.mark.parametrize(("tolerance", "after"), [(0.1, 10), (0.0, 11)])
def test_policy_step_from_10_to_11_meets_the_hpa_tolerance(tolerance: float, after: int) -> None:
    # The policy wants 10 replicas, then 11 from t=600. Its metric is the desired count with
    # target 1, so the HPA sees 11 / (1 × 10) = 1.1: inside the default 0.1 tolerance the
    # Deployment stays at 10 (kubernetes pkg/controller/podautoscaler); with a tolerance of 0 it follows to 11.
    sc = scenario(duration_s=1200.0, control_plane=_hpa(tolerance))
    result = engine.run(
        one_model_trace([1.0], 1.0), sc, [("steps", "static", Steps(((0.0, 10), (600.0, 11))))]
    )
    series = result.policies[0].series["m"]
    assert series.replicas_desired[series.t_s == 540.0][0] == 10
    assert series.replicas_desired[-1] == after
