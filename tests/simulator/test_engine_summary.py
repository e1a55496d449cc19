"""The summary's quantiles against numpy's own percentile (linear interpolation)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.summary import quantiles, wait_stats


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1001])
@pytest.mark.parametrize("zero_share", [0.0, 0.3, 0.96, 0.995, 1.0])
def test_quantiles_equal_numpy_percentile(n: int, zero_share: float) -> None:
    rng = np.random.default_rng(n)
    waits = rng.exponential(2.0, n)
    waits[rng.random(n) < zero_share] = 0.0
    expected = np.percentile(waits, [50.0, 95.0, 99.0])
    assert quantiles(waits, (0.5, 0.95, 0.99)) == pytest.approx(expected.tolist(), abs=1e-12)


def test_wait_stats_of_a_known_sample() -> None:
    # 0..100: mean 50, p50 50, p95 95, p99 99, max 100.
    stats = wait_stats(np.arange(101, dtype=np.float64))
    assert (stats.mean, stats.p50, stats.p95, stats.p99, stats.max) == (50, 50, 95, 99, 100)
    assert wait_stats(np.zeros(0)).max == 0.0
