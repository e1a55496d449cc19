"""Properties of any run, over generated small scenarios: spot, buffers, node limits, policies
that jump around. Whatever happens, requests are conserved and served in order."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine.loop import simulate
from simulator.engine.setup import plan
from tests.simulator.engine_support import Steps, one_model_trace, scenario

steps = st.lists(st.tuples(st.floats(0.0, 7200.0), st.integers(0, 6)), min_size=1, max_size=6).map(
    lambda xs: Steps(tuple(sorted(xs)))
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=steps,
    seed=st.integers(0, 2**16),
    concurrency=st.integers(1, 4),
    gpus_per_node=st.sampled_from([1, 2, 4]),
    max_nodes=st.one_of(st.none(), st.integers(1, 3)),
    spot_rate=st.sampled_from([0.0, 2.0]),
    buffer=st.one_of(st.none(), st.just({"nodes": 1}), st.just({"target_utilization": 0.5})),
)
def test_any_run_conserves_requests_and_serves_them_in_order(
    policy: Steps,
    seed: int,
    concurrency: int,
    gpus_per_node: int,
    max_nodes: int | None,
    spot_rate: float,
    buffer: dict[str, object] | None,
) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    arrival = np.sort(rng.uniform(0.0, 7200.0, n))
    service = rng.exponential(20.0, n)
    pool: dict[str, object] = {
        "capacity_type": "spot" if spot_rate else "on-demand",
        "spot_interruptions_per_hour": spot_rate,
        "max_nodes": max_nodes,
        "consolidate_after_s": 300.0,
    }
    if buffer is not None:
        pool["warm_buffer"] = buffer
    sc = scenario(
        concurrency=concurrency,
        gpus_per_node=gpus_per_node,
        launch_s={"low": 60.0, "high": 240.0},
        startup_s={"low": 0.0, "high": 90.0},
        pool=pool,
        seed=seed,
    )
    the_plan = plan(one_model_trace(arrival, service), sc)
    run = simulate(the_plan, [policy])
    queue = run.queues[0]
    start = queue.start_times()
    served = queue.started()
    # Served requests are exactly a prefix (FCFS), each started at or after its arrival and
    # before the end, in non-decreasing order; the rest never started.
    assert np.all(~np.isnan(start[:served]))
    assert np.all(np.isnan(start[served:]))
    assert np.all(start[:served] >= arrival[:served])
    assert np.all(np.diff(start[:served]) >= 0)
    assert served == 0 or start[served - 1] < the_plan.end_s
    # Nodes and cost are non-negative and the books close.
    pools = run.cluster.pools
    assert all(p.node_s >= 0 for p in pools)
    assert all(not p.nodes for p in pools)  # finish() billed every node
    if max_nodes is not None:
        assert run.nodes[0].max() <= max_nodes
