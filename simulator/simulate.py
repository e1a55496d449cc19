"""What ``depthscale simulate TRACE`` does (the command's options live in ``simulator.cli``):
load the trace and scenario, build the policies, run the engine, write the report, print a
summary.

Any problem with the input (a malformed trace row, a bad scenario key, an unknown policy name)
ends the command with one line, ``Error: file:line: what is wrong``, a non-zero exit and no report
written: the report is rendered completely before any file of it is moved into place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.policyset import PolicyEntry, PolicySetError, build_policies
from simulator.report import write_report
from simulator.report.verdict import headline, ideal_total, vs_ideal
from simulator.results import SimulationResult, baselines, savings_table
from simulator.scenario import Scenario, ScenarioError, default_scenario, load_scenario
from simulator.traces.bins import ArrivalBins
from simulator.traces.trace import Trace

_PROGRESS_MIN_REQUESTS = 200_000  # below this a run takes a moment: no bar

Runner = Callable[
    [Trace | ArrivalBins, Scenario, Sequence[PolicyEntry], Callable[[float], None] | None],
    SimulationResult,
]


def _engine_run(
    trace: Trace | ArrivalBins,
    scenario: Scenario,
    policies: Sequence[PolicyEntry],
    progress: Callable[[float], None] | None,
) -> SimulationResult:
    from simulator.engine import run  # the compiled engine loads only when a run starts

    return run(trace, scenario, policies, progress=progress)


Traffic = Trace | ArrivalBins
Loader = Callable[[int, Callable[[int, int], None] | None], Traffic]
"""``load(seed, progress)``: the trace; ``progress(done, total)`` follows a long generation."""


def requests_in(traffic: Traffic) -> float:
    return traffic.requests() if isinstance(traffic, ArrivalBins) else float(len(traffic))


def load_inputs(
    load: Loader,
    scenario_path: Path | None,
    seed: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Traffic, Scenario]:
    """The trace (``load(seed, progress)``, which raises ``click.ClickException`` naming file and
    line) and the scenario: the file's, or the default one for the trace's models when
    ``scenario_path`` is None (its ``maxReplicas`` sized to the trace's busiest minute).
    ``seed`` overrides the scenario's seed when given."""
    scenario: Scenario | None = None
    if scenario_path is not None:
        try:
            scenario = load_scenario(scenario_path)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from None
    trace = load(seed if seed is not None else (scenario.seed if scenario else 0), progress)
    if requests_in(trace) == 0:
        raise click.ClickException(f"{trace.source or 'trace'}: the trace has no requests")
    if scenario is None:
        scenario = default_scenario(trace.models, peak_rps=busiest_minute_rps(trace))
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    return trace, scenario


T = TypeVar("T")


def with_loading_bar(
    err: Console | None, load: Callable[[Callable[[int, int], None] | None], T]
) -> T:
    """``load(progress)`` under a transient "generating arrivals" bar on ``err`` (None: no bar;
    ``progress(done, total)`` then is None)."""
    if err is None:
        return load(None)
    loading = Progress(
        TextColumn("generating arrivals"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    job = loading.add_task("load", total=None)
    with loading:
        return load(lambda done, total: loading.update(job, completed=done, total=total))


def busiest_minute_rps(traffic: Traffic) -> dict[str, float]:
    """Per trace model, the arrival rate of its busiest minute, requests/second."""
    out: dict[str, float] = {}
    for i, name in enumerate(traffic.models):
        if isinstance(traffic, ArrivalBins):
            counts = traffic.counts[i]
            per_minute = max(round(60.0 / traffic.bin_s), 1)
            usable = counts[: counts.size - counts.size % per_minute]
            peak = float(usable.reshape(-1, per_minute).sum(axis=1).max(initial=0.0))
            out[name] = max(peak, float(counts[usable.size :].sum())) / 60.0
        else:
            minutes = np.floor(traffic.arrival_s[traffic.model == i] / 60.0).astype(np.int64)
            out[name] = float(np.bincount(minutes).max(initial=0)) / 60.0 if minutes.size else 0.0
    return out


def simulate_to(
    trace: Traffic,
    scenario: Scenario,
    scenario_name: str,
    out: Path,
    policy_names: Sequence[str] | None,
    progress: Callable[[float], None] | None,
    runner: Runner = _engine_run,
) -> SimulationResult:
    """Build the policies, run, write the report into ``out``; errors as ``ClickException``."""
    try:
        policies = build_policies(scenario, trace, policy_names)
    except PolicySetError as exc:
        raise click.ClickException(f"{scenario_name}: {exc}") from None
    except KeyError as exc:  # a trace model no scenario model serves
        raise click.ClickException(f"{scenario_name}: models: {exc.args[0]}") from None
    from simulator.engine import EngineError

    try:
        result = runner(trace, scenario, policies, progress)
    except EngineError as exc:
        raise click.ClickException(f"{scenario_name}: {exc}") from None
    write_report(result, out)
    return result


def terminal_table(result: SimulationResult) -> Table:
    """Cost, p95 wait, SLO attainment and savings against each time-based baseline."""
    bases = baselines(result.policies)
    savings = savings_table(result.policies)
    table = Table(title=f"{result.trace} — SLO: wait ≤ {result.slo_wait_s:g} s")
    table.add_column("policy")
    for header in ("cost (USD)", "× ideal", "p95 wait (s)", "SLO met", "unserved"):
        table.add_column(header, justify="right")
    for base in bases:
        table.add_column(f"vs {base}", justify="right")
    ideal = ideal_total(result)
    for p in result.policies:
        times = vs_ideal(p.total.cost_usd, ideal)
        cells = [
            p.name,
            f"{p.total.cost_usd:,.2f}",
            "n/a" if times is None else f"{times:.2f}×",
            f"{p.total.wait_s.p95:,.1f}" if math.isfinite(p.total.wait_s.p95) else "n/a",
            f"{100 * p.total.slo_attainment:.1f}%",
            f"{p.total.unserved:,}",
        ]
        for base in bases:
            pct = savings[p.name][base]
            cells.append("n/a" if pct is None else f"{pct:.1f}%")
        table.add_row(*cells)
    return table


def run_command(
    load: Loader,
    scenario_path: Path | None,
    out_dir: Path,
    seed: int | None,
    policy_list: str | None,
    no_progress: bool,
    runner: Runner = _engine_run,
) -> SimulationResult:
    """What ``depthscale simulate`` does once its options are parsed: load, run with a progress
    bar on long runs (stderr, terminals only), write the report, print the summary."""
    names = [n.strip() for n in policy_list.split(",") if n.strip()] if policy_list else None
    err = Console(stderr=True)
    bars = not no_progress and err.is_terminal
    trace, scenario = with_loading_bar(
        err if bars else None, lambda progress: load_inputs(load, scenario_path, seed, progress)
    )
    scenario_name = str(scenario_path) if scenario_path else "default scenario"
    show_bar = bars and requests_in(trace) >= _PROGRESS_MIN_REQUESTS
    if show_bar:
        bar = Progress(
            TextColumn("simulating"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        task = bar.add_task("simulate", total=1.0)
        with bar:
            result = simulate_to(
                trace,
                scenario,
                scenario_name,
                out_dir,
                names,
                lambda done: bar.update(task, completed=done),
                runner,
            )
    else:
        result = simulate_to(trace, scenario, scenario_name, out_dir, names, None, runner)
    probe = Console()
    out = probe if probe.is_terminal else Console(width=140)  # files and pipes: no truncation
    for line in headline(result):
        out.print(line, highlight=False, markup=False)
    out.print(terminal_table(result))
    out.print(f"Report: {out_dir / 'report.html'} (also report.md, report.json)")
    return result
