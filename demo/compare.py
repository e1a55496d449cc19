"""The live run set against the simulator's run of the same trace and settings.

Per model: the policy's evaluations by reason, the Deployment's scale events, the replicas over
time (desired: the Deployment's count; ready: serving) on the same sample instants, as the mean
and the largest absolute difference, the waits' p50 and p95 (trace seconds), and the tasks lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo.live import LiveResult
from simulator.results import PolicyResult


@dataclass(frozen=True, slots=True)
class SeriesGap:
    """Two replica series on the same instants: their means and how far apart they are
    (replicas). ``points``: instants compared."""

    live_mean: float
    sim_mean: float
    mean_abs: float
    max_abs: float
    points: int


@dataclass(frozen=True, slots=True)
class ModelComparison:
    """One model, live against simulated. Waits in trace seconds; None when nothing was served."""

    model: str
    scale_events: tuple[int, int]
    desired: SeriesGap
    ready: SeriesGap
    wait_p50_s: tuple[float | None, float]
    wait_p95_s: tuple[float | None, float]
    submitted: int
    served: tuple[int, int]
    failed: int
    lost: tuple[int, int]


def gap(live: list[int], simulated: np.ndarray) -> SeriesGap:
    n = min(len(live), int(simulated.size))
    a = np.asarray(live[:n], dtype=np.float64)
    b = np.asarray(simulated[:n], dtype=np.float64)
    diff = np.abs(a - b)
    return SeriesGap(
        live_mean=float(a.mean()) if n else 0.0,
        sim_mean=float(b.mean()) if n else 0.0,
        mean_abs=float(diff.mean()) if n else 0.0,
        max_abs=float(diff.max()) if n else 0.0,
        points=n,
    )


def _quantile(values: list[float], q: float) -> float | None:
    return float(np.quantile(np.asarray(values), q)) if values else None


def compare(live: LiveResult, simulated: PolicyResult) -> list[ModelComparison]:
    out = []
    for model, series in live.series.items():
        sim_series = simulated.series[model]
        totals = simulated.per_model[model]
        waits = live.waits_s[model]
        out.append(
            ModelComparison(
                model=model,
                scale_events=(series.scale_events, totals.scale_events),
                desired=gap(series.desired, sim_series.replicas_desired),
                ready=gap(series.ready, sim_series.replicas_ready),
                wait_p50_s=(_quantile(waits, 0.5), totals.wait_s.p50),
                wait_p95_s=(_quantile(waits, 0.95), totals.wait_s.p95),
                submitted=live.submitted[model],
                served=(live.succeeded[model], totals.served),
                failed=live.failed[model],
                lost=(
                    live.submitted[model] - live.succeeded[model] - live.failed[model],
                    totals.unserved,
                ),
            )
        )
    return out


def reasons(live: LiveResult, simulated: PolicyResult) -> dict[str, tuple[int, int]]:
    """The policy's decisions by reason, summed over models: reason -> (live, simulated), over
    the same evaluation instants (the simulator counts its reasons over all models)."""
    counts: dict[str, int] = {}
    for series in live.series.values():
        for reason, n in series.reasons.items():
            counts[reason] = counts.get(reason, 0) + n
    keys = sorted(set(counts) | set(simulated.reasons))
    return {k: (counts.get(k, 0), simulated.reasons.get(k, 0)) for k in keys}


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _diff(live: float | None, sim: float) -> str:
    return "-" if live is None else f"{live - sim:+.1f}"


def lines(comparisons: list[ModelComparison], by_reason: dict[str, tuple[int, int]]) -> list[str]:
    """The comparison as text: a verdict line per model first, then the tables."""
    out = []
    for c in comparisons:
        lost = c.lost[0]
        out.append(
            f"{c.model}: replicas over time differ by {c.desired.mean_abs:.2f} on average "
            f"(max {c.desired.max_abs:g}); ready replicas by {c.ready.mean_abs:.2f} (max "
            f"{c.ready.max_abs:g}); {lost} of {c.submitted} tasks lost"
            + ("" if lost == 0 else "  <-- LOST TASKS")
        )
    for c in comparisons:
        rows: list[tuple[str, str, str, str]] = []
        a, b = c.scale_events
        rows.append(("scale events (KEDA, HPA)", str(a), str(b), f"{a - b:+d}"))
        for label, g in (("replicas (desired)", c.desired), ("replicas (ready)", c.ready)):
            rows.append((f"{label}, mean", f"{g.live_mean:.2f}", f"{g.sim_mean:.2f}",
                         f"mean |Δ| {g.mean_abs:.2f}, max {g.max_abs:g}"))  # fmt: skip
        for label, (a_w, b_w) in (("wait p50, s", c.wait_p50_s), ("wait p95, s", c.wait_p95_s)):
            rows.append((label, _num(a_w), _num(b_w), _diff(a_w, b_w)))
        a, b = c.served
        rows.append(("tasks served", str(a), str(b), f"{a - b:+d}"))
        rows.append(("tasks failed", str(c.failed), "-", ""))
        a, b = c.lost
        rows.append(("tasks lost", str(a), str(b), f"{a - b:+d}"))
        out.append("")
        out.append(f"{c.model} ({c.submitted} tasks submitted, {c.desired.points} samples)")
        out.extend(_table(rows))
    live_evals = sum(a for a, _ in by_reason.values())
    sim_evals = sum(b for _, b in by_reason.values())
    rows = [("policy decisions", str(live_evals), str(sim_evals), f"{live_evals - sim_evals:+d}")]
    rows += [(f"  {k}", str(a), str(b), f"{a - b:+d}") for k, (a, b) in by_reason.items()]
    out.append("")
    out.append("decisions by reason (all models, every KEDA poll and HPA sync)")
    out.extend(_table(rows))
    return out


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    out = [f"  {'':<28}{'live':>10}{'simulated':>11}   difference"]
    out += [f"  {label:<28}{a:>10}{b:>11}   {d}" for label, a, b, d in rows]
    return out
