"""``run``: every policy of a comparison through the same plan, and the result the report reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from simulator.engine import kernel
from simulator.engine.loop import simulate
from simulator.engine.setup import PolicyTriple, default_policies, per_model, plan
from simulator.engine.summary import summarize
from simulator.results import PolicyResult, SimulationResult
from simulator.scenario import Scenario
from simulator.traces.trace import Trace

TIME_BASED_KINDS = ("schedule", "hindsight-schedule")
"""Policy kinds whose cost the others' ``savings_pct`` is measured against."""


def run(
    trace: Trace,
    scenario: Scenario,
    policies: Sequence[PolicyTriple] | None = None,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Simulate every policy over ``trace`` under ``scenario``.

    policies: ``(name, kind, policy)`` triples where ``policy`` is one object for every model or
              a mapping model name -> object (``simulator.policyset.build_policies``); None runs
              depthscale's queue-depth policy alone, with each model's thresholds.
    progress: called with the fraction done, 0..1, across all policies.
    """
    the_plan = plan(trace, scenario)
    entries = list(policies) if policies is not None else default_policies(scenario)
    names = [m.name for m in the_plan.models]
    kernel.warm_up()
    results: list[PolicyResult] = []
    for index, entry in enumerate(entries):
        objects = per_model(entry, names)

        def report(fraction: float, index: int = index) -> None:
            if progress is not None:
                progress((index + fraction) / len(entries))

        trajectory = simulate(the_plan, objects, report if progress is not None else None)
        results.append(summarize(entry[0], entry[1], the_plan, trajectory))
    baselines = [r for r in results if r.kind in TIME_BASED_KINDS]
    for result in results:
        for base in baselines:
            if base.total.cost_usd > 0:
                result.savings_pct[base.name] = (
                    100.0 * (base.total.cost_usd - result.total.cost_usd) / base.total.cost_usd
                )
    return SimulationResult(
        trace=_describe(trace),
        duration_s=the_plan.end_s,
        seed=the_plan.seed,
        slo_wait_s=the_plan.slo_wait_s,
        step_s=the_plan.step_s,
        policies=results,
        assumptions=the_plan.assumptions,
    )


def _describe(trace: Trace) -> str:
    source = trace.source or "trace"
    hours = trace.duration_s / 3600.0
    return (
        f"{source}: {len(trace):,} requests, {len(trace.models)} model(s) "
        f"({', '.join(trace.models)}), {hours:.1f} h"
    )
