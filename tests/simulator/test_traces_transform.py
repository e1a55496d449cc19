"""What-if transforms: time scale, rate multiplier, rename, window, merge."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.traces import (
    SynthModel,
    SynthSpec,
    build_trace,
    merge,
    rename_models,
    scale_rate,
    synthesize,
    time_scale,
    window,
)
from tests.simulator.trace_support import hourly_counts, small_trace


def test_time_scale_compresses_arrivals_only() -> None:
    original = small_trace([0.0, 10.0, 30.0], [0, 0, 0], ("m",))
    faster = time_scale(original, 0.5)
    assert list(faster.arrival_s) == [0.0, 5.0, 15.0]
    assert list(faster.input_tokens) == list(original.input_tokens)
    with pytest.raises(ValueError, match="> 0"):
        time_scale(original, 0)


@pytest.mark.parametrize("multiplier", [0.3, 1.0, 2.5])
def test_rate_multiplier_scales_counts_and_keeps_the_daily_shape(multiplier: float) -> None:
    day = synthesize(
        SynthSpec(models=(SynthModel("m", 2.0, bursts_per_day=0),), duration_s=86400, seed=2)
    )
    scaled = scale_rate(day, multiplier, seed=5)
    n = len(day)
    assert abs(len(scaled) - multiplier * n) < 5 * math.sqrt(n)
    ratio = hourly_counts(scaled) / hourly_counts(day)
    np.testing.assert_allclose(ratio, multiplier, rtol=0.1)
    again = scale_rate(day, multiplier, seed=5)
    np.testing.assert_array_equal(scaled.arrival_s, again.arrival_s)


def test_replicated_requests_interleave_instead_of_stacking() -> None:
    original = small_trace([0.0, 10.0, 20.0, 30.0], [0, 0, 0, 0], ("m",))
    doubled = scale_rate(original, 2.0, seed=1)
    assert len(doubled) == 8
    assert len(np.unique(doubled.arrival_s)) == 7  # the last request's copy shares its time


def test_rename_merges_models_and_rejects_unknown_names() -> None:
    original = small_trace([0.0, 1.0, 2.0], [0, 1, 2], ("a", "b", "c"))
    renamed = rename_models(original, {"a": "x", "b": "x"})
    assert renamed.models == ("c", "x")
    assert list(renamed.model) == [1, 1, 0]
    with pytest.raises(ValueError, match="cannot rename zz"):
        rename_models(original, {"zz": "y"})


def test_window_retimes_and_moves_the_epoch() -> None:
    original = small_trace([0.0, 100.0, 200.0, 300.0], [0, 0, 0, 0], ("m",))
    part = window(original, 100.0, 300.0)
    assert list(part.arrival_s) == [0.0, 100.0]
    assert part.epoch_s == original.epoch_s + 100.0


def test_merge_aligns_traces_on_absolute_time() -> None:
    first = small_trace([0.0, 10.0], [0, 0], ("a",))
    second = build_trace(
        np.array([0.0, 1.0]),
        np.zeros(2, np.int32),
        ["b"],
        np.ones(2, np.int32),
        np.ones(2, np.int32),
        epoch_s=first.epoch_s + 5.0,
    )
    merged = merge([first, second])
    assert merged.models == ("a", "b")
    assert list(merged.arrival_s) == [0.0, 5.0, 6.0, 10.0]
    assert list(merged.model) == [0, 1, 1, 0]
