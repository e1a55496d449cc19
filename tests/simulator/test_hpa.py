"""The HPA emulation against the documented Kubernetes behaviour (kubernetes pkg/controller/podautoscaler).

Expected numbers come from the upstream rules (replica_calculator.go, horizontal.go), worked by
hand in each case's comment, never from running the emulation.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.engine.hpa import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    Direction,
    HpaController,
    HpaSpec,
    Rule,
    milli,
    proposal,
)
from simulator.engine.setup import direction
from simulator.scenario import ControlPlane

NO_LIMIT_UP = Direction(0.0, (Rule("Percent", 1000, 15.0),))
NO_WINDOW_DOWN = Direction(0.0, (Rule("Percent", 100, 15.0),))


def hpa(
    up: Direction = NO_LIMIT_UP, down: Direction = NO_WINDOW_DOWN, lo: int = 1, hi: int = 100
) -> HpaController:
    return HpaController(HpaSpec(lo, hi, up, down))


@pytest.mark.parametrize(
    ("usage", "current", "tol_up", "tol_down", "expected"),
    [
        # metric = desired replicas, target 1: 11 on 10 replicas is a ratio of exactly 1.1,
        # inside the default 0.1 tolerance, so the step is swallowed.
        pytest.param(11.0, 10, 0.1, 0.1, 10, id="10-to-11-swallowed"),
        # 12/10 = 1.2 > 1.1: desired = ceil(12 / 1) = 12.
        pytest.param(12.0, 10, 0.1, 0.1, 12, id="10-to-12-passes"),
        # 10/11 = 0.909 >= 0.9: the step down is swallowed too.
        pytest.param(10.0, 11, 0.1, 0.1, 11, id="11-to-10-swallowed"),
        # With a scale-up tolerance of 0 (HPAConfigurableTolerance) 1.1 is outside: 11.
        pytest.param(11.0, 10, 0.0, 0.1, 11, id="tolerance-up-0"),
        # And a scale-down tolerance of 0 lets 11 -> 10 through.
        pytest.param(10.0, 11, 0.1, 0.0, 10, id="tolerance-down-0"),
        # Small counts: 2 on 1 replica is ratio 2: ceil(2) = 2.
        pytest.param(2.0, 1, 0.1, 0.1, 2, id="1-to-2"),
        # 0.95 on 1 is inside tolerance (0.95 >= 0.9): hold 1.
        pytest.param(0.95, 1, 0.1, 0.1, 1, id="fraction-inside"),
        # Fractions round up: 2.001 -> 3.
        pytest.param(2.001, 1, 0.1, 0.1, 3, id="ceil"),
    ],
)
def test_proposal_tolerance(
    usage: float, current: int, tol_up: float, tol_down: float, expected: int
) -> None:
    assert proposal(usage, 1.0, current, tol_up, tol_down) == expected


def test_proposal_average_value_divides_by_target() -> None:
    # KEDA-native: pending 260, target 50 per replica, 2 replicas: ratio 260/100 = 2.6,
    # desired = ceil(260 / 50) = 6.
    assert proposal(260.0, 50.0, 2, 0.1, 0.1) == 6


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, 1000), (0.0004, 0), (2.5, 2500), (-3.0, 0), (float("nan"), 0), (float("inf"), 0)],
)
def test_milli_quantities(value: float, expected: int) -> None:
    assert milli(value) == expected


def test_tolerance_swallows_one_step_in_a_full_sync() -> None:
    h = hpa(up=DEFAULT_UP, down=DEFAULT_DOWN)
    assert h.sync(0.0, 10, 11.0, 1.0).replicas == 10
    assert h.sync(15.0, 10, 12.0, 1.0).replicas == 12


def test_scale_down_stabilization_window() -> None:
    h = hpa(down=Direction(300.0, (Rule("Percent", 100, 15.0),)))
    # t=0: the metric asks for 10 on 10 replicas: hold, and 10 is remembered.
    assert h.sync(0.0, 10, 10.0, 1.0).replicas == 10
    # From t=15 the metric asks for 5, but the highest proposal within 300 s is still 10.
    for t in range(15, 300, 15):
        step = h.sync(float(t), 10, 5.0, 1.0)
        assert step.replicas == 10, t
        assert step.reason == "ScaleDownStabilized"
    # At t=300 the t=0 proposal is no longer *after* the cutoff (300 - 300 = 0): down to 5.
    assert h.sync(300.0, 10, 5.0, 1.0).replicas == 5


def test_scale_down_window_takes_the_highest_recent_proposal() -> None:
    h = hpa(down=Direction(60.0, (Rule("Percent", 100, 15.0),)))
    h.sync(0.0, 10, 10.0, 1.0)  # proposal 10
    h.sync(15.0, 10, 8.0, 1.0)  # proposal 8, held at 10
    h.sync(30.0, 10, 6.0, 1.0)  # proposal 6, held at 10
    # t=60: the window (0, 60] holds 8, 6 and now 4: the highest is 8.
    assert h.sync(60.0, 10, 4.0, 1.0).replicas == 8
    # t=75: (15, 75] holds 6, 4, 4: the highest is 6.
    assert h.sync(75.0, 8, 4.0, 1.0).replicas == 6


def test_scale_up_stabilization_window_takes_the_lowest_recent_proposal() -> None:
    h = hpa(up=Direction(60.0, (Rule("Percent", 1000, 15.0),)))
    h.sync(0.0, 2, 2.0, 1.0)  # proposal 2
    # t=15: proposal 8, but 2 is within the 60 s scale-up window: stay at 2.
    assert h.sync(15.0, 2, 8.0, 1.0).replicas == 2
    # t=45: still 2 in (−15, 45].
    assert h.sync(45.0, 2, 8.0, 1.0).replicas == 2
    # t=60: the window (0, 60] holds 8, 8, 8: up to 8.
    assert h.sync(60.0, 2, 8.0, 1.0).replicas == 8


def test_default_scale_up_rate_limit_max_of_4_pods_and_100_percent() -> None:
    h = hpa(up=DEFAULT_UP)
    # From 1: Pods allows 1 + 4 = 5, Percent allows ceil(1 × 2) = 2; Max picks 5.
    assert h.sync(0.0, 1, 100.0, 1.0).replicas == 5
    # t=15: the t=0 event is not after the cutoff 0, so the period starts at 5:
    # Pods 9, Percent 10 -> 10.
    assert h.sync(15.0, 5, 100.0, 1.0).replicas == 10
    # t=30: 20; t=45: 40; t=60: 80; t=75: capped at maxReplicas 100.
    assert h.sync(30.0, 10, 100.0, 1.0).replicas == 20
    assert h.sync(45.0, 20, 100.0, 1.0).replicas == 40
    assert h.sync(60.0, 40, 100.0, 1.0).replicas == 80
    step = h.sync(75.0, 80, 200.0, 1.0)
    assert step.replicas == 100
    assert step.reason == "TooManyReplicas"


def test_rate_limit_counts_changes_within_the_period() -> None:
    h = hpa(up=Direction(0.0, (Rule("Pods", 2, 60.0),)))
    # t=0: +2 (1 -> 3).
    assert h.sync(0.0, 1, 10.0, 1.0).replicas == 3
    # t=15 and t=45: the +2 at t=0 is within 60 s: period start 1, limit 3: no change.
    step = h.sync(15.0, 3, 10.0, 1.0)
    assert step.replicas == 3
    assert step.reason == "ScaleUpLimit"
    assert h.sync(45.0, 3, 10.0, 1.0).replicas == 3
    # t=60: the t=0 event is not after the cutoff (60 - 60 = 0): start 3, limit 5.
    assert h.sync(60.0, 3, 10.0, 1.0).replicas == 5


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        # From 4 with Pods 1 and Percent 50 per 15 s: Pods allows 5, Percent ceil(4 × 1.5) = 6.
        ("Max", 6),
        ("Min", 5),
        ("Disabled", 4),
    ],
)
def test_select_policy_up(select: str, expected: int) -> None:
    rules = (Rule("Pods", 1, 15.0), Rule("Percent", 50, 15.0))
    h = hpa(up=Direction(0.0, rules, select=select))  # type: ignore[arg-type]
    assert h.sync(0.0, 4, 20.0, 1.0).replicas == expected


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        # From 10 with Pods 1 and Percent 50 per 15 s: Pods allows 9, Percent int(10 × 0.5) = 5.
        # Max picks the bigger change (5), Min the smaller (9).
        ("Max", 5),
        ("Min", 9),
        ("Disabled", 10),
    ],
)
def test_select_policy_down(select: str, expected: int) -> None:
    rules = (Rule("Pods", 1, 15.0), Rule("Percent", 50, 15.0))
    h = hpa(down=Direction(0.0, rules, select=select))  # type: ignore[arg-type]
    assert h.sync(0.0, 10, 1.0, 1.0).replicas == expected


def test_scale_down_pods_per_period() -> None:
    h = hpa(down=Direction(0.0, (Rule("Pods", 1, 60.0),)))
    # One pod per minute: 10 -> 9 at t=0, held until the t=0 event leaves the period at t=60.
    assert h.sync(0.0, 10, 1.0, 1.0).replicas == 9
    assert h.sync(15.0, 9, 1.0, 1.0).replicas == 9
    assert h.sync(45.0, 9, 1.0, 1.0).replicas == 9
    assert h.sync(60.0, 9, 1.0, 1.0).replicas == 8


def test_bounds() -> None:
    h = hpa(lo=2, hi=6)
    # Metric 0 asks for 0, the HPA's minReplicas holds 2.
    assert h.sync(0.0, 4, 0.0, 1.0).replicas == 2
    # Metric 50 asks for 50, maxReplicas holds 6.
    assert h.sync(15.0, 2, 50.0, 1.0).replicas == 6
    # Above max already (someone scaled by hand): back to max.
    assert h.sync(30.0, 9, 9.0, 1.0).replicas == 6


def test_zero_replicas_disable_the_hpa() -> None:
    # KEDA owns 0 <-> 1: at zero the HPA does nothing whatever the metric.
    step = hpa().sync(0.0, 0, 50.0, 1.0)
    assert step.replicas == 0
    assert step.reason == "ScalingDisabled"


# ---- scale events kept as upstream keeps them (storeScaleEvent) -----------------------------

ONE_POD_A_MINUTE_DOWN = Direction(0.0, (Rule("Pods", 1, 60.0),))


def test_scale_down_limit_adds_back_scale_ups_of_its_own_longer_period() -> None:
    # Scale-up on the defaults (max of +100 % and +4 Pods per 15 s), scale-down 1 Pod per 60 s
    # with no window, from 10 replicas; the metric (target 1) goes 20 -> 24 -> 1.
    h = hpa(up=DEFAULT_UP, down=ONE_POD_A_MINUTE_DOWN)
    # t=0: ratio 20/10 = 2, proposal 20. No events: the period starts at 10, Percent allows
    # ceil(10 x 2) = 20, Pods 10 + 4 = 14; Max: 20. Up to 20, a +10 event at t=0.
    assert h.sync(0.0, 10, 20.0, 1.0).replicas == 20
    # t=15: proposal 24. getReplicasChangePerPeriod counts events strictly after now - 15 = 0,
    # so the +10 at t=0 has just left the 15 s period: it starts at 20, Percent allows 40, and
    # the HPA goes to 24 (+4 at t=15). One sync earlier, at t=14, the +10 would still count
    # (start 10, limit 20): the second step needs the second sync >= 15 s after the first,
    # as the HPA's default 15 s sync period gives. markScaleEventsOutdated marks only events
    # strictly before 15 - 15 = 0: the +10 is kept, not even outdated.
    assert h.sync(15.0, 20, 24.0, 1.0).replicas == 24
    # t=30: proposal 1 (ratio 1/24), no window. The 60 s scale-down rule looks back to -30 and
    # finds both scale-ups: the period starts at 24 - 10 - 4 + 0 = 10, so the limit is 10 - 1
    # = 9. Kubernetes goes to 9; an emulation that forgot the +10 when it stored the +4 would
    # start the period at 20 and stop at 19. The +10 stays in this period until t=60: any
    # third sync in (15, 60) gives 9.
    step = h.sync(30.0, 24, 1.0, 1.0)
    assert (step.replicas, step.reason) == (9, "ScaleDownLimit")
    # t=45: the -15 at t=30 counts too: start 9 - 14 + 15 = 10 -> the limit is still 9: hold.
    assert h.sync(45.0, 9, 1.0, 1.0).replicas == 9
    # t=60: the +10 at t=0 is no longer after 60 - 60 = 0: start 9 - 4 + 15 = 20 -> limit 19,
    # above the 9 running: no scale-down yet (upstream clamps the limit to current).
    assert h.sync(60.0, 9, 1.0, 1.0).replicas == 9
    # t=90: the -15 at t=30 sits exactly at the cutoff 90 - 60 = 30, so no event counts any
    # more: start 9, limit 8.
    assert h.sync(90.0, 9, 1.0, 1.0).replicas == 8


def test_an_outdated_event_counts_until_its_slot_is_reused() -> None:
    h = hpa(up=DEFAULT_UP, down=ONE_POD_A_MINUTE_DOWN)
    # t=0: 10 -> 20 (+10 at t=0), as above.
    assert h.sync(0.0, 10, 20.0, 1.0).replicas == 20
    # t=15: the metric asks for 20 on 20: hold, no event.
    assert h.sync(15.0, 20, 20.0, 1.0).replicas == 20
    # t=30: 20 -> 24. Storing the +4, the +10 at t=0 is before 30 - 15 = 15: outdated, and the
    # +4 takes its slot; the +10 is gone.
    assert h.sync(30.0, 20, 24.0, 1.0).replicas == 24
    # t=45: the 60 s scale-down period reaches back to -15, where the +10 would still count
    # (start 10, limit 9), but only the +4 is left: start 24 - 4 = 20, limit 19.
    assert h.sync(45.0, 24, 1.0, 1.0).replicas == 19


def test_a_scale_up_limit_adds_back_scale_downs_of_its_own_longer_period() -> None:
    # The reverse: scale-down 100 % per 15 s with no window, scale-up 2 Pods per 60 s.
    h = hpa(up=Direction(0.0, (Rule("Pods", 2, 60.0),)), down=NO_WINDOW_DOWN)
    # t=0: 10 -> 4 (the metric asks for 4; 100 % per 15 s allows 0): a -6 at t=0.
    assert h.sync(0.0, 10, 4.0, 1.0).replicas == 4
    # t=15: 4 -> 2, a -2 at t=15. Storing it, the -6 at t=0 is not before 15 - 15 = 0: kept.
    assert h.sync(15.0, 4, 2.0, 1.0).replicas == 2
    # t=30: the metric asks for 20. The 60 s scale-up period reaches back to -30: it started at
    # 2 + 6 + 2 = 10, so the limit is 12; forgetting the -6 would give 2 + 2 + 2 = 6.
    step = h.sync(30.0, 2, 20.0, 1.0)
    assert (step.replicas, step.reason) == (12, "ScaleUpLimit")


@given(metrics=st.lists(st.integers(1, 60), min_size=1, max_size=80))
def test_kept_events_stay_bounded_by_the_longest_period(metrics: list[int]) -> None:
    # Whatever the metric does at one sync per 15 s: a direction's list only grows when none of
    # its events is outdated, i.e. all lie in [now - longest, now - 15], one per sync; so it
    # never holds more than longest / 15 + 1 events (2 for the 15 s scale-up, 5 for 60 s down).
    h = hpa(up=DEFAULT_UP, down=ONE_POD_A_MINUTE_DOWN, hi=60)
    current = 10
    for i, metric in enumerate(metrics):
        current = h.sync(15.0 * i, current, float(metric), 1.0).replicas
        assert len(h.up_events) <= 15 // 15 + 1
        assert len(h.down_events) <= 60 // 15 + 1


def test_the_scenario_defaults_are_the_engine_defaults() -> None:
    # One table of Kubernetes' defaults: a models file that says nothing about the HPA gets the
    # behaviour the engine's HPA model assumes.
    plane = ControlPlane()
    assert direction(plane.hpa.scale_up) == DEFAULT_UP
    assert direction(plane.hpa.scale_down) == DEFAULT_DOWN
    assert DEFAULT_UP.rules == (Rule("Percent", 100, 15.0), Rule("Pods", 4, 15.0))
    assert (DEFAULT_DOWN.window_s, DEFAULT_DOWN.rules) == (300.0, (Rule("Percent", 100, 15.0),))
