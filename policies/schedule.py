"""Time-based scaling: replicas by wall-clock hour, the baseline queue-depth scaling is judged against.

Two ways to build one:

* ``business_hours(peak, off_peak)``: the naive schedule a team writes by hand, "N replicas
  08:00-20:00 on weekdays, M otherwise".
* ``hindsight_schedule(arrivals_s, ...)``: the best a schedule can do on a given trace. For every
  hour of the day (or of the week) it holds the replicas that hour's busiest 5-minute window on
  this trace needs, at the same target utilization as the other policies. It has seen the future,
  so it is a generous baseline: a real schedule can only be worse.

``at_s`` maps to wall-clock time through ``start_epoch_s`` (the Unix time of ``at_s == 0``; 0 when
``at_s`` already is Unix time, as in the live scaler) and a time zone.

Pure: ``decide`` reads nothing but its arguments (the time zone rules are data).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

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


def window_peaks(
    arrivals_s: npt.ArrayLike,
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
    times = np.asarray(arrivals_s, dtype=np.float64)
    slots = HOURS_PER_WEEK if weekly else HOURS_PER_DAY
    peaks = np.zeros(slots)
    if times.size == 0:
        return tuple(float(p) for p in peaks)
    if not np.all(np.isfinite(times)):
        raise ScheduleError("arrivals_s: every arrival time must be finite")
    window_ids, counts = _window_counts(times, start_epoch_s, window_s)
    # Few distinct windows (2016 a week at 5 minutes): the time zone lookup runs once per window.
    for window_id, count in zip(window_ids.tolist(), counts.tolist(), strict=True):
        slot = hour_slot(window_id * window_s, 0.0, tz, weekly)
        peaks[slot] = max(peaks[slot], count / window_s)
    return tuple(float(p) for p in peaks)


def _window_counts(
    times: npt.NDArray[np.float64], start_epoch_s: float, window_s: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Wall-clock window ids (Unix seconds // window_s) that hold arrivals, and how many each
    holds; one O(n) pass (a bincount over the trace's span), no sort."""
    # Whole windows of the epoch apart from the rest, so that adding a large epoch to a time
    # cannot round an arrival just before a window edge into the next window.
    epoch_windows = np.floor(start_epoch_s / window_s)
    remainder = start_epoch_s - epoch_windows * window_s
    bins = (np.floor((times + remainder) / window_s) + epoch_windows).astype(np.int64)
    first = int(bins.min())
    counts = np.bincount(bins - first)
    used = np.flatnonzero(counts)
    return used + first, counts[used]


def hindsight_schedule(
    arrivals_s: npt.ArrayLike,
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
    arrivals_s: npt.ArrayLike,
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
    times = np.asarray(arrivals_s, dtype=np.float64)
    if times.size == 0:
        return 0
    _, counts = _window_counts(times, start_epoch_s, window_s)
    return replicas_for_rate(float(counts.max()) / window_s, replica_rps, target_utilization)
