"""The scaler the simulator runs is the scaler we deploy: one cluster history, two edges, the same
decisions.

The live edge is ``ScalerService`` on the fakes (hand clock, fake broker, fake replica source,
fake state store), asked once per control instant as KEDA and the HPA ask it. The simulator's
edge is its control loop: ``observe`` with the queue's counts and the cluster's ready/warming,
then the policy. Both start from the policy's initial state (no warm start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.observe import observe
from policies.queue_depth import QueueDepthPolicy
from policies.types import Decision, Observation, Reason
from scaler.kube import ReplicaCounts
from scaler.ports import Depth
from scaler.service import ScalerService
from simulator.engine.loop import simulate
from simulator.engine.setup import default_policies, per_model, plan
from simulator.scenario import PolicyThresholds
from tests.scaler.fakes import Clock, FakeBroker, FakeReplicas, FakeStore
from tests.simulator.engine_support import one_model_trace, scenario

Row = tuple[float, int, int | None, int | None, int | None]
"""(t seconds, pending, in_flight or None, ready or None, warming or None); ready None means the
counts are unknown (decisions mode, or the API could not be read)."""

THRESHOLDS = {
    "scaleUpPending": 5,
    "scaleDownPending": 1,
    "stabilizationWindowSeconds": 120,
    "warmupSeconds": 90,
    "includeUnacked": True,
    "maxReplicas": 10,
}


def live_decisions(thresholds: PolicyThresholds, history: Sequence[Row]) -> list[Decision]:
    """The live service's answer at each row: the broker and the replica source report the
    row's counts, the hand clock reads the row's time."""

    async def main() -> list[Decision]:
        clock, broker, replicas = Clock(), FakeBroker(), FakeReplicas()
        service = ScalerService({"main": broker}, FakeStore(), clock=clock, replicas=replicas)
        target = service.resolve(
            "models", "m", {"broker": "main", "queues": "m", **thresholds.to_metadata()}
        )
        out = []
        for at_s, pending, in_flight, ready, warming in history:
            clock.now = at_s
            broker.depth = Depth(pending, in_flight)
            replicas.counts_now = None if ready is None else ReplicaCounts(ready, warming or 0)
            out.append((await service.evaluate(target)).decision)
        await service.close()
        return out

    return asyncio.run(main())


def loop_decisions(thresholds: PolicyThresholds, history: Sequence[Row]) -> list[Decision]:
    """What the simulator's loop does at each evaluation: ``observe``, then the policy."""
    policy = QueueDepthPolicy(thresholds.to_policy_config())
    state = policy.initial_state()
    out = []
    for at_s, pending, in_flight, ready, warming in history:
        counts = None if ready is None else (ready, warming or 0)
        decision, state = policy.decide(observe(at_s, pending, in_flight, counts), state)
        out.append(decision)
    return out


