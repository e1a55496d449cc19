"""The schedules sized from a trace: hindsight (each hour's busiest window), static peak, and the
trailing schedule sized from the past alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.schedule import (
    HISTORY_DAYS,
    HISTORY_NONE,
    HISTORY_WEEK,
    HOURS_PER_DAY,
    DatedSchedulePolicy,
    ScheduleError,
)
from policies.types import Observation, Reason
from simulator.schedule_sizing import (
    hindsight_schedule,
    peak_replicas,
    trailing_schedule,
    window_peaks,
)

MONDAY = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


def test_hindsight_schedule_takes_each_hours_busiest_window() -> None:
    # The trace starts Monday 00:00 UTC.
    day1_10h05 = 10 * HOUR + 5 * 60
    day2_10h20 = DAY + 10 * HOUR + 20 * 60
    arrivals = (
        [day1_10h05 + i for i in range(30)]  # 30 in 10:05-10:10 on Monday
        + [day2_10h20 + 2 * i for i in range(60)]  # 60 in 10:20-10:25 on Tuesday: the peak
        + [3 * HOUR + 10.0]  # one at 03:00
        + [10 * HOUR + 59 * 60 + 59.5]  # 10:59:59.5 belongs to hour 10
        + [11 * HOUR]  # 11:00:00 belongs to hour 11
    )
    policy = hindsight_schedule(
        arrivals, replica_rps=0.1, target_utilization=0.8, start_epoch_s=MONDAY
    )
    # Hour 10: 60 requests / 300 s = 0.2 req/s; one replica at 80% serves 0.08 -> ceil(2.5) = 3.
    expected = [0] * 24
    expected[10] = 3
    expected[3] = 1  # 1/300 req/s still needs a replica
    expected[11] = 1
    assert list(policy.replicas) == expected
    assert policy.name == "hindsight-schedule"
    wednesday = (2 * DAY + 10 * HOUR + 30 * 60, 2 * DAY + 12 * HOUR)  # 10:30 and 12:00
    decided = [policy.decide(Observation(at_s=t, pending=0), None)[0].desired for t in wednesday]
    assert decided == [3, 0]


def test_hindsight_weekly_tells_days_apart() -> None:
    arrivals = [HOUR + i for i in range(30)] + [DAY + HOUR + i for i in range(3)]
    policy = hindsight_schedule(
        arrivals, replica_rps=0.01, target_utilization=1.0, start_epoch_s=MONDAY, weekly=True
    )
    assert policy.replicas[1] == 10  # Monday 01:00: 30/300 = 0.1 req/s on 0.01 per replica
    assert policy.replicas[24 + 1] == 1  # Tuesday 01:00: 3/300 = 0.01 req/s
    assert sum(policy.replicas) == 11


def test_window_must_divide_a_quarter_hour() -> None:
    with pytest.raises(ScheduleError, match="window_s"):
        window_peaks([1.0], window_s=420)
    with pytest.raises(ScheduleError, match="window_s"):
        peak_replicas([1.0], replica_rps=1.0, target_utilization=1.0, window_s=0)


arrival_lists = st.lists(st.floats(0, 3 * DAY), max_size=300)


@given(arrivals=arrival_lists, shift=st.integers(0, 96).map(lambda q: q * 900.0))
def test_static_peak_is_the_largest_hindsight_hour(arrivals: list[float], shift: float) -> None:
    kwargs = {"replica_rps": 0.05, "target_utilization": 0.7, "start_epoch_s": MONDAY + shift}
    schedule = hindsight_schedule(arrivals, **kwargs)  # type: ignore[arg-type]
    assert max(schedule.replicas) == peak_replicas(arrivals, **kwargs)


@given(arrivals=arrival_lists)
def test_hindsight_covers_every_window(arrivals: list[float]) -> None:
    # Whatever arrives in any aligned 5-minute window, the schedule's replicas for that hour
    # serve it at the target utilization.
    replica_rps, util = 0.05, 0.7
    policy = hindsight_schedule(
        arrivals, replica_rps=replica_rps, target_utilization=util, start_epoch_s=MONDAY
    )
    counts: dict[int, int] = {}
    for t in arrivals:
        counts[int(t // 300)] = counts.get(int(t // 300), 0) + 1
    for window, count in counts.items():
        hour = int(window * 300 // HOUR) % 24
        assert policy.replicas[hour] * replica_rps * util >= count / 300 - 1e-9


@given(arrivals=arrival_lists, copies=st.integers(2, 4))
def test_more_traffic_never_needs_fewer_replicas(arrivals: list[float], copies: int) -> None:
    base = hindsight_schedule(arrivals, replica_rps=0.05, target_utilization=0.7)
    more = hindsight_schedule(arrivals * copies, replica_rps=0.05, target_utilization=0.7)
    assert all(m >= b for m, b in zip(more.replicas, base.replicas, strict=True))


# -- the trailing schedule: sized from the past alone ---------------------------------------------

ONE_RPS = 1.0  # replica_rps in these tests: one replica serves 1 request/second at utilization 1


def _trailing(arrivals: list[float], span_s: float, **kwargs: object) -> DatedSchedulePolicy:
    args: dict[str, object] = {
        "replica_rps": ONE_RPS,
        "target_utilization": 1.0,
        "span_s": span_s,
        "first_day_replicas": 2,
        "start_epoch_s": MONDAY,
        **kwargs,
    }
    return trailing_schedule(arrivals, **args)  # type: ignore[arg-type]


def _burst(at_s: float, per_s: int) -> list[float]:
    """``per_s`` requests per second through the 5-minute window starting at ``at_s``."""
    return [at_s + k / per_s for k in range(300 * per_s)]


def test_trailing_schedule_reads_last_week_then_the_previous_days() -> None:
    # Monday 10:00 of week one: a burst needing 3 replicas. Tuesday 10:00: 5 replicas.
    # Next Monday 10:00: 4 replicas (scored, not used for that day).
    arrivals = _burst(10 * HOUR, 3) + _burst(DAY + 10 * HOUR, 5) + _burst(WEEK + 10 * HOUR, 4)
    policy = _trailing(arrivals, span_s=9 * DAY)
    # Monday, day one: no history, the first-day count all day.
    assert policy.history[0] == HISTORY_NONE
    assert policy.replicas[0] == (2,) * HOURS_PER_DAY
    # Tuesday 10:00 has no week behind it: Monday 10:00 (3) sizes it; the burst of Tuesday
    # itself does not.
    assert policy.replicas[1][10] == 3
    assert policy.history[1] == HISTORY_DAYS
    # Wednesday 10:00: the busier of Monday and Tuesday at 10:00.
    assert policy.replicas[2][10] == 5
    # The next Monday has a week behind it: last Monday's 10:00 (3), not Tuesday's 5.
    assert policy.replicas[7][10] == 3
    assert policy.history[7] == HISTORY_WEEK
    # The next Tuesday: last Tuesday's 5.
    assert policy.replicas[8][10] == 5
    # decide reads the table by local date and hour.
    decision, _ = policy.decide(Observation(at_s=7 * DAY + 10.5 * HOUR, pending=0), None)
    assert decision.desired == 3
    assert decision.reason is Reason.SCHEDULE


def test_trailing_schedule_weeks_takes_the_busiest_of_them() -> None:
    arrivals = _burst(10 * HOUR, 6) + _burst(WEEK + 10 * HOUR, 2)
    one = _trailing(arrivals, span_s=15 * DAY, weeks=1)
    two = _trailing(arrivals, span_s=15 * DAY, weeks=2)
    assert one.replicas[14][10] == 2  # last week only
    assert two.replicas[14][10] == 6  # the busier of the last two weeks


def test_trailing_schedule_respects_replica_bounds() -> None:
    arrivals = _burst(10 * HOUR, 9)
    policy = _trailing(arrivals, span_s=3 * DAY, min_replicas=1, max_replicas=4)
    assert policy.replicas[1][10] == 4
    assert min(min(day) for day in policy.replicas) >= 1


@given(
    st.lists(st.floats(0.0, 10 * DAY, allow_nan=False), max_size=300),
    st.integers(1, 9),
    st.lists(st.floats(0.0, 1.0), max_size=100),
    st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]),
)
def test_trailing_schedule_never_sees_the_day_it_sizes(
    arrivals: list[float], day: int, noise: list[float], tz: timezone
) -> None:
    # Whatever arrives at or after the start of local day ``day`` (replaced here by other
    # traffic) cannot change the replicas of that day or any earlier one.
    span = 11 * DAY
    base = _trailing(arrivals, span_s=span, tz=tz)
    day_start = (
        datetime.combine(base.first_day + timedelta(days=day), datetime.min.time(), tz).timestamp()
        - MONDAY
    )
    before = [a for a in arrivals if a < day_start]
    after = [day_start + x * (span - day_start) for x in noise]
    changed = _trailing(before + after, span_s=span, tz=tz)
    assert changed.replicas[: day + 1] == base.replicas[: day + 1]
    assert changed.history == base.history
