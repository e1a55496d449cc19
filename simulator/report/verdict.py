"""The verdict: which policy to pick, what it saves, which policies miss the SLO, and how far each
is from the fluid ideal.

The rule (docs/simulator.md, "The verdict"): a policy meets the SLO when, for every model, at
least ``slo_attainment`` of its requests (unserved ones counting as misses) waited at most
``slo_wait_s``. The verdict names the cheapest policy that meets it (the first in run order on a
tie) and its saving against each time-based baseline. Every policy that misses is named, with its
p95 wait against the SLO.

Pure functions of a ``SimulationResult``; report.md, report.html, report.json and the command's
summary all read them, so they always agree.
"""

from __future__ import annotations

import math

from simulator.results import (
    TIME_BASED_KINDS,
    PolicyResult,
    SimulationResult,
    Totals,
    savings_pct,
)


def meets(totals: Totals, target: float) -> bool:
    """``totals`` met the SLO: attainment >= ``target`` (0..1)."""
    return totals.slo_attainment >= target - 1e-12


def meets_slo(policy: PolicyResult, target: float) -> bool:
    """Every model of ``policy`` met the SLO (the total alone for a result without models)."""
    if not policy.per_model:
        return meets(policy.total, target)
    return all(meets(t, target) for t in policy.per_model.values())


def ideal_total(result: SimulationResult) -> float | None:
    """The fluid ideal of the whole run, USD; None when the run did not compute it."""
    if not result.ideal_cost_usd:
        return None
    return sum(result.ideal_cost_usd.values())


def ideal_of(result: SimulationResult, model: str | None = None) -> float | None:
    """The fluid ideal, USD, of one model or (``model`` None) of the run."""
    if model is None:
        return ideal_total(result)
    return result.ideal_cost_usd.get(model)


def vs_ideal(cost_usd: float, ideal_usd: float | None) -> float | None:
    """Cost as a multiple of the fluid ideal; None when there is no ideal to divide by."""
    if ideal_usd is None or not ideal_usd > 0 or not math.isfinite(cost_usd):
        return None
    return cost_usd / ideal_usd


def winner(result: SimulationResult) -> PolicyResult | None:
    """The cheapest policy that meets the SLO (first in run order on a tie), or None."""
    passing = [p for p in result.policies if meets_slo(p, result.slo_attainment)]
    return min(passing, key=lambda p: p.total.cost_usd, default=None)


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if math.isfinite(value) else "n/a"


def _s(value: float) -> str:
    return f"{value:,.1f} s" if math.isfinite(value) else "n/a"


def _target(result: SimulationResult) -> str:
    return f"{100 * result.slo_attainment:g}% of requests waiting ≤ {result.slo_wait_s:g} s"


def verdict(result: SimulationResult) -> str:
    """The report's first sentence: the policy to pick and what it saves against each
    time-based baseline, or that none meets the SLO."""
    best = winner(result)
    if best is None:
        if not result.policies:
            return "Verdict: no policy was run."
        closest = max(result.policies, key=lambda p: p.total.slo_attainment)
        return (
            f"Verdict: no policy meets the SLO ({_target(result)}). Closest: {closest.name}, "
            f"{_pct(closest.total.slo_attainment)} within the SLO, p95 wait "
            f"{_s(closest.total.wait_s.p95)}, {_usd(closest.total.cost_usd)}."
        )
    cost = best.total.cost_usd
    ratio = vs_ideal(cost, ideal_total(result))
    ideal = f", {ratio:.2f}× the fluid ideal" if ratio is not None else ""
    text = (
        f"Verdict: {best.name} is the cheapest policy that meets the SLO ({_target(result)}): "
        f"{_usd(cost)}{ideal}, {_pct(best.total.slo_attainment)} within the SLO."
    )
    savings = []
    for base in result.policies:
        if base.kind not in TIME_BASED_KINDS or base is best:
            continue
        missed = "" if meets_slo(base, result.slo_attainment) else ", which misses the SLO"
        if not base.total.cost_usd > 0:
            savings.append(f"{base.name} cost nothing{missed}")
            continue
        pct = savings_pct(cost, base.total.cost_usd)
        if pct is None:  # the chosen policy's cost is unknown: no comparison to state
            continue
        if abs(pct) < 0.05:
            savings.append(f"the same as {base.name} ({_usd(base.total.cost_usd)}{missed})")
        elif pct > 0:
            savings.append(
                f"{pct:.1f}% less than {base.name} ({_usd(base.total.cost_usd)}{missed})"
            )
        else:
            savings.append(
                f"{-pct:.1f}% more than {base.name} ({_usd(base.total.cost_usd)}{missed})"
            )
    if savings:
        text += " It costs " + "; ".join(savings) + "."
    elif not any(p.kind in TIME_BASED_KINDS for p in result.policies):
        text += " No time-based baseline was in this run."
    return text


def misses(result: SimulationResult) -> list[str]:
    """One sentence per policy that misses the SLO, in run order, with its p95 wait against the
    SLO (and, with several models, each model that missed)."""
    lines = []
    target = result.slo_attainment
    for p in result.policies:
        if meets_slo(p, target):
            continue
        text = (
            f"{p.name} misses the SLO: p95 wait {_s(p.total.wait_s.p95)} against the "
            f"{result.slo_wait_s:g} s SLO; {_pct(p.total.slo_attainment)} of requests waited "
            f"≤ {result.slo_wait_s:g} s (target {100 * target:g}%)"
        )
        if p.total.unserved:
            text += f"; {p.total.unserved:,} never served"
        if len(p.per_model) > 1:
            failed = [
                f"{m} {_pct(t.slo_attainment)}, p95 {_s(t.wait_s.p95)}"
                for m, t in p.per_model.items()
                if not meets(t, target)
            ]
            text += f" (models missing it: {'; '.join(failed)})"
        lines.append(text + ".")
    return lines


def online_lines(result: SimulationResult) -> list[str]:
    """Per policy and model served online: its online requests' waits beside its Celery
    tasks' (a model's own figures mix the two)."""
    lines = []
    for p in result.policies:
        for model, routes in p.routes.items():
            parts = [
                f"{route} {_pct(w.slo_attainment)} within the SLO, p95 {_s(w.wait_s.p95)}"
                for route, w in routes.items()
            ]
            lines.append(f"{p.name}, {model}: {'; '.join(parts)}.")
    return lines


def headline(result: SimulationResult) -> list[str]:
    """The verdict, then every SLO miss, then the online requests' waits, then every warning:
    the report's first lines."""
    return [
        verdict(result),
        *misses(result),
        *online_lines(result),
        *(f"Warning: {w}" for w in result.warnings),
    ]
