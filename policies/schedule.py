"""Time-based scaling: replicas by wall-clock hour, the baseline queue-depth scaling is judged against.

Two ways to build one:

* ``business_hours(peak, off_peak)``: the naive schedule a team writes by hand, "N replicas
  08:00-20:00 on weekdays, M otherwise".
* ``hindsight_schedule(arrivals_s, ...)``: the best a schedule can do on a given trace. For every
  hour of the day (or of the week) it holds the replicas that hour's busiest 5-minute window on
  this trace needs, at the same target utilization as the other policies. It has seen the future,
  so it is a generous baseline: a real schedule can only be worse.
* ``trailing_schedule(arrivals_s, ...)``: a schedule a team can run. Each local day is sized, hour
  by hour, from the same hour of the previous week(s) of the trace, or of the previous days while
  no week has passed; it never sees the day it is scored on.

``at_s`` maps to wall-clock time through ``start_epoch_s`` (the Unix time of ``at_s == 0``; 0 when
``at_s`` already is Unix time, as in the live scaler) and a time zone.

Pure: ``decide`` reads nothing but its arguments (the time zone rules are data).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

import numpy as np
import numpy.typing as npt

from policies.types import Decision, Observation, Reason

HOURS_PER_DAY = 24
HOURS_PER_WEEK = 7 * 24
WEEKDAYS = (0, 1, 2, 3, 4)  # Monday..Friday, datetime.weekday() numbering
_QUARTER_HOUR_S = 900  # every time zone offset in use is a multiple of 15 minutes


class ScheduleError(ValueError):
    """A schedule or its inputs break an invariant; the message names the argument."""


def hour_slot(at_s: float, start_epoch_s: float, tz: tzinfo, weekly: bool) -> int:
    """The schedule slot (hour of day 0..23, or hour of week 0..167 from Monday 00:00) that the
    instant ``start_epoch_s + at_s`` (Unix seconds) falls in, in time zone ``tz``."""
    local = datetime.fromtimestamp(start_epoch_s + at_s, tz)
    return local.weekday() * HOURS_PER_DAY + local.hour if weekly else local.hour


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """Replicas by wall-clock hour.

    replicas:      24 entries (hour of day, 00:00 first) or 168 (hour of week, Monday 00:00
                   first), replicas >= 0 each.
    start_epoch_s: Unix time (seconds) of ``at_s == 0``.
    tz:            time zone the hours are read in.
    label:         name in reports and logs.
    """

    replicas: tuple[int, ...]
    start_epoch_s: float = 0.0
    tz: tzinfo = UTC
    label: str = "schedule"

    def __post_init__(self) -> None:
        if len(self.replicas) not in (HOURS_PER_DAY, HOURS_PER_WEEK):
            raise ScheduleError(
                f"replicas: need {HOURS_PER_DAY} (daily) or {HOURS_PER_WEEK} (weekly) entries, "
                f"got {len(self.replicas)}"
            )
        for slot, count in enumerate(self.replicas):
            if count < 0:
                raise ScheduleError(f"replicas[{slot}]: must be >= 0, got {count}")
        if not math.isfinite(self.start_epoch_s):
            raise ScheduleError(f"start_epoch_s: must be finite, got {self.start_epoch_s}")

    @property
    def name(self) -> str:
        return self.label

    @property
    def metric_target(self) -> float:
        """The metric is the desired replica count, target 1 per replica."""
        return 1.0

    @property
    def weekly(self) -> bool:
        return len(self.replicas) == HOURS_PER_WEEK

    def initial_state(self) -> None:
        return None

    def warm_state(self, replicas: int) -> None:
        """Stateless: the clock alone decides."""
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        slot = hour_slot(observation.at_s, self.start_epoch_s, self.tz, self.weekly)
        desired = self.replicas[slot]
        where = _slot_name(slot, self.weekly)
        detail = f"schedule: {desired} replicas for {where} ({observation.pending} pending)"
        return Decision(desired, Reason.SCHEDULE, detail, float(desired)), None


def _slot_name(slot: int, weekly: bool) -> str:
    if not weekly:
        return f"{slot:02d}:00-{slot:02d}:59"
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[slot // HOURS_PER_DAY]
    hour = slot % HOURS_PER_DAY
    return f"{day} {hour:02d}:00-{hour:02d}:59"


def business_hours(
    peak: int,
    off_peak: int,
    *,
    start_hour: int = 8,
    end_hour: int = 20,
    weekdays: Iterable[int] = WEEKDAYS,
    start_epoch_s: float = 0.0,
    tz: tzinfo = UTC,
    label: str = "schedule",
) -> SchedulePolicy:
    """``peak`` replicas from ``start_hour``:00 to ``end_hour``:00 (exclusive) on ``weekdays``
    (0 = Monday), ``off_peak`` otherwise. Hours are local to ``tz``."""
    if not 0 <= start_hour < end_hour <= HOURS_PER_DAY:
        raise ScheduleError(
            f"start_hour/end_hour: need 0 <= start_hour < end_hour <= 24, "
            f"got {start_hour}, {end_hour}"
        )
    days = frozenset(weekdays)
    bad = sorted(d for d in days if not 0 <= d <= 6)
    if bad:
        raise ScheduleError(f"weekdays: must be in 0..6 (0 = Monday), got {bad}")
    replicas = tuple(
        peak if (slot // HOURS_PER_DAY in days and start_hour <= slot % HOURS_PER_DAY < end_hour)
        else off_peak
        for slot in range(HOURS_PER_WEEK)
    )  # fmt: skip
    return SchedulePolicy(replicas, start_epoch_s=start_epoch_s, tz=tz, label=label)


def replicas_for_rate(rate_rps: float, replica_rps: float, target_utilization: float) -> int:
    """Replicas that serve ``rate_rps`` (requests/second) with each replica at most
    ``target_utilization`` (0..1] busy, when one replica serves ``replica_rps`` requests/second."""
    if not replica_rps > 0:
        raise ScheduleError(f"replica_rps: must be > 0, got {replica_rps}")
    if not 0 < target_utilization <= 1:
        raise ScheduleError(f"target_utilization: must be in (0, 1], got {target_utilization}")
    if rate_rps <= 0:
        return 0
    # The tolerance keeps an exact fit (e.g. 8 rps on 10 rps at 0.8) from rounding up.
    return max(math.ceil(rate_rps / (replica_rps * target_utilization) - 1e-9), 1)


@dataclass(frozen=True, slots=True, eq=False)
class PerSecond:
    """Arrivals counted per second instead of listed: ``counts[k]`` requests arrived in
    ``[k, k+1)`` seconds from the start (a billion-request trace in the aggregated form)."""

    counts: npt.NDArray[np.float64]

    def before(self, t_s: float) -> float:
        """Requests that arrived in the whole seconds before ``t_s``."""
        return float(self.counts[: max(math.floor(t_s), 0)].sum())

    def within(self, span_s: float) -> PerSecond:
        return PerSecond(self.counts[: max(math.ceil(span_s), 0)])


Arrivals = npt.ArrayLike | PerSecond
"""Arrival times (seconds from the start, any order) or per-second counts."""


def _times(arrivals: Arrivals) -> npt.NDArray[np.float64] | PerSecond:
    if isinstance(arrivals, PerSecond):
        return arrivals
    times = np.asarray(arrivals, dtype=np.float64)
    if times.size and not np.all(np.isfinite(times)):
        raise ScheduleError("arrivals_s: every arrival time must be finite")
    return times


def _empty(times: npt.NDArray[np.float64] | PerSecond) -> bool:
    if isinstance(times, PerSecond):
        return not bool(times.counts.any())
    return times.size == 0


def window_peaks(
    arrivals_s: Arrivals,
    *,
    start_epoch_s: float = 0.0,
    tz: tzinfo = UTC,
    window_s: float = 300.0,
    weekly: bool = False,
) -> tuple[float, ...]:
    """Per schedule slot (24 or 168), the highest arrival rate (requests/second) of any
    ``window_s``-second window within that hour, over every day of the trace; 0 for slots the
    trace never reaches or where nothing arrives.

    Windows are aligned to the wall clock (e.g. 10:00, 10:05, ...); ``window_s`` must divide 900
    seconds so that no window straddles a local hour in any time zone. ``arrivals_s`` are
    seconds from ``start_epoch_s``, in any order."""
    if not window_s > 0 or _QUARTER_HOUR_S % window_s:
        raise ScheduleError(f"window_s: must divide {_QUARTER_HOUR_S} seconds, got {window_s}")
    times = _times(arrivals_s)
    slots = HOURS_PER_WEEK if weekly else HOURS_PER_DAY
    peaks = np.zeros(slots)
    if _empty(times):
        return tuple(float(p) for p in peaks)
    window_ids, counts = _window_counts(times, start_epoch_s, window_s)
    # Few distinct windows (2016 a week at 5 minutes): the time zone lookup runs once per window.
    for window_id, count in zip(window_ids.tolist(), counts.tolist(), strict=True):
        slot = hour_slot(window_id * window_s, 0.0, tz, weekly)
        peaks[slot] = max(peaks[slot], count / window_s)
    return tuple(float(p) for p in peaks)


def _window_counts(
    times: npt.NDArray[np.float64] | PerSecond, start_epoch_s: float, window_s: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Wall-clock window ids (Unix seconds // window_s) that hold arrivals, and how many each
    holds; one O(n) pass (a bincount over the trace's span), no sort. Per-second counts are
    placed by the start of their second."""
    # Whole windows of the epoch apart from the rest, so that adding a large epoch to a time
    # cannot round an arrival just before a window edge into the next window.
    epoch_windows = np.floor(start_epoch_s / window_s)
    remainder = start_epoch_s - epoch_windows * window_s
    weights = None
    if isinstance(times, PerSecond):
        weights = times.counts
        times = np.arange(times.counts.size, dtype=np.float64)
    bins = (np.floor((times + remainder) / window_s) + epoch_windows).astype(np.int64)
    first = int(bins.min())
    counts = np.bincount(bins - first, weights=weights).astype(np.float64)
    used = np.flatnonzero(counts)
    return used + first, counts[used]


