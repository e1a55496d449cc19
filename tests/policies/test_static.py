"""Static provisioning: one replica count, whatever happens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.static import StaticError, StaticPolicy
from policies.types import Observation, Reason

observations = st.builds(
    Observation,
    at_s=st.floats(-1e9, 1e9),
    pending=st.integers(0, 10**7),
    in_flight=st.none() | st.integers(0, 10**5),
    ready=st.none() | st.integers(0, 1000),
    warming=st.none() | st.integers(0, 1000),
)


@given(replicas=st.integers(0, 1000), seen=st.lists(observations, max_size=30))
def test_static_never_changes(replicas: int, seen: list[Observation]) -> None:
    # Whatever the backlog does and whatever the cluster reports, the answer stays the same.
    policy = StaticPolicy(replicas)
    state = policy.initial_state()
    for observation in seen:
        decision, state = policy.decide(observation, state)
        assert decision.desired == replicas
        assert decision.reason is Reason.STATIC
        assert decision.metric_value == replicas
        assert decision.active is (replicas >= 1)


def test_static_speaks_the_policy_vocabulary() -> None:
    policy = StaticPolicy(4, label="static-peak")
    assert policy.name == "static-peak"
    assert policy.metric_target == 1.0
    decision, _ = policy.decide(Observation(at_s=0.0, pending=120), None)
    assert "4 replicas" in decision.detail
    assert "120 pending" in decision.detail


def test_negative_replicas_rejected() -> None:
    with pytest.raises(StaticError, match=r"^replicas"):
        StaticPolicy(-1)
