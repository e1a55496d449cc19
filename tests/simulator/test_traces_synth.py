"""The synthetic generator: seeded, a daily cycle, weekends, bursts, exact counts."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.traces import SynthModel, SynthSpec, benchmark_spec, synthesize
from tests.simulator.trace_support import hourly_counts


def test_synth_is_deterministic_per_seed() -> None:
    spec = SynthSpec(models=(SynthModel("a", 1.0), SynthModel("b", 0.5)), duration_s=7200, seed=1)
    first, again = synthesize(spec), synthesize(spec)
    other = synthesize(SynthSpec(models=spec.models, duration_s=7200, seed=2))
    for column in ("arrival_s", "model", "input_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(first, column), getattr(again, column))
    assert not np.array_equal(first.arrival_s[:100], other.arrival_s[:100])


def test_synth_daily_cycle_peaks_at_the_peak_hour() -> None:
    amplitude = 0.6
    spec = SynthSpec(
        models=(SynthModel("m", 3.0, peak_hour=14.0, daily_amplitude=amplitude, bursts_per_day=0),),
        duration_s=86400,
        seed=3,
    )
    hourly = hourly_counts(synthesize(spec))
    assert int(np.argmax(hourly)) in (13, 14)
    assert int(np.argmin(hourly)) in (1, 2)
    # rate ∝ 1 + a·cos(2π(h − 14)/24): the 14:00 hour over the 02:00 hour is (1 + a)/(1 − a).
    assert hourly[14] / hourly[2] == pytest.approx((1 + amplitude) / (1 - amplitude), rel=0.1)


def test_synth_weekends_and_model_shares() -> None:
    spec = SynthSpec(
        models=(
            SynthModel("a", 0.3, weekend_factor=0.4, bursts_per_day=0),
            SynthModel("b", 0.1, weekend_factor=0.4, bursts_per_day=0),
        ),
        seed=4,
    )
    week = synthesize(spec)
    assert len(week) == spec.expected_requests
    daily = np.bincount((week.arrival_s // 86400).astype(np.int64), minlength=7)
    assert daily[5:].mean() / daily[:5].mean() == pytest.approx(0.4, rel=0.05)  # Sat, Sun
    counts = week.counts()
    assert counts[0] / len(week) == pytest.approx(0.75, abs=0.01)
    assert week.arrival_s[-1] <= spec.duration_s


def test_synth_bursts_raise_the_peak_minute() -> None:
    calm = SynthModel("m", 2.0, daily_amplitude=0.0, bursts_per_day=0)
    bursty = SynthModel("m", 2.0, daily_amplitude=0.0, bursts_per_day=6, burst_factor=5.0)

    def peak_minute(model: SynthModel) -> int:
        t = synthesize(SynthSpec(models=(model,), duration_s=86400, seed=5))
        return int(np.bincount((t.arrival_s // 60).astype(np.int64)).max())

    assert peak_minute(bursty) > 2 * peak_minute(calm)


def test_synth_exact_request_count_and_tokens() -> None:
    spec = SynthSpec(
        models=(SynthModel("m", 1.0, input_tokens_mean=500, output_tokens_mean=50),),
        duration_s=3600,
        requests=12_345,
        seed=6,
    )
    made = synthesize(spec)
    assert len(made) == 12_345
    assert made.input_tokens.mean() == pytest.approx(500, rel=0.05)
    assert made.output_tokens.mean() == pytest.approx(50, rel=0.05)


def test_benchmark_spec_is_seven_days_three_models_ten_million() -> None:
    spec = benchmark_spec()
    assert spec.requests == 10_000_000
    assert spec.duration_s == 7 * 86400
    assert len(spec.models) == 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mean_rps": 0}, "mean_rps"),
        ({"daily_amplitude": 1.0}, "daily_amplitude"),
        ({"burst_factor": 0.5}, "burst_factor"),
        ({"burst_s": (10.0, 5.0)}, "burst_s"),
    ],
)
def test_synth_model_rejects_bad_values(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"name": "m", "mean_rps": 1.0} | kwargs
    with pytest.raises(ValueError, match=f"m.{field}"):
        SynthModel(**arguments)  # type: ignore[arg-type]
