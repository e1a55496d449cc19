"""``run``: every policy of a comparison through the same plan, and the result the report reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from simulator.engine import fair, kernel
from simulator.engine.loop import simulate
from simulator.engine.setup import PolicyTriple, default_policies, per_model, plan
from simulator.engine.totals import summarize
from simulator.results import PolicyResult, SimulationResult
from simulator.scenario import ControlPlane, Scenario
from simulator.traces.bins import ArrivalBins
from simulator.traces.trace import Trace


def run(
    trace: Trace | ArrivalBins,
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
    # A policy entry of the scenario may carry its own KEDA/HPA settings (KEDA-native on
    # Kubernetes defaults); it runs through a plan of its own.
    own_control = {p.name: p.control_plane for p in scenario.policies if p.control_plane}
    assumptions = [f"control plane: {_control(scenario.control_plane)}", *the_plan.assumptions]
    kernel.warm_up()
    results: list[PolicyResult] = []
    warm_start = scenario.simulation.warm_start
    started: list[tuple[str, list[int]]] = []
    compared = [(entry[0], entry[1], per_model(entry, names)) for entry in entries]
    for index, entry in enumerate(entries):
        objects = compared[index][2]
        entry_plan = the_plan
        control = own_control.get(entry[0])
        if control is not None:
            entry_plan = plan(trace, scenario.model_copy(update={"control_plane": control}))
            assumptions.append(f"{entry[0]} runs with its own control plane: {_control(control)}")

        def report(fraction: float, index: int = index) -> None:
            if progress is not None:
                progress((index + fraction) / len(entries))

        warm = None
        if warm_start:
            warm = fair.warm_counts(entry_plan, scenario, entry[1], objects, trace.duration_s)
            started.append((entry[0], warm))
        trajectory = simulate(
            entry_plan, objects, report if progress is not None else None, warm=warm
        )
        results.append(summarize(entry[0], entry[1], entry_plan, trajectory))
    assumptions.insert(
        1,
        fair.warm_assumption(started, names)
        if warm_start
        else "every policy starts cold at t=0: no replicas, no nodes (simulation.warm_start false)",
    )
    return SimulationResult(
        trace=_describe(trace),
        duration_s=the_plan.end_s,
        seed=the_plan.seed,
        slo_wait_s=the_plan.slo_wait_s,
        step_s=the_plan.step_s,
        policies=results,
        assumptions=assumptions,
        slo_attainment=scenario.slo_attainment,
        ideal_cost_usd=fair.ideal_costs(the_plan, scenario.target_utilization),
        warnings=fair.warnings(trace.duration_s, the_plan, scenario, compared),
    )


def _control(control: ControlPlane) -> str:
    up, down = control.hpa.scale_up, control.hpa.scale_down
    return (
        f"KEDA cooldown {control.keda.cooldown_period_s:g} s; HPA tolerance "
        f"{up.tolerance:g} up / {down.tolerance:g} down, scale-down window "
        f"{down.stabilization_window_s} s"
    )


def _describe(trace: Trace | ArrivalBins) -> str:
    source = trace.source or "trace"
    hours = trace.duration_s / 3600.0
    count = round(trace.requests()) if isinstance(trace, ArrivalBins) else len(trace)
    return (
        f"{source}: {count:,} requests, {len(trace.models)} model(s) "
        f"({', '.join(trace.models)}), {hours:.1f} h"
    )
