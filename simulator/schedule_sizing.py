"""Schedules sized from a trace: the time-based baselines the simulator compares against.

* ``hindsight_schedule(arrivals_s, ...)``: the best a schedule can do on a given trace. For every
  hour of the day (or of the week) it holds the replicas that hour's busiest 5-minute window on
  this trace needs, at the same target utilization as the other policies. It has seen the future,
  so it is a generous baseline: a real schedule can only be worse.
* ``trailing_schedule(arrivals_s, ...)``: a schedule a team can run. Each local day is sized, hour
  by hour, from the same hour of the previous week(s) of the trace, or of the previous days while
  no week has passed; it never sees the day it is scored on.
* ``peak_replicas(arrivals_s, ...)``: static provisioning for the trace's busiest window.

They read arrival times as numpy arrays (or per-second counts), so they live with the simulator;
the policies they build (``policies.schedule``) import nothing third-party.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import numpy as np
import numpy.typing as npt

from policies.schedule import (
    HISTORY_DAYS,
    HISTORY_NONE,
    HISTORY_WEEK,
    HOURS_PER_DAY,
    HOURS_PER_WEEK,
    QUARTER_HOUR_S,
    DatedSchedulePolicy,
    ScheduleError,
    SchedulePolicy,
    hour_slot,
    replicas_for_rate,
)


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
    if not window_s > 0 or QUARTER_HOUR_S % window_s:
        raise ScheduleError(f"window_s: must divide {QUARTER_HOUR_S} seconds, got {window_s}")
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
    if not window_s > 0 or QUARTER_HOUR_S % window_s:
        raise ScheduleError(f"window_s: must divide {QUARTER_HOUR_S} seconds, got {window_s}")
    times = _times(arrivals_s)
    if _empty(times):
        return 0
    _, counts = _window_counts(times, start_epoch_s, window_s)
    return replicas_for_rate(float(counts.max()) / window_s, replica_rps, target_utilization)


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
    if not window_s > 0 or QUARTER_HOUR_S % window_s:
        raise ScheduleError(f"window_s: must divide {QUARTER_HOUR_S} seconds, got {window_s}")
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
