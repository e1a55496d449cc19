"""What-if transformations of a trace: time compression/stretch, rate growth, model renaming,
time windows and merging. Each returns a new ``Trace``; the input is never modified."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from simulator.traces.trace import Trace, build_trace


def time_scale(trace: Trace, factor: float) -> Trace:
    """Multiply every arrival time by ``factor`` (> 0): 0.5 replays the trace twice as fast
    (rates double), 2 stretches it. Token counts and measured service times are unchanged."""
    if not factor > 0:
        raise ValueError(f"time scale factor must be > 0, got {factor}")
    return _replace(trace, arrival_s=trace.arrival_s * factor)


def scale_rate(trace: Trace, multiplier: float, seed: int = 0) -> Trace:
    """Grow or shrink traffic by ``multiplier`` (>= 0), keeping its shape over time.

    Below 1, each request is kept with probability ``multiplier`` (thinning). Above 1, each
    request is kept and gets ``floor(multiplier) - 1`` copies plus one more with probability
    ``multiplier - floor(multiplier)``; a copy arrives a uniform fraction of the gap to the next
    request later, so copies interleave with the original traffic instead of stacking on it.
    Seeded: same seed, same trace.
    """
    if not multiplier >= 0:
        raise ValueError(f"rate multiplier must be >= 0, got {multiplier}")
    rng = np.random.default_rng(seed)
    n = len(trace)
    if multiplier <= 1:
        keep = np.flatnonzero(rng.random(n) < multiplier)
        return _take(trace, keep, trace.arrival_s[keep])
    whole = int(np.floor(multiplier))
    copies = np.full(n, whole - 1, dtype=np.int64)
    copies += rng.random(n) < (multiplier - whole)
    source = np.repeat(np.arange(n, dtype=np.int64), copies)
    gap = np.diff(trace.arrival_s, append=trace.arrival_s[-1] if n else 0.0)
    extra = trace.arrival_s[source] + rng.random(source.shape[0]) * gap[source]
    index = np.concatenate([np.arange(n, dtype=np.int64), source])
    arrival = np.concatenate([trace.arrival_s, extra])
    return _take(trace, index, arrival)


def rename_models(trace: Trace, mapping: Mapping[str, str]) -> Trace:
    """Rename models (``{old: new}``); two names mapped to one merge into one model.
    A name the trace does not have is an error (it is usually a typo)."""
    unknown = sorted(set(mapping) - set(trace.models))
    if unknown:
        raise ValueError(
            f"cannot rename {', '.join(unknown)}: not in the trace (models: {', '.join(trace.models)})"
        )
    names = [mapping.get(name, name) for name in trace.models]
    merged = sorted(set(names))
    position = {name: i for i, name in enumerate(merged)}
    remap = np.array([position[name] for name in names], dtype=np.int32)
    return build_trace(
        trace.arrival_s,
        remap[trace.model],
        merged,
        trace.input_tokens,
        trace.output_tokens,
        trace.service_s,
        epoch_s=trace.epoch_s,
        source=trace.source,
    )


def window(trace: Trace, start_s: float, end_s: float | None = None) -> Trace:
    """Requests arriving in [start_s, end_s), re-timed so ``start_s`` becomes 0 (the epoch moves
    with it, so times of day are kept)."""
    if end_s is not None and end_s < start_s:
        raise ValueError(f"window end ({end_s}) must be >= start ({start_s})")
    lo = int(np.searchsorted(trace.arrival_s, start_s, side="left"))
    hi = len(trace) if end_s is None else int(np.searchsorted(trace.arrival_s, end_s, "left"))
    index = np.arange(lo, hi, dtype=np.int64)
    shifted = _take(trace, index, trace.arrival_s[lo:hi] - start_s)
    return _replace(shifted, epoch_s=trace.epoch_s + start_s)


def merge(traces: Sequence[Trace]) -> Trace:
    """One trace holding every request of ``traces``, aligned on absolute (Unix) time; models
    with the same name are the same model. Measured service times survive only if all have them."""
    if not traces:
        raise ValueError("merge needs at least one trace")
    epoch = min(t.epoch_s for t in traces)
    names = sorted({name for t in traces for name in t.models})
    position = {name: i for i, name in enumerate(names)}
    models = [np.array([position[n] for n in t.models], dtype=np.int32)[t.model] for t in traces]
    services = [t.service_s for t in traces]
    service = None
    if all(s is not None for s in services):
        service = np.concatenate([s for s in services if s is not None])
    return build_trace(
        np.concatenate([t.arrival_s + (t.epoch_s - epoch) for t in traces]),
        np.concatenate(models).astype(np.int32),
        names,
        np.concatenate([t.input_tokens for t in traces]),
        np.concatenate([t.output_tokens for t in traces]),
        service,
        epoch_s=epoch,
        source=" + ".join(t.source for t in traces),
    )


def apply(
    trace: Trace,
    *,
    rename: Mapping[str, str] | None = None,
    time_factor: float = 1.0,
    rate: float = 1.0,
    seed: int = 0,
) -> Trace:
    """The command line's transformations, in order: rename, time scale, rate multiplier."""
    if rename:
        trace = rename_models(trace, rename)
    if time_factor != 1.0:
        trace = time_scale(trace, time_factor)
    if rate != 1.0:
        trace = scale_rate(trace, rate, seed)
    return trace


def parse_rename(specs: Sequence[str]) -> dict[str, str]:
    """``["old=new", ...]`` as a mapping; ValueError naming a malformed item."""
    mapping: dict[str, str] = {}
    for spec in specs:
        old, sep, new = spec.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"rename {spec!r}: expected OLD=NEW")
        mapping[old.strip()] = new.strip()
    return mapping


def _take(trace: Trace, index: npt.NDArray[np.int64], arrival: npt.NDArray[np.float64]) -> Trace:
    return build_trace(
        arrival.astype(np.float64, copy=False),
        trace.model[index],
        trace.models,
        trace.input_tokens[index],
        trace.output_tokens[index],
        None if trace.service_s is None else trace.service_s[index],
        epoch_s=trace.epoch_s,
        source=trace.source,
    )


def _replace(trace: Trace, **changes: object) -> Trace:
    return dataclasses.replace(trace, **changes)  # type: ignore[arg-type]
