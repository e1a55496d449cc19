"""The fair start: a fleet provisioned before the trace (schedules, static counts), reactive
policies in the steady state of their rule for the opening traffic, the fluid ideal, and the
warnings that say when a comparison means little."""

from __future__ import annotations

import numpy as np
import pytest

from policies.queue_depth import QueueDepthPolicy
from policies.state import QueueDepthState
from policies.static import StaticPolicy
from simulator import engine
from simulator.engine.cluster import Cluster, PoolSpec
from simulator.engine.queue import ModelQueue
from tests.simulator.engine_support import one_model_trace, scenario

LAUNCH_S = 200.0
STARTUP_S = 100.0


def test_provision_serves_at_t0_without_launches() -> None:
    # Two-GPU nodes, one-GPU replicas: three provisioned replicas fill two nodes, all ready at 0.
    queue = ModelQueue(np.zeros(0), np.zeros(0), 1)
    pool = PoolSpec("p", gpus_per_node=2, usd_per_hour=1.0, launch_s=(LAUNCH_S, LAUNCH_S))
    cluster = Cluster([pool], [0], [1], [(STARTUP_S, STARTUP_S)], [queue], seed=0)
    assert cluster.provision(0, 3, 0.0) == 3
    assert cluster.ready_warming(0, 0.0) == (3, 0)
    assert cluster.nodes_in_pool(0) == 2
    assert cluster.pools[0].launches == 0
    # One more replica, asked for at 60 s, fits on the half-empty node: start-up only.
    cluster.set_replicas(0, 4, 60.0)
    assert cluster.ready_warming(0, 60.0 + STARTUP_S) == (4, 0)
    assert cluster.nodes_in_pool(0) == 2


def test_provision_stops_at_the_pool_cap() -> None:
    queue = ModelQueue(np.zeros(0), np.zeros(0), 1)
    pool = PoolSpec("p", gpus_per_node=1, usd_per_hour=1.0, max_nodes=2)
    cluster = Cluster([pool], [0], [1], [(0.0, 0.0)], [queue], seed=0)
    assert cluster.provision(0, 5, 0.0) == 2
    assert cluster.replicas(0) == 2


@pytest.mark.parametrize(("warm", "first_wait_s"), [(False, LAUNCH_S + STARTUP_S), (True, 0.0)])
def test_a_static_fleet_is_up_when_the_trace_starts(warm: bool, first_wait_s: float) -> None:
    # A request at t=0 on "static 1": cold, it waits for a node launch and a pod start-up;
    # warm, the replica was already serving.
    sc = scenario(launch_s=LAUNCH_S, startup_s=STARTUP_S, duration_s=1800.0, warm_start=warm)
    result = engine.run(one_model_trace([0.0], 1.0), sc, [("s", "static", StaticPolicy(1))])
    assert result.policies[0].total.wait_s.max == pytest.approx(first_wait_s)
    assert result.policies[0].total.node_launches == (0 if warm else 1)
    line = next(a for a in result.assumptions if "start" in a and "t=0" in a)
    assert ("warm start" in line) is warm


def test_reactive_policy_starts_sized_for_the_opening_traffic() -> None:
    # 2 requests/second of 10 s each on 1-slot replicas: 20 slots busy; at 0.8 utilization the
    # opening traffic needs 25 replicas. The policy starts there and nothing queues in its
    # first window (cold, the first requests would wait for a node and a pod).
    arrivals = np.arange(0.0, 3600.0, 0.5)
    sc = scenario(launch_s=LAUNCH_S, startup_s=STARTUP_S, warm_start=True)
    policy = QueueDepthPolicy(sc.models["m"].policy.to_policy_config())
    result = engine.run(one_model_trace(arrivals, 10.0), sc, [("d", "depthscale", policy)])
    series = result.policies[0].series["m"]
    assert series.replicas_ready[0] == 25
    first_window = series.t_s <= 600.0
    assert series.queue_depth[first_window].max() == 0
    assert any("d 25" in a for a in result.assumptions)


def test_warm_state_holds_the_count_it_is_given() -> None:
    policy = QueueDepthPolicy()
    assert policy.warm_state(7) == QueueDepthState(desired=7, warming_from=7)
    assert StaticPolicy(3).warm_state(9) is None


def test_fluid_ideal_is_service_time_over_slots_at_utilization() -> None:
    # 100 requests of 36 s on replicas of 2 slots, 2 GPUs each, on 4-GPU nodes at $8/node-hour:
    # 3600 slot-seconds = 1800 replica-seconds, /0.8 = 2250 s = 0.625 replica-hours at $4.
    sc = scenario(concurrency=2, gpus_per_replica=2, gpus_per_node=4, price=8.0)
    trace = one_model_trace(np.arange(100) * 60.0, 36.0)
    result = engine.run(trace, sc, [("s", "static", StaticPolicy(1))])
    assert result.ideal_cost_usd == {"m": pytest.approx(2.5)}


def test_short_trace_and_missing_history_are_warned() -> None:
    # Twenty minutes of traffic: shorter than four windows plus warm-ups, shorter than a day,
    # and the trailing schedule has no previous week.
    from simulator.policyset import build_policies

    sc = scenario(launch_s=LAUNCH_S, startup_s=STARTUP_S)
    sc = sc.model_copy(
        update={
            "policies": tuple(
                p for p in sc.policies if p.kind in ("depthscale", "trailing-schedule")
            )
        }
    )
    trace = one_model_trace(np.arange(0.0, 1200.0, 2.0), 1.0)
    result = engine.run(trace, sc, build_policies(sc, trace))
    text = " ".join(result.warnings)
    assert "less than 4 ×" in text
    assert "less than a day" in text
    assert "trailing-schedule had a previous week for 0 of the trace's 1 days" in text


def test_a_long_trace_has_no_length_warning() -> None:
    sc = scenario(launch_s=LAUNCH_S, startup_s=STARTUP_S, duration_s=2 * 86400.0)
    trace = one_model_trace(np.arange(0.0, 2 * 86400.0, 600.0), 1.0)
    result = engine.run(trace, sc, [("s", "static", StaticPolicy(1))])
    assert result.warnings == []
