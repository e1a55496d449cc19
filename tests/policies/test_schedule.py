"""Time-based policies: schedule lookups by wall-clock hour, the hindsight builder, peak sizing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.schedule import (
    HOURS_PER_DAY,
    HOURS_PER_WEEK,
    ScheduleError,
    SchedulePolicy,
    business_hours,
    replicas_for_rate,
)
from policies.types import Observation, Reason

# Monday 2026-11-30 00:00 UTC, Unix seconds.
MONDAY = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


def desired_at(policy: SchedulePolicy, at_s: float) -> int:
    decision, state = policy.decide(Observation(at_s=at_s, pending=0), policy.initial_state())
    assert state is None
    assert decision.reason is Reason.SCHEDULE
    assert decision.metric_value == decision.desired
    return decision.desired


@pytest.mark.parametrize(
    ("label", "offset_s", "expected"),
    [
        ("Monday 07:59:59 is still night", 7 * HOUR + 59 * 60 + 59, 1),
        ("Monday 08:00:00 opens", 8 * HOUR, 6),
        ("Monday 19:59:59 still open", 19 * HOUR + 59 * 60 + 59, 6),
        ("Monday 20:00:00 closes", 20 * HOUR, 1),
        ("Friday 12:00 open", 4 * DAY + 12 * HOUR, 6),
        ("Saturday 12:00 is weekend", 5 * DAY + 12 * HOUR, 1),
        ("Sunday 08:00 is weekend", 6 * DAY + 8 * HOUR, 1),
        ("next Monday 08:00 opens again", WEEK + 8 * HOUR, 6),
    ],
)
def test_business_hours_boundaries(label: str, offset_s: float, expected: int) -> None:
    # The trace starts on a Monday at midnight UTC; at_s counts from there.
    policy = business_hours(6, 1, start_epoch_s=MONDAY)
    assert desired_at(policy, offset_s) == expected, label


def test_business_hours_in_a_time_zone() -> None:
    # 07:00 UTC is 08:00 at UTC+1: the office there has opened, one at UTC has not.
    plus_one = business_hours(6, 1, start_epoch_s=MONDAY, tz=timezone(timedelta(hours=1)))
    at_utc = business_hours(6, 1, start_epoch_s=MONDAY)
    assert desired_at(plus_one, 7 * HOUR) == 6
    assert desired_at(at_utc, 7 * HOUR) == 1
    # 19:30 UTC is 20:30 at UTC+1: closed there, open at UTC.
    assert desired_at(plus_one, 19.5 * HOUR) == 1
    assert desired_at(at_utc, 19.5 * HOUR) == 6


def test_business_hours_follow_daylight_saving() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        new_york = zoneinfo.ZoneInfo("America/New_York")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    policy = business_hours(6, 1, tz=new_york)
    # Monday 2026-03-02 (EST, UTC-5): 08:00 local is 13:00 UTC.
    winter = datetime(2026, 3, 2, 13, tzinfo=UTC).timestamp()
    # Monday 2026-03-09 (EDT after the 8 March change, UTC-4): 08:00 local is 12:00 UTC.
    summer = datetime(2026, 3, 9, 12, tzinfo=UTC).timestamp()
    assert desired_at(policy, winter - 1) == 1
    assert desired_at(policy, winter) == 6
    assert desired_at(policy, summer - 1) == 1
    assert desired_at(policy, summer) == 6


schedules = st.lists(st.integers(0, 50), min_size=HOURS_PER_WEEK, max_size=HOURS_PER_WEEK)


@given(
    replicas=schedules,
    week=st.integers(-3, 200),
    slot=st.integers(0, HOURS_PER_WEEK - 1),
    into_hour_s=st.floats(0, HOUR, exclude_max=True),
    start_shift_s=st.floats(-1e7, 1e7),
)
def test_weekly_lookup_hits_the_hour(
    replicas: list[int], week: int, slot: int, into_hour_s: float, start_shift_s: float
) -> None:
    # Any instant inside hour-of-week `slot` (built from Monday midnight UTC), whatever the trace
    # start offset, gets that slot's replicas.
    start = MONDAY + start_shift_s
    policy = SchedulePolicy(tuple(replicas), start_epoch_s=start)
    wall = MONDAY + week * WEEK + slot * HOUR + into_hour_s
    if int((wall - MONDAY) // HOUR) % HOURS_PER_WEEK != slot:
        return  # float rounding carried the instant over the boundary
    assert desired_at(policy, wall - start) == replicas[slot]


@given(
    replicas=st.lists(st.integers(0, 50), min_size=HOURS_PER_DAY, max_size=HOURS_PER_DAY),
    at_s=st.floats(0, 1e9),
)
def test_daily_schedule_stays_within_its_bounds(replicas: list[int], at_s: float) -> None:
    desired = desired_at(SchedulePolicy(tuple(replicas)), at_s)
    assert min(replicas) <= desired <= max(replicas)
    assert desired in replicas


@pytest.mark.parametrize(
    ("label", "kwargs", "field"),
    [
        ("23 hours", {"replicas": (1,) * 23}, "replicas"),
        ("negative slot", {"replicas": (1,) * 5 + (-1,) + (1,) * 18}, "replicas[5]"),
        ("infinite start", {"replicas": (1,) * 24, "start_epoch_s": float("inf")}, "start_epoch_s"),
    ],
)
def test_bad_schedule_names_its_field(label: str, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleError, match="^" + re.escape(field)):
        SchedulePolicy(**kwargs)  # type: ignore[arg-type]


def test_bad_business_hours() -> None:
    with pytest.raises(ScheduleError, match="start_hour"):
        business_hours(2, 1, start_hour=20, end_hour=8)
    with pytest.raises(ScheduleError, match="weekdays"):
        business_hours(2, 1, weekdays=[7])


def test_replicas_for_rate_table() -> None:
    # (rate rps, replica rps, target utilization) -> replicas, worked by hand.
    cases = [
        (8.0, 10.0, 0.8, 1),  # 8 / (10 × 0.8) = 1 exactly
        (8.01, 10.0, 0.8, 2),
        (0.0, 10.0, 0.8, 0),
        (0.001, 10.0, 0.8, 1),
        (30.0, 10.0, 1.0, 3),
        (37.0, 37.0, 0.8, 2),  # one H100 replica of Llama-3-8B at 80% serves 29.6 req/s
    ]
    for rate, replica_rps, util, expected in cases:
        assert replicas_for_rate(rate, replica_rps, util) == expected, (rate, replica_rps, util)
    with pytest.raises(ScheduleError, match="target_utilization"):
        replicas_for_rate(1.0, 1.0, 0.0)
    with pytest.raises(ScheduleError, match="replica_rps"):
        replicas_for_rate(1.0, 0.0, 0.5)
