"""observe: the one place either edge (live scaler, simulator) builds the policy's Observation."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.observe import REPLICA_SOURCES, ReplicasFrom, observe
from policies.types import Observation

counts = st.integers(0, 10**6)


@given(
    at_s=st.floats(-1e9, 1e9),
    pending=counts,
    in_flight=st.none() | counts,
    replicas=st.none() | st.tuples(counts, counts),
)
def test_counts_pass_through_and_unknown_stays_unknown(
    at_s: float, pending: int, in_flight: int | None, replicas: tuple[int, int] | None
) -> None:
    obs = observe(at_s, pending, in_flight, replicas)
    assert (obs.at_s, obs.pending, obs.in_flight) == (at_s, pending, in_flight)
    if replicas is None:
        # Unknown replicas are None, not 0: the policy then counts on its own decisions.
        assert (obs.ready, obs.warming, obs.observed_replicas) == (None, None, None)
    else:
        # Reported as they are, even above what the policy last asked for: discounting a
        # scale-down in progress is the policy's job, the only place that knows its decision.
        assert (obs.ready, obs.warming) == replicas
        assert obs.observed_replicas == sum(replicas)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((0.0, -1, None, None), id="pending"),
        pytest.param((0.0, 0, -1, None), id="in-flight"),
        pytest.param((0.0, 0, None, (-1, 0)), id="ready"),
        pytest.param((0.0, 0, None, (0, -1)), id="warming"),
    ],
)
def test_a_negative_count_is_refused(
    args: tuple[float, int, int | None, tuple[int, int] | None],
) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        observe(*args)


def test_replica_sources_are_the_literal_values() -> None:
    # The scenario and `serve --replicas-from` take their choices from this one tuple.
    assert REPLICA_SOURCES == get_args(ReplicasFrom) == ("decisions", "kubernetes")


def test_an_observation_is_an_observation() -> None:
    assert observe(5.0, 3, None, (2, 1)) == Observation(5.0, 3, None, 2, 1)