def test_one_narrated_history_through_both_edges() -> None:
    thresholds = PolicyThresholds.model_validate(THRESHOLDS)
    history: list[Row] = [
        # t=0: a restarted scaler finds 3 replicas serving and a quiet queue.
        (0.0, 0, 0, 3, 0),
        # t=15 to t=45: a backlog builds; replicas asked for show up as warming.
        (15.0, 40, 12, 3, 0),
        (30.0, 90, 12, 3, 5),
        (45.0, 120, 12, 5, 3),
        # t=60: the Kubernetes API does not answer: the policy counts on its decisions.
        (60.0, 60, 12, None, None),
        # t=75 to t=300: the backlog is gone; later the HPA lags a scale-down, so the cluster
        # still reports more replicas than the last decision.
        (75.0, 0, 6, 8, 0),
        *((float(t), 0, 0, 8, 0) for t in range(90, 301, 15)),
        (315.0, 0, 0, 8, 0),
        (330.0, 0, 0, 7, 0),
    ]
    assert live_decisions(thresholds, history) == loop_decisions(thresholds, history)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.floats(5.0, 60.0),  # seconds since the previous evaluation (>= the 5 s cache)
            st.integers(0, 500),
            st.none() | st.integers(0, 100),
            st.none() | st.tuples(st.integers(0, 12), st.integers(0, 12)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_any_history_gets_the_same_decisions_from_both_edges(
    rows: list[tuple[float, int, int | None, tuple[int, int] | None]],
) -> None:
    history: list[Row] = []
    t = 0.0
    for gap, pending, in_flight, counts in rows:
        t += gap
        ready, warming = counts if counts is not None else (None, None)
        history.append((t, pending, in_flight, ready, warming))
    thresholds = PolicyThresholds.model_validate(THRESHOLDS)
    assert live_decisions(thresholds, history) == loop_decisions(thresholds, history)


TARGET = {
    **THRESHOLDS,
    "replicaConcurrency": 4,
    # a season short enough to learn within the run: 60 s slots of a 600 s period
    "seasonalPeriodsSeconds": [600.0],
    "seasonalSlotSeconds": 60.0,
    "seasonalFraction": 0.8,
}
"""The depthscale preset's capacity-target rule (in-flight counts and replicaConcurrency)."""


def simulated(
    replicas_from: str, policy: dict[str, object] = THRESHOLDS
) -> tuple[PolicyThresholds, list[tuple[Observation, Decision]]]:
    """A burst of 1,500 requests over 10 minutes, then a trickle, on replicas that take 60-90 s
    to come up; the HPA removes one pod per sync. Every evaluation's observation and decision."""
    rng = np.random.default_rng(1)
    arrival = np.sort(np.concatenate([rng.uniform(0, 600, 1500), rng.uniform(600, 1500, 150)]))
    sc = scenario(
        concurrency=4,
        launch_s=60.0,
        startup_s=30.0,
        policy=policy,
        control_plane={
            "replicas_from": replicas_from,
            "hpa": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
                }
            },
        },
        duration_s=2400.0,
    )
    run = simulate(
        plan(one_model_trace(arrival, 8.0), sc),
        per_model(default_policies(sc)[0], ["m"]),
        record_decisions=True,
    )
    return sc.models["m"].policy, run.decisions[0]


def replay(seen: list[tuple[Observation, Decision]]) -> list[Row]:
    return [(o.at_s, o.pending, o.in_flight, o.ready, o.warming) for o, _ in seen]


def test_a_simulated_run_replayed_through_the_live_service_decides_alike() -> None:
    thresholds, seen = simulated("kubernetes")
    # The loop passed the cluster's counts at every evaluation, and the run exercised what
    # they are for: replicas still warming, and a cluster behind the policy's last decision
    # (a scale-down the HPA has not carried out yet).
    assert all(o.ready is not None and o.warming is not None for o, _ in seen)
    assert any((o.warming or 0) > 0 for o, _ in seen)
    assert any(
        (o.observed_replicas or 0) > before.desired for (_, before), (o, _) in pairwise(seen)
    )
    assert live_decisions(thresholds, replay(seen)) == [d for _, d in seen]


def test_the_target_rule_replayed_through_the_live_service_decides_alike() -> None:
    thresholds, seen = simulated("kubernetes", TARGET)
    reasons = {d.reason for _, d in seen}
    # The run exercised the target rule's stages, the seasonal floor among them.
    assert sum("in the system" in d.detail for _, d in seen) > len(seen) // 2
    assert {Reason.SCALE_UP, Reason.SCALE_DOWN, Reason.SEASONAL_FLOOR} <= reasons
    assert live_decisions(thresholds, replay(seen)) == [d for _, d in seen]


def test_with_replicas_from_decisions_neither_edge_gets_counts() -> None:
    thresholds, seen = simulated("decisions")
    assert all(o.ready is None and o.warming is None for o, _ in seen)
    assert any(d.desired > 0 for _, d in seen)
    assert live_decisions(thresholds, replay(seen)) == [d for _, d in seen]
