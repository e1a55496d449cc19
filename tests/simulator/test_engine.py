"""The engine's public surface and its bookkeeping: exported names, errors, progress, shared
pools, empty traces, and agreement with an independent SimPy model of the serving side."""

from __future__ import annotations

import numpy as np
import pytest

import simulator.engine
from benchmarks.simpy_reference import SimpyQueue
from policies.static import StaticPolicy
from simulator import engine
from simulator.engine.loop import simulate
from simulator.engine.queue import ModelQueue
from simulator.engine.setup import default_policies, per_model, plan
from simulator.results import savings_table
from simulator.scenario import Scenario
from simulator.traces.trace import Trace
from tests.simulator.engine_support import one_model_trace, scenario


def test_exported_names() -> None:
    assert set(simulator.engine.__all__) == {
        "DRAIN_S",
        "EngineError",
        "PolicyTriple",
        "run",
    }


def two_model_trace(n: int = 4000, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0.0, 4 * 3600.0, n))
    model = (rng.random(n) < 0.3).astype(np.int32)
    tokens = rng.integers(50, 400, n).astype(np.int32)
    return Trace(
        arrival_s=arrival,
        model=model,
        models=("big", "small"),
        input_tokens=tokens,
        output_tokens=tokens,
    )


def shared_pool_scenario(**pool: object) -> Scenario:
    return Scenario.model_validate(
        {
            "models": {
                "big": {"served_model": "big", "node_pool": "p", "gpus_per_replica": 2},
                "small": {"served_model": "small", "node_pool": "p", "gpus_per_replica": 1},
            },
            "node_pools": {
                "p": {
                    "instance_type": "p4d.24xlarge",
                    "gpus_per_node": 4,
                    "price_per_hour": {"on_demand": 10.0, "spot": 4.0},
                    **pool,
                }
            },
            "seed": 3,
        }
    )


def test_unknown_trace_model_is_an_engine_error() -> None:
    trace = two_model_trace()
    sc = scenario()  # serves only "m"
    with pytest.raises(engine.EngineError, match="'big'"):
        engine.run(trace, sc)


def test_missing_policy_for_a_model_is_an_engine_error() -> None:
    trace = two_model_trace()
    with pytest.raises(engine.EngineError, match="small"):
        engine.run(trace, shared_pool_scenario(), [("s", "static", {"big": StaticPolicy(1)})])


def test_shared_pool_cost_splits_and_adds_up() -> None:
    result = engine.run(two_model_trace(), shared_pool_scenario())
    policy = result.policies[0]
    total = policy.total
    big, small = policy.per_model["big"], policy.per_model["small"]
    assert big.cost_usd + small.cost_usd == pytest.approx(total.cost_usd)
    assert big.node_hours + small.node_hours == pytest.approx(total.node_hours)
    assert big.gpu_hours + small.gpu_hours == pytest.approx(total.gpu_hours)
    # Node-hours × $10 and × 4 GPUs per node.
    assert total.cost_usd == pytest.approx(10.0 * total.node_hours)
    assert total.gpu_hours == pytest.approx(4.0 * total.node_hours)
    assert total.requests == big.requests + small.requests == 4000
    assert 0.0 < total.utilization <= 1.0


def test_savings_against_time_based_baselines() -> None:
    trace = two_model_trace()
    result = engine.run(
        trace,
        shared_pool_scenario(),
        [
            ("few", "static", StaticPolicy(1)),
            ("hours", "schedule", StaticPolicy(3)),
        ],
    )
    few, hours = result.policies
    assert 0 < few.total.cost_usd < hours.total.cost_usd  # one replica against three
    expected = 100.0 * (hours.total.cost_usd - few.total.cost_usd) / hours.total.cost_usd
    assert savings_table(result.policies) == {
        "few": {"hours": pytest.approx(expected)},
        "hours": {"hours": pytest.approx(0.0)},
    }


def test_progress_runs_from_0_to_1_over_all_policies() -> None:
    seen: list[float] = []
    engine.run(
        one_model_trace([5.0, 100.0], 1.0),
        scenario(duration_s=3600.0),
        [("a", "static", StaticPolicy(1)), ("b", "static", StaticPolicy(2))],
        progress=seen.append,
    )
    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    assert any(0.4 < f < 0.6 for f in seen)


