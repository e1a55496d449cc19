"""Time-based scaling: replicas by wall-clock hour, the baseline queue-depth scaling is judged against.

``business_hours(peak, off_peak)`` builds the naive schedule a team writes by hand, "N replicas
08:00-20:00 on weekdays, M otherwise". The schedules sized from a trace (the hindsight and the
trailing schedule) are built by the simulator (``simulator.schedule_sizing``), which reads traces
with numpy; they decide through ``SchedulePolicy`` and ``DatedSchedulePolicy`` here.

``at_s`` maps to wall-clock time through ``start_epoch_s`` (the Unix time of ``at_s == 0``; 0 when
``at_s`` already is Unix time, as in the live scaler) and a time zone.

Pure: ``decide`` reads nothing but its arguments (the time zone rules are data).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

from policies.types import Decision, Observation, Reason

HOURS_PER_DAY = 24
HOURS_PER_WEEK = 7 * 24
WEEKDAYS = (0, 1, 2, 3, 4)  # Monday..Friday, datetime.weekday() numbering
QUARTER_HOUR_S = 900  # seconds; every time zone offset in use is a multiple of 15 minutes


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
