"""Traffic aggregated per second: what the simulator's aggregated (fluid) engine replays.

A trace of a billion requests does not fit in memory one request at a time, and does not need
to: above a few hundred requests per second the queue is decided by how many requests arrive in
each second and how long they hold a batch slot, not by where each one falls inside its second.
``ArrivalBins`` holds exactly that, in memory proportional to the trace's *duration*:

* ``counts[m, k]``: requests of model ``m`` arriving in ``[k·bin_s, (k+1)·bin_s)`` seconds after
  ``epoch_s`` (float64, so a rate-scaled trace may carry fractions);
* ``mixes[m]``: the model's request lengths, as a sample of (input, output) token counts per
  ``period_s`` (ServeGen publishes length distributions per 6-hour window), or measured service
  times when the trace has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.traces.trace import Trace

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, eq=False)
class LengthMix:
    """A model's request lengths over time: row ``p`` describes requests arriving in
    ``[p·period_s, (p+1)·period_s)`` seconds after the trace start (the last row also covers
    anything later).

    input_tokens/output_tokens: (n_periods, k) int32 samples of prompt and generated tokens,
                                equally weighted within a row.
    service_s:                  (n_periods, k) float64 measured service times (seconds) when the
                                trace has them, else None (the scenario's service model applies).
    weights:                    None: row ``p`` describes period ``p`` (as above). Else (n_periods,
                                n_rows) float64, each period's rows summing to 1: the rows are
                                *components* (e.g. one client's lengths over six hours) and
                                period ``p``'s lengths are their mixture with these weights, so
                                a mix can follow which clients are busy window by window.
    """

    period_s: float
    input_tokens: I32
    output_tokens: I32
    service_s: F64 | None = None
    weights: F64 | None = None

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s}")
        if self.input_tokens.ndim != 2 or self.input_tokens.shape != self.output_tokens.shape:
            raise ValueError("input_tokens and output_tokens must be (n_periods, k) arrays alike")
        if self.input_tokens.shape[0] < 1 or self.input_tokens.shape[1] < 1:
            raise ValueError("a length mix needs at least one period and one sample")
        if self.service_s is not None and self.service_s.shape != self.input_tokens.shape:
            raise ValueError("service_s must have the token samples' shape")
        if self.weights is not None:
            w = self.weights
            if w.ndim != 2 or w.shape[1] != self.input_tokens.shape[0] or w.shape[0] < 1:
                raise ValueError("weights must be (n_periods, n_rows)")
            if not (np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0)):
                raise ValueError("each period's weights must be >= 0 and sum to 1")

    @property
    def periods(self) -> int:
        if self.weights is not None:
            return int(self.weights.shape[0])
        return int(self.input_tokens.shape[0])

    def per_period(self, row_values: F64) -> F64:
        """A per-row figure (e.g. each row's mean service time) as each period's figure."""
        values = np.asarray(row_values, dtype=np.float64)
        return values if self.weights is None else self.weights @ values

    def period_of(self, t_s: F64) -> npt.NDArray[np.int64]:
        """The row describing requests that arrive at ``t_s`` (seconds from the trace start)."""
        rows = np.floor(np.asarray(t_s, dtype=np.float64) / self.period_s).astype(np.int64)
        return np.clip(rows, 0, self.periods - 1)


@dataclass(frozen=True, eq=False)
class ArrivalBins:
    """Arrivals per model per ``bin_s`` seconds (see the module docstring).

    models:   model names as the trace spells them.
    counts:   (n_models, n_bins) float64 >= 0, requests arriving in each bin.
    bin_s:    bin width, seconds (1 by default).
    mixes:    one ``LengthMix`` per model.
    epoch_s:  Unix time (seconds, UTC) of the trace start; gives time of day and week.
    source:   where the traffic came from, for reports.
    """

    models: tuple[str, ...]
    counts: F64
    mixes: tuple[LengthMix, ...]
    bin_s: float = 1.0
    epoch_s: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.counts.ndim != 2 or self.counts.shape[0] != len(self.models):
            raise ValueError("counts must be (n_models, n_bins)")
        if len(self.mixes) != len(self.models):
            raise ValueError("one length mix per model")
        if not self.bin_s > 0:
            raise ValueError(f"bin_s must be > 0, got {self.bin_s}")

    @property
    def n_bins(self) -> int:
        return int(self.counts.shape[1])

    @property
    def duration_s(self) -> float:
        """Seconds from the start to the end of the last bin holding an arrival (0 if none)."""
        nonzero = np.flatnonzero(self.counts.sum(axis=0) > 0)
        return float((nonzero[-1] + 1) * self.bin_s) if nonzero.size else 0.0

    def requests(self) -> float:
        return float(self.counts.sum())

    def period_requests(self, model: int) -> F64:
        """Requests of model ``model`` arriving in each period of its length mix."""
        mix = self.mixes[model]
        rows = mix.period_of(np.arange(self.n_bins, dtype=np.float64) * self.bin_s)
        per_period = np.bincount(rows, weights=self.counts[model], minlength=mix.periods)
        return per_period.astype(np.float64)


MIX_SAMPLES = 16384
"""Samples per period in the length mixes built here (about 0.7% error on a period's mean
service time for log-normal lengths with sigma 0.8)."""


def bins_from_trace(
    trace: Trace,
    bin_s: float = 1.0,
    *,
    period_s: float = 3600.0,
    samples: int = MIX_SAMPLES,
    seed: int = 0,
) -> ArrivalBins:
    """A per-request trace aggregated: each model's arrivals per ``bin_s`` seconds
    (``floor(arrival_s / bin_s)``), and per ``period_s`` (an hour) ``samples`` requests drawn
    uniformly, with replacement, from those the model received in that period, with their
    measured ``service_s`` when the trace has it. A period in which a model received nothing
    repeats its nearest earlier period (else its first). Seeded."""
    if not bin_s > 0 or not period_s > 0:
        raise ValueError(f"bin_s and period_s must be > 0, got {bin_s} and {period_s}")
    if not len(trace):
        raise ValueError("an empty trace has no arrivals to bin")
    n_bins = int(trace.duration_s // bin_s) + 1
    n_models = len(trace.models)
    cell = trace.model.astype(np.int64) * n_bins + np.floor(trace.arrival_s / bin_s).astype(
        np.int64
    )
    counts = np.bincount(cell, minlength=n_models * n_bins).astype(np.float64)
    del cell
    n_periods = int(trace.duration_s // period_s) + 1
    rng = np.random.default_rng(seed)
    mixes = tuple(_trace_mix(trace, m, period_s, n_periods, samples, rng) for m in range(n_models))
    return ArrivalBins(
        models=trace.models,
        counts=counts.reshape(n_models, n_bins),
        mixes=mixes,
        bin_s=bin_s,
        epoch_s=trace.epoch_s,
        source=trace.source,
    )


def _trace_mix(
    trace: Trace, model: int, period_s: float, n_periods: int, k: int, rng: np.random.Generator
) -> LengthMix:
    mine = np.flatnonzero(trace.model == model)  # in arrival order
    edges = np.searchsorted(trace.arrival_s[mine], np.arange(n_periods + 1) * period_s, "left")
    edges[-1] = mine.shape[0]
    picks = np.zeros((n_periods, k), dtype=np.int64)
    filled = np.zeros(n_periods, dtype=bool)
    for p in range(n_periods):
        lo, hi = int(edges[p]), int(edges[p + 1])
        if hi > lo:
            picks[p] = mine[rng.integers(lo, hi, size=k)]
            filled[p] = True
    latest = np.maximum.accumulate(np.where(filled, np.arange(n_periods), -1))
    picks = picks[np.where(latest >= 0, latest, int(np.argmax(filled)))]
    return LengthMix(
        period_s=period_s,
        input_tokens=trace.input_tokens[picks],
        output_tokens=trace.output_tokens[picks],
        service_s=None if trace.service_s is None else trace.service_s[picks],
    )
