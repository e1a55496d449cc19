"""The seasonal floor's memory: what each slot of the day carried on recent days.

LLM traffic repeats by the day (ServeGen, Azure and BurstGPT all show it): the ramp that starts
at 08:50 today started at 08:50 yesterday. A reactive scaler sees a ramp only once it has begun,
a GPU warm-up too late. The seasonal floor remembers, per slot of the period (a day of ten-minute
slots by default), the mean load (tasks pending + in flight) the slot carried, and keeps
capacity for it one warm-up ahead. It is learnt online from the scaler's own observations, so it
needs no trace and no training job, and it lives in the policy state, so it is bounded (one
integer per slot), shared by scaler replicas and survives restarts with the state store.

Periods: an hour and a day by default (hourly batch jobs and the daily cycle). Memory per slot
of each period: ``season[s] = max(mean load this period, decay × season[s])``. A busy slot is
remembered at once; a slot that went quiet is forgotten geometrically (at 0.7 a day a one-off
peak halves in two days). The floor never scales in on its own: it only keeps or adds capacity.

Pure: functions of their arguments.
"""

from __future__ import annotations

import math
from functools import lru_cache

from policies.config import QueueDepthConfig


def slot_of(config: QueueDepthConfig, at_s: float) -> int:
    """Slot number since the epoch of the instant ``at_s`` (seconds)."""
    return math.floor(at_s / config.seasonal_slot_s)


@lru_cache(maxsize=64)
def _layout(slot_s: float, periods_s: tuple[float, ...]) -> tuple[tuple[tuple[int, int], ...], int]:
    """((offset, slots) per period, total slots) of the season's memory."""
    out, offset = [], 0
    for period_s in periods_s:
        slots = max(round(period_s / slot_s), 1)
        out.append((offset, slots))
        offset += slots
    return tuple(out), offset


def remember(
    config: QueueDepthConfig,
    season: tuple[int, ...],
    slot: tuple[int, float, int] | None,
    at_s: float,
    load: int,
) -> tuple[tuple[int, ...], tuple[int, float, int]]:
    """Add one observation of ``load`` (tasks) at ``at_s``; when a new slot begins, the
    finished one is folded into each period's memory. Returns (season, current slot)."""
    number = slot_of(config, at_s)
    if slot is None or slot[0] > number:
        return season, (number, float(load), 1)
    if slot[0] == number:
        return season, (number, slot[1] + load, slot[2] + 1)
    layout, size = _layout(config.seasonal_slot_s, config.seasonal_periods_s)
    memory = list(season) if len(season) == size else [0] * size
    mean = slot[1] / slot[2] if slot[2] else 0.0
    for offset, slots in layout:
        index = offset + slot[0] % slots
        memory[index] = math.ceil(max(mean, config.seasonal_decay * memory[index]))
    return tuple(memory), (number, float(load), 1)


def expected_load(config: QueueDepthConfig, season: tuple[int, ...], at_s: float) -> int:
    """The load the season expects over the next warm-up: for each period, the highest of its
    slots from now to ``warmup_s`` ahead, as remembered from earlier periods; the highest of
    those across periods (an hourly job or a daily ramp, either one is worth a warm GPU).
    0 before the memory exists."""
    layout, size = _layout(config.seasonal_slot_s, config.seasonal_periods_s)
    if not layout or len(season) != size:
        return 0
    first = slot_of(config, at_s)
    last = slot_of(config, at_s + config.warmup_s)
    best = 0
    for offset, slots in layout:
        for n in range(first, last + 1):
            value = season[offset + n % slots]
            if value > best:
                best = value
    return best