def hindsight_schedule(
    arrivals_s: Arrivals,
    *,
    replica_rps: float,
    target_utilization: float,
    start_epoch_s: float = 0.0,
    tz: tzinfo = UTC,
    window_s: float = 300.0,
    weekly: bool = False,
    min_replicas: int = 0,
    label: str = "hindsight-schedule",
) -> SchedulePolicy:
    """The best schedule in hindsight for one model: per hour of day (``weekly``: of week) the
    replicas its busiest ``window_s`` window on this trace needs (``window_peaks``), sized by
    ``replicas_for_rate``, never below ``min_replicas``."""
    if min_replicas < 0:
        raise ScheduleError(f"min_replicas: must be >= 0, got {min_replicas}")
    peaks = window_peaks(
        arrivals_s, start_epoch_s=start_epoch_s, tz=tz, window_s=window_s, weekly=weekly
    )
    replicas = tuple(
        max(replicas_for_rate(p, replica_rps, target_utilization), min_replicas) for p in peaks
    )
    return SchedulePolicy(replicas, start_epoch_s=start_epoch_s, tz=tz, label=label)


def peak_replicas(
    arrivals_s: Arrivals,
    *,
    replica_rps: float,
    target_utilization: float,
    start_epoch_s: float = 0.0,
    window_s: float = 300.0,
) -> int:
    """Replicas the trace's busiest ``window_s`` window needs (static peak provisioning), 0 when
    nothing arrives. Windows are aligned as in ``window_peaks``, so this equals the largest entry
    of the hindsight schedule built from the same arguments."""
    if not window_s > 0 or _QUARTER_HOUR_S % window_s:
        raise ScheduleError(f"window_s: must divide {_QUARTER_HOUR_S} seconds, got {window_s}")
    times = _times(arrivals_s)
    if _empty(times):
        return 0
    _, counts = _window_counts(times, start_epoch_s, window_s)
    return replicas_for_rate(float(counts.max()) / window_s, replica_rps, target_utilization)


