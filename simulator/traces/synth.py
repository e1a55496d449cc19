"""Seeded synthetic traces: several models, daily and weekly cycles, bursts.

Per model, the arrival rate (requests/s) over the trace clock t (seconds after
``DEFAULT_EPOCH_S``, a Monday 00:00 UTC) is

    rate(t) = c · (1 + a·cos(2π·(hour(t) − peak_hour)/24)) · w(t) · b(t)

with ``a`` the daily amplitude, ``w`` = ``weekend_factor`` on Saturdays and Sundays (1 on
weekdays), ``b`` = ``burst_factor`` inside a burst (1 outside; bursts start as a Poisson
process, ``bursts_per_day`` a day, and last uniformly ``burst_s``), and ``c`` chosen so the
mean over the trace is ``mean_rps``. Given the rate curve, arrivals are a non-homogeneous
Poisson process: the total count is fixed (``requests``, default the rates' expected total),
spread over (1-second bin, model) cells multinomially, uniform within a bin. Token counts are
log-normal per model. Models are listed in name order. Everything is vectorised numpy (its speed:
benchmarks/simulator_throughput.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.traces.trace import DEFAULT_EPOCH_S, Trace, build_trace

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


@dataclass(frozen=True, slots=True)
class SynthModel:
    """One model's traffic shape.

    mean_rps:           average arrival rate over the whole trace, requests/s, > 0.
    peak_hour:          hour of day (trace clock, UTC) of the daily peak, [0, 24).
    daily_amplitude:    relative swing of the daily cycle, [0, 1): 0.7 means the trough is 30%
                        and the peak 170% of the day's mean.
    weekend_factor:     Saturday/Sunday rate relative to weekdays, > 0.
    bursts_per_day:     expected bursts per day, >= 0.
    burst_factor:       rate multiplier inside a burst, >= 1.
    burst_s:            (shortest, longest) burst, seconds.
    input_tokens_mean:  mean prompt tokens (log-normal), > 0.
    output_tokens_mean: mean generated tokens (log-normal), > 0.
    token_sigma:        log-normal sigma of both token counts, >= 0.
    """

    name: str
    mean_rps: float
    peak_hour: float = 14.0
    daily_amplitude: float = 0.7
    weekend_factor: float = 0.4
    bursts_per_day: float = 3.0
    burst_factor: float = 4.0
    burst_s: tuple[float, float] = (120.0, 900.0)
    input_tokens_mean: float = 200.0
    output_tokens_mean: float = 180.0
    token_sigma: float = 0.8

    def __post_init__(self) -> None:
        checks = [
            ("mean_rps", self.mean_rps > 0, "> 0"),
            ("peak_hour", 0 <= self.peak_hour < 24, "in [0, 24)"),
            ("daily_amplitude", 0 <= self.daily_amplitude < 1, "in [0, 1)"),
            ("weekend_factor", self.weekend_factor > 0, "> 0"),
            ("bursts_per_day", self.bursts_per_day >= 0, ">= 0"),
            ("burst_factor", self.burst_factor >= 1, ">= 1"),
            ("burst_s", 0 < self.burst_s[0] <= self.burst_s[1], "0 < shortest <= longest"),
            ("input_tokens_mean", self.input_tokens_mean > 0, "> 0"),
            ("output_tokens_mean", self.output_tokens_mean > 0, "> 0"),
            ("token_sigma", self.token_sigma >= 0, ">= 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{self.name}.{name}: must be {rule}, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class SynthSpec:
    """duration_s: trace length, seconds, > 0. requests: exact total (None = the rates' expected
    total, rounded). bin_s: resolution of the rate curve, seconds. seed: every draw."""

    models: tuple[SynthModel, ...]
    duration_s: float = WEEK_S
    requests: int | None = None
    seed: int = 0
    bin_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: at least one is needed")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"models: names must be unique, got {names}")
        if not self.duration_s > 0:
            raise ValueError(f"duration_s: must be > 0, got {self.duration_s}")
        if self.requests is not None and self.requests < 0:
            raise ValueError(f"requests: must be >= 0, got {self.requests}")
        if not 0 < self.bin_s <= self.duration_s:
            raise ValueError(f"bin_s: must be in (0, duration_s], got {self.bin_s}")

    @property
    def expected_requests(self) -> int:
        return round(sum(m.mean_rps for m in self.models) * self.duration_s)


def rate_curve(
    model: SynthModel, bins: int, bin_s: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """The model's rate (requests/s) in each bin, mean ``model.mean_rps`` (bursts drawn from rng)."""
    t = (np.arange(bins, dtype=np.float64) + 0.5) * bin_s
    hour = (t % DAY_S) / 3600.0
    rate = 1.0 + model.daily_amplitude * np.cos(2.0 * math.pi * (hour - model.peak_hour) / 24.0)
    weekend = (t // DAY_S) % 7 >= 5  # the epoch is a Monday
    rate *= np.where(weekend, model.weekend_factor, 1.0)
    duration = bins * bin_s
    n_bursts = int(rng.poisson(model.bursts_per_day * duration / DAY_S))
    if n_bursts and model.burst_factor > 1:
        starts = rng.uniform(0.0, duration, n_bursts)
        ends = starts + rng.uniform(model.burst_s[0], model.burst_s[1], n_bursts)
        edges = np.zeros(bins + 1, dtype=np.int64)
        np.add.at(edges, np.minimum((starts / bin_s).astype(np.int64), bins), 1)
        np.add.at(edges, np.minimum(np.ceil(ends / bin_s).astype(np.int64), bins), -1)
        inside = np.cumsum(edges[:-1]) > 0
        rate *= np.where(inside, model.burst_factor, 1.0)
    scaled: npt.NDArray[np.float64] = rate * (model.mean_rps / float(rate.mean()))
    return scaled


def synthesize(spec: SynthSpec) -> Trace:
    """The trace ``spec`` describes (same spec and seed, same trace)."""
    rng = np.random.default_rng(spec.seed)
    bins = max(1, math.ceil(spec.duration_s / spec.bin_s))
    n_models = len(spec.models)
    rates = np.empty((bins, n_models), dtype=np.float64)
    for m, shape in enumerate(spec.models):
        rates[:, m] = rate_curve(shape, bins, spec.bin_s, rng)
    rates[-1, :] *= (spec.duration_s - (bins - 1) * spec.bin_s) / spec.bin_s  # partial last bin
    total = spec.expected_requests if spec.requests is None else spec.requests
    weights = rates.ravel()
    counts = rng.multinomial(total, weights / weights.sum())
    cell = np.repeat(np.arange(bins * n_models, dtype=np.int64), counts)
    arrival = (cell // n_models).astype(np.float64)
    arrival += rng.random(total)
    arrival *= spec.bin_s
    np.minimum(arrival, spec.duration_s, out=arrival)
    model = (cell % n_models).astype(np.int32)
    del cell
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order]
    model = model[order]
    del order
    mus = np.array(
        [
            [math.log(m.input_tokens_mean) - m.token_sigma**2 / 2 for m in spec.models],
            [math.log(m.output_tokens_mean) - m.token_sigma**2 / 2 for m in spec.models],
        ]
    )
    sigmas = np.array([m.token_sigma for m in spec.models])
    input_tokens = _tokens(rng, mus[0][model], sigmas[model])
    output_tokens = _tokens(rng, mus[1][model], sigmas[model])
    return build_trace(
        arrival,
        model,
        [m.name for m in spec.models],
        input_tokens,
        output_tokens,
        epoch_s=DEFAULT_EPOCH_S,
        source=f"synthetic (seed {spec.seed})",
    )


def _tokens(
    rng: np.random.Generator, mu: npt.NDArray[np.float64], sigma: npt.NDArray[np.float64]
) -> npt.NDArray[np.int32]:
    values = rng.lognormal(mu, sigma)
    np.rint(values, out=values)
    np.clip(values, 1, 1_000_000, out=values)
    return values.astype(np.int32)


def benchmark_spec(requests: int = 10_000_000, days: float = 7.0, seed: int = 0) -> SynthSpec:
    """The simulator benchmark's trace: ``days`` days, 3 models, exactly ``requests`` requests
    (10 M over 7 days ≈ 16.5 req/s on average), peaks at different hours."""
    return SynthSpec(
        models=(
            SynthModel("llama-3-8b", mean_rps=0.6, peak_hour=14.0),
            SynthModel("llama-3-70b", mean_rps=0.25, peak_hour=16.0, output_tokens_mean=250.0),
            SynthModel("mistral-7b", mean_rps=0.15, peak_hour=10.0, daily_amplitude=0.5),
        ),
        duration_s=days * DAY_S,
        requests=requests,
        seed=seed,
    )


def benchmark_trace(requests: int = 10_000_000, days: float = 7.0, seed: int = 0) -> Trace:
    """``synthesize(benchmark_spec(...))``: the 7-day, 3-model, 10 M-request benchmark trace."""
    return synthesize(benchmark_spec(requests, days, seed))
