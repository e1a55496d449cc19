"""A policy entry with its own control plane runs under it; the others keep the scenario's."""

from __future__ import annotations

import pytest

from simulator.engine import run
from simulator.scenario import PolicySpec
from tests.simulator.engine_support import Until, one_model_trace, scenario


def test_a_policy_with_its_own_cooldown_keeps_its_replica_that_much_longer() -> None:
    # One request at t=10 s; both policies want one replica until t=600 s, then none. KEDA scales
    # to zero only after cooldownPeriod of inactivity: 60 s for the scenario, 3,600 s for "long".
    sc = scenario(control_plane={"keda": {"cooldownPeriod": 60}}, duration_s=7200.0)
    long_cp = sc.control_plane.model_copy(
        update={"keda": sc.control_plane.keda.model_copy(update={"cooldown_period_s": 3600.0})}
    )
    sc = sc.model_copy(
        update={
            "policies": (
                PolicySpec(name="short", kind="static", params={"replicas": 1}),
                PolicySpec(
                    name="long", kind="static", params={"replicas": 1}, control_plane=long_cp
                ),
            )
        }
    )
    trace = one_model_trace([10.0], 1.0)
    result = run(
        trace, sc, [("short", "static", Until(1, 600.0)), ("long", "static", Until(1, 600.0))]
    )
    by_name = {p.name: p for p in result.policies}
    extra_h = by_name["long"].total.gpu_hours - by_name["short"].total.gpu_hours
    # 3,600 - 60 s more of one GPU, give or take a KEDA poll (30 s) at either end
    assert extra_h == pytest.approx((3600 - 60) / 3600, abs=60 / 3600)
    assert any(
        line.startswith("long runs with its own control plane") for line in result.assumptions
    )
    assert not any(line.startswith("short runs") for line in result.assumptions)