HISTORY_NONE = "none"  # the first day: no history at all
HISTORY_DAYS = "days"  # some hour sized from the previous days (no week of history for it yet)
HISTORY_WEEK = "week"  # every hour sized from the same hour of the previous week(s)


@dataclass(frozen=True, slots=True)
class DatedSchedulePolicy:
    """Replicas by local calendar day and hour: a schedule that changes from day to day.

    replicas:      per local day from ``first_day``, 24 counts (hour of day, 00:00 first), >= 0.
                   Instants after the last day use the last day's counts.
    first_day:     the local date of ``replicas[0]``.
    history:       per day, what sized it (``HISTORY_NONE``, ``HISTORY_DAYS``, ``HISTORY_WEEK``).
    start_epoch_s: Unix time (seconds) of ``at_s == 0``.
    tz:            time zone the days and hours are read in.
    label:         name in reports and logs.
    """

    replicas: tuple[tuple[int, ...], ...]
    first_day: date
    history: tuple[str, ...] = ()
    start_epoch_s: float = 0.0
    tz: tzinfo = UTC
    label: str = "trailing-schedule"

    def __post_init__(self) -> None:
        if not self.replicas:
            raise ScheduleError("replicas: need at least one day")
        for day, counts in enumerate(self.replicas):
            if len(counts) != HOURS_PER_DAY:
                raise ScheduleError(
                    f"replicas[{day}]: need {HOURS_PER_DAY} entries, got {len(counts)}"
                )
            if min(counts) < 0:
                raise ScheduleError(f"replicas[{day}]: must be >= 0, got {min(counts)}")
        if self.history and len(self.history) != len(self.replicas):
            raise ScheduleError(
                f"history: one entry per day ({len(self.replicas)}), got {len(self.history)}"
            )
        if not math.isfinite(self.start_epoch_s):
            raise ScheduleError(f"start_epoch_s: must be finite, got {self.start_epoch_s}")

    @property
    def name(self) -> str:
        return self.label

    @property
    def metric_target(self) -> float:
        """The metric is the desired replica count, target 1 per replica."""
        return 1.0

    def initial_state(self) -> None:
        return None

    def warm_state(self, replicas: int) -> None:
        """Stateless: the clock alone decides."""
        return None

    def day_hour(self, at_s: float) -> tuple[int, int]:
        """(day index into ``replicas``, clamped to the table, and local hour) of ``at_s``."""
        local = datetime.fromtimestamp(self.start_epoch_s + at_s, self.tz)
        day = (local.date() - self.first_day).days
        return min(max(day, 0), len(self.replicas) - 1), local.hour

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        day, hour = self.day_hour(observation.at_s)
        desired = self.replicas[day][hour]
        when = (self.first_day.toordinal() + day, hour)
        detail = (
            f"schedule: {desired} replicas for {date.fromordinal(when[0]).isoformat()} "
            f"{hour:02d}:00-{hour:02d}:59 ({observation.pending} pending)"
        )
        return Decision(desired, Reason.SCHEDULE, detail, float(desired)), None


