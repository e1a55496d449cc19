"""The capacity-target rule (the depthscale preset), narrated in time: a hand-driven clock, one
observation per KEDA poll."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.config import DEPTHSCALE, QueueDepthConfig
from policies.queue_depth import QueueDepthPolicy
from policies.state import QueueDepthState
from policies.types import Decision, Observation, Reason

SLOTS = 256  # vLLM's max_num_seqs: a replica is full at 256 tasks in flight


def cfg(**kw: Any) -> QueueDepthConfig:
    """The shipped preset on 256-slot replicas; the seasonal floor off unless a test wants it."""
    return replace(DEPTHSCALE, **{"replica_concurrency": SLOTS, "seasonal_fraction": 0.0, **kw})


class Clocked:
    """The scaler with ``--replicas-from kubernetes`` in front of a cluster that follows its
    decisions at once: every replica it asked for is ready at the next observation (unless a
    test passes ``ready``/``warming`` itself)."""

    def __init__(self, config: QueueDepthConfig, replicas: int = 0) -> None:
        self.policy = QueueDepthPolicy(config)
        self.state: QueueDepthState = self.policy.warm_state(replicas)
        self.now = 0.0

    def observe(self, pending: int, in_flight: int, **kw: int | None) -> Decision:
        kw = {"ready": self.state.desired, "warming": 0, **kw}
        obs = Observation(self.now, pending, in_flight=in_flight, **kw)
        decision, self.state = self.policy.decide(obs, self.state)
        return decision

    def hold_for(self, seconds: float, pending: int, in_flight: int, step: float = 5.0) -> Decision:
        end = self.now + seconds
        decision = self.observe(pending, in_flight)
        while self.now + step <= end:
            self.now += step
            decision = self.observe(pending, in_flight)
        return decision


def test_sizes_to_the_work_in_the_system_with_headroom_in_whole_replicas() -> None:
    c = Clocked(cfg(headroom=0.1), replicas=20)
    # 20 replicas' worth of work in flight: 20 full, 22 with 10% headroom.
    d = c.hold_for(120, pending=0, in_flight=20 * SLOTS)
    assert d.desired == 22
    # 2.4 replicas' worth on a fresh policy: ceil gives 3, which already holds 25% spare; the
    # headroom (0.24 of a replica) rounds away instead of adding a fourth.
    small = Clocked(cfg(headroom=0.1), replicas=2)
    assert small.hold_for(120, pending=0, in_flight=round(2.4 * SLOTS)).desired == 3


def test_a_step_up_counts_before_it_moves_the_window_mean() -> None:
    quick, slow = Clocked(cfg(), 11), Clocked(cfg(react_to_recent=False), 11)
    for c in (quick, slow):
        c.hold_for(120, pending=0, in_flight=10 * SLOTS)
    # The load doubles: the 11 replicas run full (11 x 256 in flight) and the rest queues.
    # Thirty seconds in, the 120 s window's mean has moved by a quarter of the step, its last
    # quarter by all of it: the reacting policy sizes for the new level at once.
    for c in (quick, slow):
        c.now += 5
        c.hold_for(25, pending=9 * SLOTS, in_flight=11 * SLOTS)
    assert quick.observe(9 * SLOTS, 11 * SLOTS).desired >= 20
    assert slow.observe(9 * SLOTS, 11 * SLOTS).desired < 20


def test_scale_down_waits_a_window_then_goes_to_its_busiest_moment() -> None:
    c = Clocked(cfg(headroom=0.0), replicas=30)
    c.hold_for(300, pending=0, in_flight=30 * SLOTS)
    assert c.state.desired == 30
    # The load halves. For a whole stabilization window the policy holds 30: the window still
    # remembers proposals for 30.
    c.now += 5
    d = c.hold_for(590, pending=0, in_flight=15 * SLOTS)
    assert (d.desired, d.reason) == (30, Reason.HOLD_STABILIZING)
    # Once the window has only seen the lower load, one step goes straight to 15, not 29.
    c.now += 140
    d = c.observe(0, 15 * SLOTS)
    assert (d.desired, d.reason) == (15, Reason.SCALE_DOWN)


def test_idle_model_goes_to_zero_after_a_window_with_nothing_to_do() -> None:
    c = Clocked(cfg(), replicas=3)
    c.hold_for(300, pending=0, in_flight=3 * SLOTS)
    # The work stops at 305 s. The growth window (120 s) still averages it in for a while, and
    # the stabilization window (600 s) remembers those proposals: the model keeps replicas for
    # at least a whole idle window, and goes to zero once nothing remembers any work.
    stopped = c.now + 5
    zero_at = None
    while zero_at is None and c.now < stopped + 1200:
        c.now += 5
        d = c.observe(0, 0)
        if d.desired == 0:
            zero_at = c.now
            assert (d.reason, d.active) == (Reason.SCALE_TO_ZERO, False)
    assert zero_at is not None
    assert stopped + 600 <= zero_at <= stopped + 600 + 120 + 5
    # Work at zero wakes the model at once.
    c.now += 5
    d = c.observe(12, 0)
    assert (d.reason, d.active) == (Reason.ACTIVATE, True)


def test_without_in_flight_counts_the_threshold_rule_decides() -> None:
    # No includeUnacked: an empty queue may hide busy workers, so no target sizing (which would
    # drop six replicas at once); the threshold rule probes one step per window.
    c = Clocked(cfg())
    decision, _ = c.policy.decide(
        Observation(0.0, 0, in_flight=None, ready=6, warming=0), c.policy.initial_state()
    )
    assert decision.desired == 6
    assert "in the system" not in decision.detail


def test_scale_up_is_limited_until_capacity_on_its_way_is_ready() -> None:
    c = Clocked(cfg(headroom=0.0), replicas=5)
    c.hold_for(120, pending=0, in_flight=5 * SLOTS)
    # A sudden backlog worth 100 replicas: at most twice the 5 serving (or +4).
    d = c.observe(95 * SLOTS, 5 * SLOTS)
    assert d.desired == 10
    assert (
        "scale-up capped at 10 this step: at most 2× the 5 serving replicas, or 4 more" in d.detail
    )


def test_the_seasonal_floor_prewarms_a_ramp_seen_on_the_previous_day() -> None:
    day = 86400.0
    c = Clocked(cfg(seasonal_fraction=1.0, seasonal_periods_s=(day,), headroom=0.0), 2)
    # Day one: 2 replicas' worth all day, except 40 from 09:00 to 10:00.
    for hour in range(24):
        load = 40 * SLOTS if hour == 9 else 2 * SLOTS
        c.hold_for(3600 - 60, pending=0, in_flight=load, step=60)
        c.now += 60
    # Day two, quiet until 09:00: the floor asks for 40 one warm-up (300 s) before the ramp it
    # remembers, while the reactive rules alone would hold 2.
    first = None
    while c.now < day + 9 * 3600:
        d = c.observe(0, 2 * SLOTS)
        if first is None and d.desired >= 40:
            first = (c.now - day, d.reason)
        c.now += 60
    assert first is not None
    at, reason = first
    assert 9 * 3600 - 600 <= at <= 9 * 3600 - 300
    assert reason is Reason.SEASONAL_FLOOR


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([5.0, 15.0, 30.0]), st.integers(0, 5_000), st.integers(0, 5_000)),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([0.0, 0.1, 0.3]),
)
def test_never_below_what_the_work_in_flight_needs_nor_above_max(
    seq: list[tuple[float, int, int]], headroom: float
) -> None:
    config = cfg(headroom=headroom, max_replicas=60, seasonal_fraction=0.8)
    c = Clocked(config)
    for gap, pending, in_flight in seq:
        c.now += gap
        d = c.observe(pending, in_flight)
        assert 0 <= d.desired <= config.max_replicas
        floor = min(math.ceil(in_flight / SLOTS), config.max_replicas)
        assert d.desired >= floor
        assert d.active == (d.desired >= 1)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20_000), st.sampled_from([5.0, 15.0]))
def test_a_constant_load_settles_and_never_flaps(in_flight: int, gap: float) -> None:
    c = Clocked(cfg())
    desired = [c.observe(0, in_flight).desired]
    for _ in range(int(3600 / gap)):
        c.now += gap
        desired.append(c.observe(0, in_flight).desired)
    # It climbs (the scale-up limit may take a few steps from zero), then stays: never down.
    assert all(a <= b for a, b in itertools.pairwise(desired))
    assert desired[-1] == desired[len(desired) // 2]


def test_state_survives_a_round_trip_through_the_store_format() -> None:
    c = Clocked(cfg(seasonal_fraction=0.8))
    c.hold_for(7200, pending=3, in_flight=5 * SLOTS, step=60)
    restored = QueueDepthState.from_dict(c.state.to_dict())
    assert restored == c.state
    assert restored.season  # the seasonal memory is part of the stored state
