"""Queue waits summarised in bounded memory: a mergeable log-bucket histogram.

A billion-request replay cannot keep one wait per request. ``WaitSketch`` keeps a count per
bucket of geometrically growing width, as DDSketch does (Masson, Rim & Lee, "DDSketch: A Fast
and Fully-Mergeable Quantile Sketch with Relative-Error Guarantees", VLDB 2019): bucket ``i``
holds waits in ``(γ^(i-1)·MIN_S, γ^i·MIN_S]`` with ``γ = (1 + α) / (1 − α)``, and a quantile is
reported as the bucket's midpoint ``2·γ^i·MIN_S / (1 + γ)``, within relative error ``α`` of a
true wait of the same rank. With ``α = 0.5%`` and waits from 1 ms to 10⁷ s, that is 2,303
buckets: 18 KB per model, whatever the trace's size. Waits of at most ``MIN_S`` count as zero
(a request that started within a millisecond of arriving did not wait).

Exact on the side: the count, the sum, the maximum and the number within the SLO (the SLO is a
threshold, not a bucket edge, so it is counted as waits are added). Weights may be fractional:
the aggregated engine starts fractions of a second's arrivals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ALPHA = 0.005
"""Relative accuracy of every reported quantile (0.5%)."""
MIN_S = 1e-3
"""Waits at or below this (seconds) count as no wait."""
MAX_S = 1e7
"""Waits above this (seconds, ~116 days) fall in the last bucket."""
_GAMMA = (1.0 + ALPHA) / (1.0 - ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
BUCKETS = math.ceil(math.log(MAX_S / MIN_S) / _LOG_GAMMA) + 1
"""Bucket 0 holds the zero waits; bucket i >= 1 holds (γ^(i-1)·MIN_S, γ^i·MIN_S]."""


def _bucket(waits: F64) -> npt.NDArray[np.int64]:
    with np.errstate(divide="ignore"):
        index = np.ceil(np.log(np.maximum(waits, MIN_S) / MIN_S) / _LOG_GAMMA - 1e-12)
    return np.clip(index, 0, BUCKETS - 1).astype(np.int64)


def _value(bucket: int) -> float:
    if bucket == 0:
        return 0.0
    return 2.0 * MIN_S * _GAMMA**bucket / (1.0 + _GAMMA)


@dataclass(slots=True)
class WaitSketch:
    """Waits (seconds, >= 0) of served requests. ``slo_s``: the threshold counted exactly."""

    slo_s: float
    counts: F64 = field(default_factory=lambda: np.zeros(BUCKETS))
    count: float = 0.0
    total: float = 0.0
    max: float = 0.0
    within_slo: float = 0.0

    def add(self, waits: F64, weights: F64 | None = None) -> None:
        """Add ``waits`` (seconds), each with its weight (requests; 1 when None)."""
        if waits.size == 0:
            return
        w = np.ones(waits.shape[0]) if weights is None else weights
        self.counts += np.bincount(_bucket(waits), weights=w, minlength=BUCKETS)
        self.count += float(w.sum())
        self.total += float(np.dot(waits, w))
        self.max = max(self.max, float(waits[w > 0].max(initial=0.0)))
        self.within_slo += float(w[waits <= self.slo_s].sum())

    def merge(self, other: WaitSketch) -> None:
        self.counts += other.counts
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self.within_slo += other.within_slo

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else 0.0

    def quantile(self, q: float) -> float:
        """The wait at rank ``q`` (0..1), within relative error ``ALPHA`` of the true one; never
        above the maximum wait seen."""
        if self.count <= 0:
            return 0.0
        cumulative = np.cumsum(self.counts)
        total = cumulative[-1]
        # The first bucket whose running count reaches the rank (a hair below it, for rounding;
        # above zero, so that empty leading buckets never answer).
        rank = max(q * total - 1e-9 * total, 1e-12 * total)
        bucket = int(np.searchsorted(cumulative, rank, side="left"))
        return min(_value(min(bucket, BUCKETS - 1)), self.max)
