"""What ``depthscale tune TRACE`` does once its options are parsed (they live in
``simulator.cli``): load the trace and scenario as ``depthscale simulate`` does, search, print
the frontier and the recommendation, write the files.

Any problem with the input ends the command with one line naming the file or key and a non-zero
exit; so does a search in which no setting meets the target (the report is still written, the
setting files are not)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from simulator import simulate
from simulator.scenario import Scenario
from simulator.simulate import Loader
from simulator.tune import (
    Candidate,
    Data,
    Outcome,
    TuneError,
    apply,
    evaluator,
    search_with,
    with_target,
)
from simulator.tune_report import all_texts, chosen_sentence, frontier_rows, write_files


def load_inputs(
    load: Loader,
    scenario_path: Path | None,
    seed: int | None,
    slo_wait_s: float | None,
    attainment: float | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Data, Scenario]:
    """The traffic and the scenario exactly as ``simulate`` reads them
    (``simulator.simulate.load_inputs``), with the SLO target applied; a scenario whose models
    do not serve the trace, or whose tuned entry's params break a policy block, is one line."""
    data, scenario = simulate.load_inputs(load, scenario_path, seed, progress)
    scenario = with_target(scenario, slo_wait_s, attainment)
    name = str(scenario_path) if scenario_path else "default scenario"
    try:
        scenario.trace_model_index(data.models)
        apply(scenario, Candidate(0))
    except KeyError as exc:
        raise click.ClickException(f"{name}: models: {exc.args[0]}") from None
    except TuneError as exc:
        raise click.ClickException(f"{name}: {exc}") from None
    return data, scenario


def _load_with_bar(
    load: Loader,
    scenario_path: Path | None,
    seed: int | None,
    slo_wait_s: float | None,
    attainment: float | None,
    err: Console | None,
) -> tuple[Data, Scenario]:
    """``load_inputs``, with simulate's bar over a long generation when ``err`` is given."""
    return simulate.with_loading_bar(
        err,
        lambda progress: load_inputs(load, scenario_path, seed, slo_wait_s, attainment, progress),
    )


def frontier_table(outcome: Outcome, scenario: Scenario, title: str) -> Table:
    headers, rows = frontier_rows(outcome, scenario)
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def run_command(
    load: Loader,
    scenario_path: Path | None,
    seed: int | None,
    slo_wait_s: float | None,
    attainment: float | None,
    budget: int,
    workers: int,
    out_dir: Path,
    no_progress: bool,
    max_launch_rate: float | None = None,
) -> Outcome:
    """Load, search with a progress bar (stderr, terminals only), print, write."""
    err = Console(stderr=True)
    bars = not no_progress and err.is_terminal
    data, scenario = _load_with_bar(
        load, scenario_path, seed, slo_wait_s, attainment, err if bars else None
    )
    trace = data.source or "trace"
    started = time.perf_counter()
    from simulator.engine import EngineError

    try:
        # The workers start before the bar's refresh thread: nothing is forked mid-draw.
        with evaluator(data, scenario, workers) as score_all:
            if bars:
                bar = Progress(
                    TextColumn("tuning"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("candidate runs"),
                    TimeElapsedColumn(),
                    console=err,
                    transient=True,
                )
                task = bar.add_task("tune", total=None)
                with bar:
                    outcome = search_with(
                        score_all,
                        data,
                        scenario,
                        budget,
                        lambda done, total: bar.update(task, completed=done, total=total),
                        max_launch_rate,
                    )
            else:
                outcome = search_with(score_all, data, scenario, budget, None, max_launch_rate)
    except (EngineError, TuneError) as exc:
        raise click.ClickException(f"{scenario_path or 'default scenario'}: {exc}") from None
    took = time.perf_counter() - started
    source = scenario_path.name if scenario_path else "the default scenario"
    texts = all_texts(outcome, scenario, trace, source, budget, took)
    write_files(texts, out_dir)
    probe = Console()
    out = probe if probe.is_terminal else Console(width=160)
    title = (
        f"{trace}: cost versus SLO (wait ≤ {scenario.slo_wait_s:g} s), "
        f"{len(outcome.full)} settings scored on the whole trace"
    )
    out.print(frontier_table(outcome, scenario, title))
    sentence = chosen_sentence(outcome, scenario)
    if outcome.chosen is None:
        out.print(f"Report: {out_dir / 'report.html'} (also report.json)", highlight=False)
        raise click.ClickException(sentence)
    out.print(sentence[0].upper() + sentence[1:], highlight=False, markup=False)
    out.print(
        f"Wrote {', '.join(str(out_dir / n) for n in sorted(texts))} in {took:,.0f} s",
        highlight=False,
        markup=False,
    )
    return outcome
