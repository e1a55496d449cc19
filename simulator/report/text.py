"""Human-readable tables and sentences shared by report.md and report.html.

Numbers are formatted once here, so the two files always say the same thing.
"""

from __future__ import annotations

import math

from simulator.report.verdict import ideal_of, meets, vs_ideal
from simulator.results import (
    TIME_BASED_KINDS,
    SimulationResult,
    Totals,
    baselines,
    savings_table,
)

Table = tuple[list[str], list[list[str]]]


def usd(value: float) -> str:
    return f"${value:,.2f}" if math.isfinite(value) else "n/a"


def seconds(value: float) -> str:
    return f"{value:,.1f} s" if math.isfinite(value) else "n/a"


def share(value: float) -> str:
    """A 0..1 share as a percentage."""
    return f"{100 * value:.1f}%" if math.isfinite(value) else "n/a"


def saving(value: float | None) -> str:
    """Savings percent; negative means more expensive than the baseline."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.1f}%".replace("-", "−")


def span(duration_s: float) -> str:
    if duration_s >= 2 * 86400:
        return f"{duration_s / 86400:.1f} days"
    if duration_s >= 2 * 3600:
        return f"{duration_s / 3600:.1f} hours"
    return f"{duration_s / 60:.1f} minutes"


_HEADERS = [
    "cost",
    "× ideal",
    "GPU-h",
    "util.",
    "p50 wait",
    "p95 wait",
    "p99 wait",
    "max wait",
    "SLO met",
    "meets SLO",
    "unserved",
    "scale events",
    "node launches",
]


def ratio(value: float | None) -> str:
    """A multiple of the fluid ideal."""
    return "n/a" if value is None else f"{value:.2f}×"


def _figures(totals: Totals, ideal_usd: float | None, target: float) -> list[str]:
    wait = totals.wait_s
    return [
        usd(totals.cost_usd),
        ratio(vs_ideal(totals.cost_usd, ideal_usd)),
        f"{totals.gpu_hours:,.1f}",
        share(totals.utilization),
        seconds(wait.p50),
        seconds(wait.p95),
        seconds(wait.p99),
        seconds(wait.max),
        share(totals.slo_attainment),
        "yes" if meets(totals, target) else "NO",
        f"{totals.unserved:,}",
        f"{totals.scale_events:,}",
        f"{totals.node_launches:,}",
    ]


def summary_table(result: SimulationResult) -> Table:
    """One row per policy: its totals and its savings against each time-based baseline. "meets
    SLO" is the total's; the verdict asks it of every model (``verdict.meets_slo``)."""
    policies = result.policies
    savings = savings_table(policies)
    bases = baselines(policies)
    headers = ["policy", *_HEADERS, *(f"saves vs {b}" for b in bases)]
    ideal, target = ideal_of(result), result.slo_attainment
    rows = [
        [p.name, *_figures(p.total, ideal, target), *(saving(savings[p.name][b]) for b in bases)]
        for p in policies
    ]
    return headers, rows


def model_table(result: SimulationResult, model: str) -> Table:
    """One row per policy for one model."""
    policies = result.policies
    savings = savings_table(policies, model)
    bases = baselines(policies)
    headers = ["policy", *_HEADERS, *(f"saves vs {b}" for b in bases)]
    ideal, target = ideal_of(result, model), result.slo_attainment
    rows = [
        [
            p.name,
            *_figures(p.per_model[model], ideal, target),
            *(saving(savings[p.name][b]) for b in bases),
        ]
        for p in policies
        if model in p.per_model
    ]
    return headers, rows


def ideal_sentences(result: SimulationResult) -> list[str]:
    """The fluid ideal in words, per model and in total, and what it assumes."""
    total = ideal_of(result)
    if total is None:
        return ["The fluid ideal was not computed for this run."]
    lines = [
        f"Fluid ideal: {usd(total)}. It is what perfectly elastic capacity would cost: every "
        "request's service time spread over a replica's batch slots at the target utilization, "
        "billed per replica-hour (node price × GPUs per replica / GPUs per node), with no "
        "warm-up, no idle GPU and no queue. The × ideal column divides each cost by it."
    ]
    if len(result.ideal_cost_usd) > 1:
        lines.append(
            "Per model: " + ", ".join(f"{m} {usd(v)}" for m, v in result.ideal_cost_usd.items())
        )
    return lines


def savings_sentences(result: SimulationResult) -> list[str]:
    """For every policy that does not scale on the clock: its cost and tail wait against each
    time-based baseline, in words."""
    policies = result.policies
    bases = [p for p in policies if p.kind in TIME_BASED_KINDS]
    if not bases:
        return ["No time-based policy was in this run, so there is no time-based baseline."]
    savings = savings_table(policies)
    lines = []
    for p in policies:
        if p.kind in TIME_BASED_KINDS:
            continue
        parts = []
        for b in bases:
            pct = savings[p.name][b.name]
            if pct is None:
                parts.append(f"{b.name} cost nothing, so no percentage")
            elif pct >= 0:
                parts.append(f"{saving(pct)} less than {b.name} ({usd(b.total.cost_usd)})")
            else:
                parts.append(f"{saving(-pct)} more than {b.name} ({usd(b.total.cost_usd)})")
        waits = ", ".join(f"{b.name} {seconds(b.total.wait_s.p95)}" for b in bases)
        lines.append(
            f"{p.name} costs {usd(p.total.cost_usd)}: {'; '.join(parts)}. "
            f"p95 wait {seconds(p.total.wait_s.p95)} (vs {waits}); "
            f"SLO met for {share(p.total.slo_attainment)} of requests."
        )
    return lines


HOW_TO_READ = [
    "Cost is what the GPU nodes cost while they ran (launch to removal, at the node pool's "
    "hourly price), whether their GPUs served anything or not.",
    "Wait is queue wait: from a request's arrival until a replica starts serving it. Service "
    "time itself is the same under every policy and is not included.",
    "SLO met is the share of all requests that waited at most the SLO; requests still "
    "waiting when the trace ended count as misses.",
    "Savings compare each policy's cost with each time-based baseline: 65% means 65% cheaper; "
    "a negative figure means more expensive. The hindsight schedule knows this trace's peaks "
    "in advance, so it is the best any fixed schedule could do here; the business-hours "
    "schedule is what a team would typically write by hand.",
    "In the charts, a queue-depth spike with replicas (dashed: desired, solid: ready) lagging "
    "behind is GPU warm-up: node launch, image pull and weight load take minutes. Cheap "
    "policies that let the queue build show up as a high p95 wait in the cost chart.",
    "Utilization is busy batch-slot time over the slot time replicas held GPUs: low "
    "utilization is money spent on idle GPUs.",
]