def test_empty_trace_runs_and_costs_nothing_under_queue_depth() -> None:
    empty = one_model_trace(np.zeros(0), 1.0)
    result = engine.run(empty, scenario())
    total = result.policies[0].total
    assert (total.requests, total.served, total.unserved) == (0, 0, 0)
    assert total.cost_usd == 0.0
    assert result.duration_s == engine.DRAIN_S


def test_series_cover_the_run_on_the_sampling_grid() -> None:
    result = engine.run(one_model_trace([10.0, 20.0], 1.0), scenario(duration_s=1800.0))
    series = result.policies[0].series["m"]
    np.testing.assert_array_equal(series.t_s, np.arange(0.0, 1801.0, 60.0))
    # Two arrivals in (0, 60]: 2/60 requests per second in the first interval after t=0.
    assert series.arrival_rps[1] == pytest.approx(2.0 / 60.0)
    assert series.arrival_rps.sum() * 60.0 == pytest.approx(2.0)


@pytest.mark.parametrize("buffer", [None, {"nodes": 1}])
def test_compiled_queue_agrees_with_simpy_model(buffer: dict[str, int] | None) -> None:
    # The same control loop driving the compiled queue and a SimPy process-per-slot model:
    # every request starts at the same instant in both.
    trace = two_model_trace(n=6000, seed=4)
    pool = {"launch_s": {"low": 180.0, "high": 300.0}}
    if buffer is not None:
        pool["warm_buffer"] = buffer
    sc = shared_pool_scenario(**pool)
    the_plan = plan(trace, sc)
    names = [m.name for m in the_plan.models]
    runs = [
        simulate(the_plan, per_model(default_policies(sc)[0], names), make_queue=factory)
        for factory in (ModelQueue, SimpyQueue)
    ]
    for fast, slow in zip(runs[0].queues, runs[1].queues, strict=True):
        np.testing.assert_allclose(fast.start_times(), slow.start_times(), rtol=0, atol=1e-9)
    assert runs[0].scale_events == runs[1].scale_events


@pytest.mark.parametrize(("replicas", "nodes"), [(3, 2), (4, 2), (5, 3), (8, 3)])
def test_warm_buffer_by_target_utilization(replicas: int, nodes: int) -> None:
    # 4-GPU nodes, 1-GPU replicas, keep real use <= 80% of the pool's GPUs with whole-node
    # placeholders: spare GPUs = ceil(used / 0.8) - used, one placeholder node per 4 of them.
    # 3 or 4 used -> 1 spare GPU -> 1 placeholder node beside the 1 node serving: 2 nodes.
    # 5 used (2 serving nodes) -> ceil(6.25) - 5 = 2 spare -> 1 placeholder node: 3 nodes.
    # 8 used (2 full nodes) -> 2 spare -> 1 placeholder node: 3 nodes.
    sc = scenario(
        gpus_per_node=4,
        duration_s=1800.0,
        policy={"maxReplicas": 10},
        pool={"warm_buffer": {"target_utilization": 0.8}},
    )
    result = engine.run(
        one_model_trace([100.0], 1.0), sc, [("s", "static", StaticPolicy(replicas))]
    )
    series = result.policies[0].series["m"]
    assert series.replicas_ready[-1] == replicas
    assert series.nodes[-1] == nodes


def test_pool_node_limit_leaves_pods_pending() -> None:
    # One-GPU nodes, at most 2 in the pool, 3 replicas wanted: the third pod never schedules,
    # so 2 replicas serve and the Deployment still counts 3.
    sc = scenario(duration_s=1800.0, pool={"max_nodes": 2})
    result = engine.run(one_model_trace([100.0], 1.0), sc, [("s", "static", StaticPolicy(3))])
    policy = result.policies[0]
    series = policy.series["m"]
    assert series.replicas_desired[-1] == 3
    assert series.replicas_ready[-1] == 2
    assert series.nodes.max() == 2
    assert policy.total.node_launches == 2


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_measured_service_time_is_an_engine_error(bad: float) -> None:
    trace = one_model_trace([1.0, 2.0, 3.0], [1.0, bad, 1.0])
    with pytest.raises(engine.EngineError, match=r"request 1 .* service time"):
        engine.run(trace, scenario())
