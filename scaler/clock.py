"""The scaler's clock: Unix seconds that never step.

Windows (stabilization, warm-up, growth) are measured on it, so a wall-clock step (NTP correcting
a drifted clock, a VM resumed from a snapshot, an operator's ``date -s``) neither shortens nor
lengthens one: the wall clock is read once, at start, and from then on only the monotonic clock's
elapsed time is added. Unix time is kept as the scale because decisions are shared between scaler
replicas through the state store and stamped with it; how far two replicas can disagree is their
wall clocks' disagreement at their own start (NTP keeps nodes within milliseconds; docs/security.md
says how the scaler tolerates a few seconds), plus the monotonic clocks' drift since, which NTP
slews (never steps) and keeps within a few parts per million.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class AnchoredClock:
    """``wall()`` read once, then ``monotonic()``'s elapsed seconds; both injectable for tests."""

    __slots__ = ("_monotonic", "_offset")

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._offset = wall() - monotonic()

    def __call__(self) -> float:
        return self._offset + self._monotonic()