def trailing_schedule(
    arrivals_s: Arrivals,
    *,
    replica_rps: float,
    target_utilization: float,
    span_s: float,
    first_day_replicas: int,
    start_epoch_s: float = 0.0,
    tz: tzinfo = UTC,
    window_s: float = 300.0,
    weeks: int = 1,
    min_replicas: int = 0,
    max_replicas: int | None = None,
    label: str = "trailing-schedule",
) -> DatedSchedulePolicy:
    """A schedule sized from the past alone, one local day at a time.

    The trace covers ``[0, span_s)`` seconds from ``start_epoch_s``; an hour of a day is
    *observed* when the trace covers any of it. Hour ``h`` of day ``d`` holds the replicas
    (``replicas_for_rate``, never below ``min_replicas``) of the busiest ``window_s`` window of:

    1. hour ``h`` on days ``d-7``, ..., ``d-7·weeks`` (those observed), else
    2. hour ``h`` on the previous days ``d-1``, ..., ``d-7`` (those observed), else
    3. every observed hour before day ``d`` (the history's peak);

    capped at ``max_replicas`` when given. Day 0, which has no history, holds
    ``first_day_replicas`` all day (within the same bounds). Nothing at or after the
    start of day ``d`` sizes day ``d``. The table runs one day past the trace, for the drain."""
    if weeks < 1:
        raise ScheduleError(f"weeks: must be >= 1, got {weeks}")
    if first_day_replicas < 0 or min_replicas < 0:
        raise ScheduleError("first_day_replicas, min_replicas: must be >= 0")
    if max_replicas is not None and max_replicas < min_replicas:
        raise ScheduleError(f"max_replicas: must be >= min_replicas, got {max_replicas}")
    top = math.inf if max_replicas is None else max_replicas
    if not window_s > 0 or _QUARTER_HOUR_S % window_s:
        raise ScheduleError(f"window_s: must divide {_QUARTER_HOUR_S} seconds, got {window_s}")
    if not (math.isfinite(span_s) and span_s >= 0):
        raise ScheduleError(f"span_s: must be finite and >= 0, got {span_s}")
    times = _times(arrivals_s)
    first_day = datetime.fromtimestamp(start_epoch_s, tz).date()
    last_day = datetime.fromtimestamp(start_epoch_s + span_s, tz).date()
    days = (last_day - first_day).days + 2  # one more for the drain after the trace
    peaks = np.zeros((days, HOURS_PER_DAY))
    observed = np.zeros((days, HOURS_PER_DAY), dtype=np.bool_)
    counts: dict[int, float] = {}
    if isinstance(times, PerSecond):
        inside: npt.NDArray[np.float64] | PerSecond = times.within(span_s)
    else:
        inside = times[(times >= 0) & (times < span_s)] if times.size else times
    if not _empty(inside):
        ids, found = _window_counts(inside, start_epoch_s, window_s)
        counts = dict(zip(ids.tolist(), found.tolist(), strict=True))
    first_id = math.floor(start_epoch_s / window_s)
    last_id = math.floor((start_epoch_s + max(span_s - 1e-6, 0.0)) / window_s)
    for window_id in range(first_id, last_id + 1):
        local = datetime.fromtimestamp(window_id * window_s, tz)
        day, hour = (local.date() - first_day).days, local.hour
        if not 0 <= day < days:
            continue
        observed[day, hour] = True
        peaks[day, hour] = max(peaks[day, hour], counts.get(window_id, 0) / window_s)

    def bound(replicas: int) -> int:
        return int(min(max(replicas, min_replicas), top))

    def size(rate: float) -> int:
        return bound(replicas_for_rate(rate, replica_rps, target_utilization))

    table: list[tuple[int, ...]] = [(bound(first_day_replicas),) * HOURS_PER_DAY]
    history = [HISTORY_NONE]
    for day in range(1, days):
        row = []
        weekly = True
        for hour in range(HOURS_PER_DAY):
            same_hour = observed[:day, hour]
            back_weeks = [d for d in range(day - 7, day - 7 * weeks - 1, -7) if d >= 0]
            source = [d for d in back_weeks if same_hour[d]]
            if not source:
                weekly = False
                source = [d for d in range(max(day - 7, 0), day) if same_hour[d]]
            if source:
                rate = float(peaks[source, hour].max())
            else:
                seen = observed[:day]
                rate = float(peaks[:day][seen].max()) if seen.any() else 0.0
            row.append(size(rate))
        table.append(tuple(row))
        history.append(HISTORY_WEEK if weekly else HISTORY_DAYS)
    return DatedSchedulePolicy(
        tuple(table),
        first_day,
        tuple(history),
        start_epoch_s=start_epoch_s,
        tz=tz,
        label=label,
    )
