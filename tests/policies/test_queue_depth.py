"""The queue-depth policy, narrated in time: each test walks a clock by hand."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from policies.config import SEED, ConfigError, Mode, QueueDepthConfig
from policies.queue_depth import QueueDepthPolicy
from policies.state import QueueDepthState
from policies.types import Decision, Observation, Reason


def cfg(**kw: Any) -> QueueDepthConfig:
    """The default preset without the scale-up limit, so the base rules show alone; the limit
    has tests of its own."""
    return QueueDepthConfig(**{"scale_up_factor": None, **kw})


class Clocked:
    """Drives a policy through time the way the scaler does: one observation per tick."""

    def __init__(self, config: QueueDepthConfig | None = None) -> None:
        config = cfg() if config is None else config
        self.policy = QueueDepthPolicy(config)
        self.state: QueueDepthState = self.policy.initial_state()
        self.now = 0.0

    def observe(self, pending: int, **kw: int | None) -> Decision:
        decision, self.state = self.policy.decide(Observation(self.now, pending, **kw), self.state)
        return decision

    def hold_for(
        self, seconds: float, pending: int, step: float = 30.0, **kw: int | None
    ) -> Decision:
        """Observe the same load every ``step`` seconds for ``seconds``; the last decision."""
        end = self.now + seconds
        decision = self.observe(pending, **kw)
        while self.now + step <= end:
            self.now += step
            decision = self.observe(pending, **kw)
        return decision


def test_idle_model_at_zero_stays_at_zero() -> None:
    c = Clocked()
    d = c.observe(0)
    assert (d.desired, d.reason, d.active) == (0, Reason.IDLE, False)


def test_work_at_zero_activates_at_once_sized_for_the_backlog() -> None:
    c = Clocked()
    c.observe(0)
    c.now = 30
    # 120 tasks land on an idle model: 120 / 50 per replica -> 3 replicas, active now.
    d = c.observe(120)
    assert d.reason is Reason.ACTIVATE
    assert d.desired == math.ceil(120 / 50)
    assert d.active
    assert d.metric_value == d.desired


def test_one_task_at_zero_activates_one_replica() -> None:
    c = Clocked()
    d = c.observe(1)
    assert (d.desired, d.active) == (1, True)


def test_above_threshold_scales_up_to_fifty_per_replica() -> None:
    c = Clocked(cfg(lookahead_s=0))
    c.observe(100)  # 2 replicas
    c.now = 30
    d = c.observe(260)  # 130 per replica > 50: need ceil(260 / 50) = 6
    assert (d.desired, d.reason) == (6, Reason.SCALE_UP)


def test_between_thresholds_holds() -> None:
    c = Clocked(cfg(lookahead_s=0))
    c.observe(200)  # 4 replicas
    c.now = 400  # past the 300 s warm-up: all four serve
    d = c.observe(100)  # 25 per replica: inside [5, 50]
    assert (d.desired, d.reason) == (4, Reason.HOLD)


def test_warming_capacity_absorbs_a_growing_backlog_without_cascade() -> None:
    # aibrix#2670: while new GPUs warm up the backlog keeps growing; a naive loop goes 2->4->8->16.
    c = Clocked(cfg(lookahead_s=0))
    c.observe(100)  # 2 replicas requested at t=0, all warming
    desired = []
    for pending in (110, 120, 130, 140, 150, 160, 170, 180, 190):
        c.now += 30
        desired.append(c.observe(pending).desired)
    # Never more than the backlog needs at 50 per replica: ceil(190/50) = 4, not 16.
    assert max(desired) <= math.ceil(190 / 50)
    assert desired == sorted(desired)


def test_reason_says_capacity_on_its_way_when_warming_covers() -> None:
    c = Clocked(cfg(lookahead_s=0))
    c.observe(0, ready=3, warming=0)
    c.now = 30
    # two of the three restarted (e.g. spot): 140 on 3 replicas is 46.7 each; on the 1 ready, 140
    d = c.observe(140, ready=1, warming=2)
    assert (d.desired, d.reason) == (3, Reason.HOLD_WARMING)


def test_lookahead_sizes_for_backlog_when_capacity_arrives() -> None:
    c = Clocked(cfg(lookahead_s=300, growth_window_s=120))
    c.observe(100)  # 2 replicas
    for pending in (120, 140, 160):  # +20 per 30 s = 0.667 tasks/s, over 90 s of samples
        c.now += 30
        d = c.observe(pending)
    projected = 160 + (160 - 100) / 90 * 300
    assert d.reason in (Reason.SCALE_UP, Reason.SCALE_UP_LOOKAHEAD)
    assert d.desired == math.ceil(projected / 50)


def test_a_single_jump_is_not_a_trend() -> None:
    # One burst landing between two polls must not be projected over a whole warm-up.
    c = Clocked(cfg(lookahead_s=300, growth_window_s=120))
    c.observe(0)
    c.now = 30
    assert c.observe(120).desired == 3


def test_scale_down_waits_a_whole_window_then_steps_one_replica() -> None:
    c = Clocked()
    c.observe(400)  # 8 replicas
    c.now = 30
    # nine minutes pass at almost no load - should not scale down (less than the window)
    d = c.hold_for(540, pending=2)
    assert (d.desired, d.reason) == (8, Reason.HOLD_STABILIZING)
    # one more minute completes the 10-minute window: one step down
    c.now += 60
    d = c.observe(2)
    assert (d.desired, d.reason) == (7, Reason.SCALE_DOWN)
    # the next step needs a fresh window
    c.now += 30
    assert c.hold_for(540, pending=2).desired == 7
    c.now += 60
    assert c.observe(2).desired == 6


def test_any_load_inside_the_band_restarts_the_window() -> None:
    c = Clocked()
    c.observe(400)  # 8 replicas
    c.now = 30
    c.hold_for(500, pending=0)
    c.now += 30
    assert c.observe(100).reason is Reason.HOLD  # 12.5 per replica: not low
    c.now += 30
    # another 9 minutes of quiet are not enough: the window restarted at the blip
    assert c.hold_for(540, pending=0).desired == 8


def test_scale_down_step_is_configurable() -> None:
    c = Clocked(cfg(scale_down_step=3))
    c.observe(400)
    c.now = 30
    c.hold_for(600, pending=0)
    c.now += 30
    assert c.observe(0).desired == 5


def test_in_flight_work_sets_a_floor_on_scale_down() -> None:
    # An empty queue on a busy model is not idleness: 30 tasks in flight at 8 per replica.
    c = Clocked(cfg(replica_concurrency=8))
    c.observe(250)  # 5 replicas
    c.now = 30
    d = c.hold_for(1200, pending=0, in_flight=30)
    assert d.desired == math.ceil(30 / 8)
    assert c.hold_for(1200, pending=0, in_flight=30).reason is Reason.HOLD_IN_FLIGHT


def test_scale_to_zero_only_after_an_idle_window() -> None:
    c = Clocked()
    c.observe(10)  # 1 replica
    c.now = 30
    # four tasks trickle: low per replica, but not idle - the last replica stays
    d = c.hold_for(1800, pending=4)
    assert (d.desired, d.active) == (1, True)
    c.now += 30
    d = c.hold_for(590, pending=0)
    assert d.desired == 1
    c.now += 30
    d = c.observe(0)
    assert (d.desired, d.reason, d.active) == (0, Reason.SCALE_TO_ZERO, False)


def test_min_replicas_is_a_floor_and_keeps_the_model_active() -> None:
    c = Clocked(cfg(min_replicas=2))
    d = c.observe(0)
    assert (d.desired, d.active) == (2, True)
    c.hold_for(3600, pending=0)
    assert c.observe(0).desired == 2


def test_max_replicas_caps_and_says_so() -> None:
    c = Clocked(cfg(max_replicas=4))
    d = c.observe(10_000)
    assert d.desired == 4
    assert "maxReplicas" in d.detail


def test_buffer_replicas_are_warm_headroom_on_top() -> None:
    c = Clocked(cfg(buffer_replicas=1, lookahead_s=0))
    assert c.observe(0).desired == 0  # no headroom while idle at zero
    c.now = 30
    assert c.observe(120).desired == math.ceil(120 / 50) + 1
    c.now += 30
    # the buffer does not count toward the thresholds: 150 on 3 base replicas is 50 each, hold
    assert c.observe(150).desired == 4


def test_a_fresh_state_does_not_scale_down_before_watching_a_window() -> None:
    # A restarted scaler whose history is lost but sees 6 replicas (e.g. from the cluster):
    c = Clocked()
    d = c.hold_for(570, pending=0, ready=6, warming=0)
    assert (d.desired, d.reason) == (6, Reason.HOLD_STABILIZING)


def test_state_survives_a_round_trip_through_storage() -> None:
    c = Clocked()
    c.observe(300)
    c.now = 30
    c.hold_for(300, pending=1)
    restored = QueueDepthState.from_dict(c.state.to_dict())
    assert restored == c.state


def test_pending_mode_is_keda_native_passthrough() -> None:
    c = Clocked(cfg(mode=Mode.PENDING))
    assert c.policy.metric_target == 50
    d = c.observe(130)
    assert (d.metric_value, d.desired, d.reason) == (130, 3, Reason.PASSTHROUGH)
    c.now = 30
    d = c.observe(0)
    assert (d.metric_value, d.desired, d.active) == (0, 0, False)  # no window: KEDA's cooldown


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scale_up_pending": 0}, "scale_up_pending"),
        ({"scale_down_pending": 60}, "scale_down_pending"),
        ({"stabilization_window_s": -1}, "stabilization_window_s"),
        ({"min_replicas": -1}, "min_replicas"),
        ({"min_replicas": 5, "max_replicas": 4}, "max_replicas"),
        ({"scale_down_step": 0}, "scale_down_step"),
        ({"replica_concurrency": 0}, "replica_concurrency"),
        ({"buffer_replicas": 100}, "buffer_replicas"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        QueueDepthConfig(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field
    assert field in str(err.value)


def test_in_flight_work_scales_up_before_the_queue_builds() -> None:
    # Continuous batching: replicas take work without queueing until their slots are full.
    # 2 replicas carrying 100 tasks each; load grows by 20 tasks per 30 s, all still in flight.
    c = Clocked(cfg(replica_concurrency=100, lookahead_s=300, growth_window_s=120))
    c.observe(100)  # activate: 2 replicas
    c.now = 400  # warm
    c.observe(0, in_flight=160)
    d = None
    for in_flight in (180, 200):
        c.now += 30
        d = c.observe(0, in_flight=in_flight)
    assert d is not None
    # 200 in flight growing 40 per 60 s: projected 200 + 0.667 * 300 = 400 -> 4 replicas
    assert (d.desired, d.reason) == (
        math.ceil((200 + 40 / 60 * 300) / 100),
        Reason.SCALE_UP_IN_FLIGHT,
    )


def test_seed_preset_uses_in_flight_only_as_a_floor() -> None:
    c = Clocked(replace(SEED, replica_concurrency=100))
    c.observe(100)
    c.now = 400
    for in_flight in (160, 180, 200):
        d = c.observe(0, in_flight=in_flight)
        c.now += 30
    assert d.desired == 2


def test_with_the_floor_known_steps_follow_each_other_a_period_apart() -> None:
    # 10 replicas, 300 tasks in flight at 100 per replica: the floor is 3.
    c = Clocked(cfg(replica_concurrency=100, scale_down_period_s=60))
    c.observe(500)  # 10 replicas
    c.now = 30
    # nine and a half minutes at low load: hold
    assert c.hold_for(570, pending=0, in_flight=300).desired == 10
    c.now += 30
    assert c.observe(0, in_flight=300).desired == 9  # the window is complete: first step
    c.now += 30
    assert c.observe(0, in_flight=300).desired == 9  # 30 s later: within the period
    c.now += 30
    assert c.observe(0, in_flight=300).desired == 8  # a period after the first step
    # keep going: the floor stops the descent at ceil(300 / 100) = 3
    c.now += 60
    d = c.hold_for(1200, pending=0, in_flight=300, step=60)
    assert (d.desired, d.reason) == (3, Reason.HOLD_IN_FLIGHT)


def test_without_in_flight_counts_each_step_still_waits_a_window() -> None:
    # No floor to bound a step: each one is a probe, one per window even in the default preset.
    c = Clocked(cfg(replica_concurrency=100, scale_down_period_s=60))
    c.observe(500)
    c.now = 30
    assert c.hold_for(570, pending=0).desired == 10  # t = 30..600: the window fills
    c.now += 30
    assert c.observe(0).desired == 9  # t = 630: the first step
    c.now += 30
    assert c.hold_for(540, pending=0).desired == 9  # t = 660..1200: not a period but a window
    c.now += 30
    assert c.observe(0).desired == 8  # t = 1230: a whole window after the first step


def test_a_scale_up_is_limited_to_twice_the_replicas_serving_until_the_next_are_ready() -> None:
    # A burst far beyond what 4 serving replicas carry: the default preset asks for 2 x 4 = 8,
    # not the 40 the backlog alone would need; once those are ready it may double again.
    c = Clocked(QueueDepthConfig(lookahead_s=0, scale_up_factor=2.0, warmup_s=300))
    c.observe(200)  # activate: 4 (the +4 floor of the limit)
    c.now = 400  # warmed: 4 serving
    d = c.observe(2_000)
    assert (d.desired, d.reason) == (8, Reason.SCALE_UP)
    assert "scale-up capped at 8 this step" in d.detail
    c.now += 30
    assert c.observe(2_500).desired == 8  # 4 still warming: no second doubling yet
    c.now += 300
    assert c.observe(2_500).desired == 16  # all 8 serve now: double again


def test_the_seed_preset_asks_for_the_whole_backlog_at_once() -> None:
    c = Clocked(replace(SEED, lookahead_s=0))
    c.observe(200)
    c.now = 400
    assert c.observe(2_000).desired == 40


def test_a_scale_down_the_cluster_has_not_run_yet_does_not_count_as_capacity() -> None:
    # The scaler reads the cluster's counts; the HPA runs a scale-down up to a sync later.
    c = Clocked(cfg(replica_concurrency=100, scale_down_period_s=60))
    c.observe(0, in_flight=200, ready=6, warming=0)  # a scaler with no history sees 6 serving
    c.now = 30
    c.hold_for(570, pending=0, in_flight=200, ready=6, warming=0)
    c.now += 30
    assert c.observe(0, in_flight=200, ready=6, warming=0).desired == 5  # first step
    # 30 s later the Deployment still shows 6: they are not capacity, the decision stands
    c.now += 30
    d = c.observe(0, in_flight=200, ready=6, warming=0)
    assert (d.desired, d.reason) == (5, Reason.HOLD_STABILIZING)
    # and the next step comes a period after the first, not a fresh window later
    c.now += 30
    assert c.observe(0, in_flight=200, ready=6, warming=0).desired == 4
