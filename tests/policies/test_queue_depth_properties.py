"""Properties of the queue-depth policy that must hold for every load sequence (hypothesis)."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.config import QueueDepthConfig
from policies.queue_depth import QueueDepthPolicy
from policies.state import QueueDepthState
from policies.types import Decision, Observation

configs = st.builds(
    QueueDepthConfig,
    scale_up_pending=st.sampled_from([10.0, 50.0, 100.0]),
    scale_down_pending=st.sampled_from([0.0, 2.0, 5.0]),
    stabilization_window_s=st.sampled_from([0.0, 60.0, 300.0, 600.0]),
    warmup_s=st.sampled_from([0.0, 120.0, 300.0]),
    lookahead_s=st.sampled_from([0.0, 120.0, 300.0]),
    min_replicas=st.integers(0, 3),
    max_replicas=st.integers(4, 40),
    scale_down_step=st.integers(1, 3),
    replica_concurrency=st.one_of(st.none(), st.integers(1, 16)),
    buffer_replicas=st.integers(0, 1),
)
# (seconds since the previous observation, pending, in flight)
steps = st.lists(
    st.tuples(st.sampled_from([5.0, 15.0, 30.0, 60.0]), st.integers(0, 2_000), st.integers(0, 50)),
    min_size=1,
    max_size=80,
)


def run(
    config: QueueDepthConfig, seq: list[tuple[float, int, int]]
) -> list[tuple[Observation, Decision]]:
    policy = QueueDepthPolicy(config)
    state = policy.initial_state()
    now = 0.0
    out = []
    for gap, pending, in_flight in seq:
        now += gap
        obs = Observation(now, pending, in_flight=in_flight)
        decision, state = policy.decide(obs, state)
        out.append((obs, decision))
    return out


@settings(max_examples=300, deadline=None)
@given(configs, steps)
def test_desired_stays_within_bounds(
    config: QueueDepthConfig, seq: list[tuple[float, int, int]]
) -> None:
    for obs, d in run(config, seq):
        assert config.min_replicas <= d.desired <= config.max_replicas
        if obs.pending > 0:
            assert d.active, "work pending must never leave the model inactive"
        assert d.active == (d.desired >= 1)
        assert d.metric_value == d.desired


@settings(max_examples=300, deadline=None)
@given(configs, steps)
def test_no_scale_down_within_a_window_of_a_non_low_observation(
    config: QueueDepthConfig, seq: list[tuple[float, int, int]]
) -> None:
    history = run(config, seq)
    first_at = history[0][0].at_s
    prev_desired = 0
    last_not_low_at: float | None = None
    for obs, d in history:
        if d.desired < prev_desired:
            # every step down needs the whole window behind it with nothing but low load,
            # and the policy must have watched at least one whole window
            assert obs.at_s - first_at >= config.stabilization_window_s
            if last_not_low_at is not None:
                assert obs.at_s - last_not_low_at >= config.stabilization_window_s
        base = prev_desired - (config.buffer_replicas if prev_desired > 0 else 0)
        if base <= 0 or (obs.pending > 0 and obs.pending / base >= config.scale_down_pending):
            last_not_low_at = obs.at_s
        prev_desired = d.desired


@settings(max_examples=200, deadline=None)
@given(configs, st.integers(0, 3_000), st.sampled_from([15.0, 30.0]))
def test_constant_load_never_flaps(config: QueueDepthConfig, pending: int, gap: float) -> None:
    # Under constant load the replica count moves in one direction at most: no up-down-up.
    history = run(config, [(gap, pending, 0)] * 200)
    changes = [b.desired - a.desired for (_, a), (_, b) in itertools.pairwise(history)]
    ups = any(c > 0 for c in changes)
    downs = any(c < 0 for c in changes)
    assert not (ups and downs), [d.desired for _, d in history]


@settings(max_examples=300, deadline=None)
@given(configs, steps, st.integers(0, 2_000), st.integers(0, 2_000), st.integers(0, 50))
def test_desired_is_monotone_in_pending(
    config: QueueDepthConfig, seq: list[tuple[float, int, int]], p1: int, p2: int, in_flight: int
) -> None:
    policy = QueueDepthPolicy(config)
    state: QueueDepthState = policy.initial_state()
    now = 0.0
    for gap, pending, flight in seq:
        now += gap
        _, state = policy.decide(Observation(now, pending, in_flight=flight), state)
    lo, hi = sorted((p1, p2))
    d_lo, _ = policy.decide(Observation(now + 30, lo, in_flight=in_flight), state)
    d_hi, _ = policy.decide(Observation(now + 30, hi, in_flight=in_flight), state)
    assert d_lo.desired <= d_hi.desired


@settings(max_examples=200, deadline=None)
@given(
    configs,
    st.integers(1, 500),
    st.lists(st.integers(0, 200), min_size=1, max_size=9),
)
def test_no_cascade_while_warming(config: QueueDepthConfig, start: int, growth: list[int]) -> None:
    # Backlog grows during warm-up. Desired never exceeds what the largest backlog seen (or its
    # projection) needs at scaleUpPending per replica: never a 2->4->8->16 cascade.
    seq = [(30.0, start, 0)]
    pending = start
    for g in growth:
        pending += g
        seq.append((30.0, pending, 0))
    history = run(config, seq)
    rate_bound = max(growth) / 30.0  # the steepest growth the policy could have measured
    biggest = max(o.pending for o, _ in history)
    bound = math.ceil((biggest + rate_bound * config.lookahead_s) / config.scale_up_pending)
    if config.replica_concurrency:  # nothing is in flight here: only the load's growth counts
        busy = math.ceil(rate_bound * config.lookahead_s / config.replica_concurrency)
        bound = max(bound, busy)
    bound = min(max(bound, config.min_replicas, 1) + config.buffer_replicas, config.max_replicas)
    for _, d in history:
        assert d.desired <= max(bound, config.min_replicas)


@settings(max_examples=200, deadline=None)
@given(configs.filter(lambda c: c.min_replicas == 0), steps)
def test_idle_long_enough_goes_inactive_and_work_wakes_it(
    config: QueueDepthConfig, seq: list[tuple[float, int, int]]
) -> None:
    policy = QueueDepthPolicy(config)
    state = policy.initial_state()
    now = 0.0
    for gap, pending, flight in seq:
        now += gap
        _, state = policy.decide(Observation(now, pending, in_flight=flight), state)
    # idle: nothing pending, nothing in flight, for enough windows to step every replica down
    windows = state.desired // config.scale_down_step + 2
    end = now + windows * (config.stabilization_window_s + 30) + 30
    d = None
    while now < end:
        now += 30
        d, state = policy.decide(Observation(now, 0, in_flight=0), state)
    assert d is not None
    assert (d.desired, d.active) == (0, False)
    # a single task at zero wakes it at once
    d, state = policy.decide(Observation(now + 1, 1, in_flight=0), state)
    assert d.active


@settings(max_examples=100, deadline=None)
@given(configs, steps)
def test_stored_and_restored_state_decides_alike(
    config: QueueDepthConfig, seq: list[tuple[float, int, int]]
) -> None:
    # Two scaler replicas sharing state through Redis must answer alike.
    policy = QueueDepthPolicy(config)
    a = policy.initial_state()
    b = policy.initial_state()
    now = 0.0
    for gap, pending, flight in seq:
        now += gap
        obs = Observation(now, pending, in_flight=flight)
        da, a = policy.decide(obs, a)
        db, b = policy.decide(obs, QueueDepthState.from_dict(b.to_dict()))
        assert da == db
