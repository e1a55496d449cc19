"""The queue-depth policy's memory between decisions: small, immutable, serialisable.

The live scaler keeps it in memory or in Redis (so a restarted or second scaler replica answers
alike); the simulator keeps it in a variable. ``to_dict``/``from_dict`` give a JSON-safe form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STATE_VERSION = 4


class StateError(ValueError):
    """A stored state could not be read back (wrong version, missing or bad field)."""


@dataclass(frozen=True, slots=True)
class QueueDepthState:
    """desired:         replicas the last decision asked for (the scaler's own view of the
                        target's size when the edge reports none), >= 0.
    last_increase_s:    when ``desired`` last went up (seconds), None if never; replicas asked for
                        since then are still warming while less than ``warmup_s`` old.
    warming_from:       ``desired`` just before that last increase run began: the replicas
                        above it are the ones on their way.
    low_since_s:        start of the current unbroken run of below-threshold observations; reset
                        by any other observation and by any scale-up.
    last_down_s:        when the last scale-down step of the current low run was taken, None if
                        none: the next step waits ``scale_down_period_s`` after it.
    idle_since_s:       start of the current unbroken run with nothing pending and nothing in
                        flight.
    first_seen_s:       the first observation this state has seen: no scale-down before a whole
                        window has been observed.
    last_at_s:          time of the last observation used, for ordering.
    samples:            recent (at_s, pending, in_flight) within ``growth_window_s``, oldest first
                        (in_flight 0 when unknown).
    proposals:          the capacity-target rule's recent (at_s, replicas) proposals within
                        ``stabilization_window_s``, oldest first; scale-down goes to their maximum.
    season:             the seasonal floor's memory: per slot of the period (e.g. 144 ten-minute
                        slots of a day), the load (tasks) that slot carried on recent days,
                        decayed day by day; empty until learnt (``policies.season``).
    slot:               (slot number since the epoch, load sum, samples) of the slot being
                        observed, folded into ``season`` when the slot ends; None before any.
    """

    desired: int = 0
    last_increase_s: float | None = None
    warming_from: int = 0
    low_since_s: float | None = None
    last_down_s: float | None = None
    idle_since_s: float | None = None
    first_seen_s: float | None = None
    last_at_s: float | None = None
    samples: tuple[tuple[float, int, int], ...] = ()
    proposals: tuple[tuple[float, int], ...] = ()
    season: tuple[int, ...] = ()
    slot: tuple[int, float, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "desired": self.desired,
            "last_increase_s": self.last_increase_s,
            "warming_from": self.warming_from,
            "low_since_s": self.low_since_s,
            "last_down_s": self.last_down_s,
            "idle_since_s": self.idle_since_s,
            "first_seen_s": self.first_seen_s,
            "last_at_s": self.last_at_s,
            "samples": [[t, p, f] for t, p, f in self.samples],
            "proposals": [[t, r] for t, r in self.proposals],
            "season": list(self.season),
            "slot": None if self.slot is None else list(self.slot),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueDepthState:
        if data.get("v") != STATE_VERSION:
            raise StateError(f"state version {data.get('v')!r} is not {STATE_VERSION}")
        try:
            return cls(
                desired=int(data["desired"]),
                last_increase_s=_opt_float(data["last_increase_s"]),
                warming_from=int(data["warming_from"]),
                low_since_s=_opt_float(data["low_since_s"]),
                last_down_s=_opt_float(data["last_down_s"]),
                idle_since_s=_opt_float(data["idle_since_s"]),
                first_seen_s=_opt_float(data["first_seen_s"]),
                last_at_s=_opt_float(data["last_at_s"]),
                samples=tuple((float(t), int(p), int(f)) for t, p, f in data["samples"]),
                proposals=tuple((float(t), int(r)) for t, r in data["proposals"]),
                season=tuple(int(v) for v in data["season"]),
                slot=_opt_slot(data["slot"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"bad state field: {exc!r}") from exc


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_slot(value: Any) -> tuple[int, float, int] | None:
    if value is None:
        return None
    number, total, count = value
    return int(number), float(total), int(count)
