"""The report.json document: every policy's figures, its savings and the verdict, as numbers.

Pure functions of a ``SimulationResult``; writing files is ``simulator.report.write``'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from simulator.report.verdict import headline, ideal_of, meets, meets_slo, vs_ideal, winner
from simulator.results import PolicyResult, SimulationResult, Totals, baselines, savings_table

__all__ = ["models_of", "report_document"]

REPORT_VERSION = 2


def models_of(policies: Sequence[PolicyResult]) -> list[str]:
    """Every model named in any policy's per-model figures, in first-seen order."""
    seen: dict[str, None] = {}
    for p in policies:
        for model in p.per_model:
            seen.setdefault(model)
    return list(seen)


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: those (e.g. wait of a model that served nothing) are null."""
    return value if math.isfinite(value) else None


def totals_dict(totals: Totals) -> dict[str, Any]:
    """One ``Totals`` as report.json spells it (units in the key names where they have one)."""
    wait = totals.wait_s
    return {
        "cost_usd": _number(totals.cost_usd),
        "gpu_hours": _number(totals.gpu_hours),
        "node_hours": _number(totals.node_hours),
        "utilization": _number(totals.utilization),
        "wait_s": {
            "mean": _number(wait.mean),
            "p50": _number(wait.p50),
            "p95": _number(wait.p95),
            "p99": _number(wait.p99),
            "max": _number(wait.max),
        },
        "slo_attainment": _number(totals.slo_attainment),
        "requests": totals.requests,
        "served": totals.served,
        "unserved": totals.unserved,
        "scale_events": totals.scale_events,
        "node_launches": totals.node_launches,
    }


def report_document(result: SimulationResult) -> dict[str, Any]:
    """The report.json document.

    ``policies`` maps each policy name (run order) to its totals, ``savings_pct`` (baseline name
    -> percent, null when the baseline cost nothing), ``reasons`` (decision reason -> count),
    ``ideal_cost_usd`` (the run's fluid ideal), ``cost_vs_ideal`` (cost / ideal), ``meets_slo``
    (every model met the attainment target) and ``models`` (model name -> the same figures for
    that model alone, against its own ideal; a model served online adds ``routes``: its Celery
    tasks' and its online requests' waits apart). The top level adds the ``verdict`` (the policy to
    pick, or null, and the headline sentences) and the ``warnings``."""
    policies = result.policies
    target = result.slo_attainment
    total_savings = savings_table(policies)
    per_model_savings = {m: savings_table(policies, m) for m in models_of(policies)}
    ideal = ideal_of(result)
    out: dict[str, Any] = {}
    for p in policies:
        models = {}
        for model, totals in p.per_model.items():
            model_ideal = ideal_of(result, model)
            models[model] = {
                **totals_dict(totals),
                "savings_pct": per_model_savings[model][p.name],
                "ideal_cost_usd": model_ideal,
                "cost_vs_ideal": vs_ideal(totals.cost_usd, model_ideal),
                "meets_slo": meets(totals, target),
            }
            if model in p.routes:
                models[model]["routes"] = {
                    route: {
                        "requests": waits.requests,
                        "served": waits.served,
                        "wait_s": {
                            key: _number(getattr(waits.wait_s, key))
                            for key in ("mean", "p50", "p95", "p99", "max")
                        },
                        "slo_attainment": _number(waits.slo_attainment),
                    }
                    for route, waits in p.routes[model].items()
                }
        out[p.name] = {
            "kind": p.kind,
            **totals_dict(p.total),
            "savings_pct": total_savings[p.name],
            "ideal_cost_usd": ideal,
            "cost_vs_ideal": vs_ideal(p.total.cost_usd, ideal),
            "meets_slo": meets_slo(p, target),
            "reasons": dict(sorted(p.reasons.items())),
            "models": models,
        }
    best = winner(result)
    return {
        "version": REPORT_VERSION,
        "trace": result.trace,
        "seed": result.seed,
        "duration_s": result.duration_s,
        "slo_wait_s": result.slo_wait_s,
        "slo_attainment": target,
        "step_s": result.step_s,
        "baselines": baselines(policies),
        "ideal_cost_usd": ideal,
        "verdict": {"policy": None if best is None else best.name, "lines": headline(result)},
        "warnings": list(result.warnings),
        "policies": out,
        "assumptions": list(result.assumptions),
    }
