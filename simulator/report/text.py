"""Human-readable tables and sentences shared by report.md and report.html.

Numbers are formatted once here, so the two files always say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from simulator.report.summary import TIME_BASED_KINDS, savings_table
from simulator.results import PolicyResult, SimulationResult, Totals

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
    "GPU-h",
    "util.",
    "p50 wait",
    "p95 wait",
    "p99 wait",
    "max wait",
    "SLO met",
    "unserved",
    "scale events",
    "node launches",
]


def _figures(totals: Totals) -> list[str]:
    wait = totals.wait_s
    return [
        usd(totals.cost_usd),
        f"{totals.gpu_hours:,.1f}",
        share(totals.utilization),
        seconds(wait.p50),
        seconds(wait.p95),
        seconds(wait.p99),
        seconds(wait.max),
        share(totals.slo_attainment),
        f"{totals.unserved:,}",
        f"{totals.scale_events:,}",
        f"{totals.node_launches:,}",
    ]


def summary_table(policies: Sequence[PolicyResult]) -> Table:
    """One row per policy: its totals and its savings against each time-based baseline."""
    savings = savings_table(policies)
    bases = [p.name for p in policies if p.kind in TIME_BASED_KINDS]
    headers = ["policy", *_HEADERS, *(f"saves vs {b}" for b in bases)]
    rows = [
        [p.name, *_figures(p.total), *(saving(savings[p.name][b]) for b in bases)] for p in policies
    ]
    return headers, rows


def model_table(policies: Sequence[PolicyResult], model: str) -> Table:
    """One row per policy for one model."""
    savings = savings_table(policies, model)
    bases = [p.name for p in policies if p.kind in TIME_BASED_KINDS]
    headers = ["policy", *_HEADERS, *(f"saves vs {b}" for b in bases)]
    rows = [
        [p.name, *_figures(p.per_model[model]), *(saving(savings[p.name][b]) for b in bases)]
        for p in policies
        if model in p.per_model
    ]
    return headers, rows


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
