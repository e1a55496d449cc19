"""The wait sketch against numpy: quantiles within its stated relative error, counts, sums,
maxima and SLO attainment exact, and merging equal to summarising everything at once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine.sketch import ALPHA, MIN_S, WaitSketch
from simulator.engine.totals import sketch_stats

QS = (0.5, 0.95, 0.99)


def true_quantile(waits: np.ndarray, q: float) -> float:
    """The wait at rank q (the smallest value whose share at or below reaches q), with waits
    up to MIN_S counting as no wait, as the sketch counts them."""
    values = np.where(waits <= MIN_S, 0.0, waits)
    return float(np.quantile(values, q, method="inverted_cdf"))


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1001])
@pytest.mark.parametrize("zero_share", [0.0, 0.3, 0.96, 0.995, 1.0])
def test_quantiles_are_numpys_within_the_stated_error(n: int, zero_share: float) -> None:
    rng = np.random.default_rng(n)
    waits = rng.exponential(2.0, n)
    waits[rng.random(n) < zero_share] = 0.0
    sketch = WaitSketch(slo_s=30.0)
    sketch.add(waits)
    for q in QS:
        assert sketch.quantile(q) == pytest.approx(true_quantile(waits, q), rel=ALPHA, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=300),
    st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=0, max_size=300),
    st.floats(0.0, 1.0),
)
def test_merged_sketches_answer_as_one_over_all_waits(
    first: list[float], second: list[float], q: float
) -> None:
    a, b, whole = WaitSketch(30.0), WaitSketch(30.0), WaitSketch(30.0)
    a.add(np.array(first))
    b.add(np.array(second))
    whole.add(np.array(first + second))
    a.merge(b)
    waits = np.array(first + second)
    assert a.count == whole.count == waits.size
    assert a.within_slo == whole.within_slo == np.count_nonzero(waits <= 30.0)
    assert a.max == whole.max == waits.max()
    assert a.quantile(q) == whole.quantile(q)
    assert a.quantile(q) == pytest.approx(true_quantile(waits, q), rel=ALPHA, abs=1e-12)


def test_weighted_waits_count_as_that_many_requests() -> None:
    weighted = WaitSketch(10.0)
    weighted.add(np.array([0.0, 5.0, 20.0]), np.array([2.0, 1.5, 0.5]))
    assert (weighted.count, weighted.within_slo, weighted.total) == (4.0, 3.5, 17.5)


def test_wait_stats_of_a_known_sample() -> None:
    # 0..100: mean 50, p50 50, p95 95, p99 99, max 100 (quantiles within 0.5%).
    sketch = WaitSketch(30.0)
    sketch.add(np.arange(101, dtype=np.float64))
    stats = sketch_stats(sketch)
    assert (stats.mean, stats.max) == (50, 100)
    assert (stats.p50, stats.p95, stats.p99) == pytest.approx((50, 95, 99), rel=ALPHA)
    assert sketch_stats(WaitSketch(30.0)).max == 0.0
