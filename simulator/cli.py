"""``depthscale trace`` (synthetic traces, inspection, conversion) and ``depthscale simulate``.

``trace_input_options`` and ``load_trace_from_options`` are shared by every command that reads
a trace, so they all accept the same ``--format``, ``--model``, ``--time-scale``, ``--rate``,
``--rename`` and ``--seed``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

import click
import numpy as np
import numpy.typing as npt

from policies.config import QueueDepthConfig
from simulator.traces import Format, Trace, TraceError, detect_format, load_trace
from simulator.traces.bins import ArrivalBins
from simulator.traces.loader import estimated_requests, load_bins
from simulator.traces.synth import DAY_S, SynthModel, SynthSpec, synthesize
from simulator.traces.transform import apply, parse_rename
from simulator.traces.write import write_trace

F = TypeVar("F", bound=Callable[..., Any])


def trace_input_options(command: F) -> F:
    """Options for reading a trace (add to any command taking a TRACE argument)."""
    options = [
        click.option(
            "--format",
            "trace_format",
            type=click.Choice(list(get_args(Format))),
            default=None,
            help="Trace format (default: detected from the extension and header).",
        ),
        click.option(
            "--model",
            "model_name",
            default=None,
            help="Model name for formats without a model column (default: the file name).",
        ),
        click.option(
            "--time-scale",
            type=float,
            default=1.0,
            show_default=True,
            help="Multiply arrival times: 0.5 replays twice as fast, 2 stretches.",
        ),
        click.option(
            "--rate",
            type=float,
            default=1.0,
            show_default=True,
            help="Traffic multiplier (ServeGen: requests per window in the generator; other "
            "formats: thinning below 1, seeded replication above).",
        ),
        click.option(
            "--rename",
            multiple=True,
            metavar="OLD=NEW",
            help="Rename a trace model (repeatable; two names onto one merge).",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed for generated arrivals (ServeGen) and --rate.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


ENGINES = ("auto", "requests", "aggregated")

AGGREGATE_ABOVE_REQUESTS = 20_000_000
"""``--engine auto`` replays a trace of more requests than this in the aggregated (per-second)
mode: request by request, memory grows with the requests, and at this size the two modes agree
(docs/simulator.md gives the figures; benchmarks/simulator_throughput.py and
benchmarks/aggregated_mode.py measure them)."""


engine_option = click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="requests: every request through the FCFS queue. aggregated: arrivals per second "
    "through a fluid queue (bounded memory; billions of requests). auto: aggregated above "
    f"{AGGREGATE_ABOVE_REQUESTS // 1_000_000} M requests.",
)


def _seed_given() -> bool:
    """Whether --seed was given on the command line (it then replaces the scenario's seed)."""
    source = click.get_current_context().get_parameter_source("seed")
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def load_trace_from_options(
    path: Path,
    trace_format: str | None,
    model_name: str | None,
    time_scale: float,
    rate: float,
    rename: Sequence[str],
    seed: int,
) -> Trace:
    """Load and transform a trace; any problem becomes a one-line ``click.ClickException``.
    ``--rate`` applies in the loader (ServeGen scales its generator's request counts)."""
    try:
        mapping = parse_rename(rename)
        fmt: Format | None = _format(trace_format)
        trace = load_trace(path, fmt, model=model_name, seed=seed, rate=rate)
        return apply(trace, rename=mapping, time_factor=time_scale)
    except (TraceError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _format(name: str | None) -> Format | None:
    if name is None:
        return None
    for fmt in get_args(Format):
        if fmt == name:
            return fmt  # type: ignore[no-any-return]
    raise ValueError(f"unknown format {name!r}")


SCENARIO_LOAD_DIVISOR = 10.0
"""``trace synth --scenario``: a model's mean rate is its capacity divided by this. With the
default shape a burst at the daily peak brings about 6× the mean of two weekdays (about 8× the
mean of a whole week, weekends being quieter), so the busiest minutes come close to the
capacity without passing it."""


@click.group()
def trace() -> None:
    """Trace tools: generate a synthetic trace (synth); summarise any trace file and convert it
    to the generic format (inspect, with --out)."""


@trace.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--days", type=float, default=7.0, show_default=True, help="Trace length, days.")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME=RPS",
    help="A model and its mean rate, requests/s (repeatable). "
    "Default: llama-3-8b=3 and llama-3-70b=1, or with --scenario its models.",
)
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Name the models after this models file's models (each by its first trace name), "
    f"each at 1/{SCENARIO_LOAD_DIVISOR:g} of its capacity (maxReplicas × service.throughput_rps) "
    "unless --model gives its rate, so `simulate --scenario FILE` can replay the trace.",
)
@click.option(
    "--requests", type=int, default=None, help="Exact total requests (default: rates × time)."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed: the same seed, the same trace."
)
@click.option(
    "--peak-hour", type=float, default=14.0, show_default=True, help="Daily peak, hour (UTC)."
)
@click.option(
    "--daily-amplitude",
    type=float,
    default=0.7,
    show_default=True,
    help="Swing of the daily cycle, [0, 1): 0.7 puts the trough at 30% and the peak at 170% of "
    "the day's mean.",
)
@click.option(
    "--weekend-factor",
    type=float,
    default=0.4,
    show_default=True,
    help="Saturday and Sunday rate relative to weekdays, > 0.",
)
@click.option(
    "--bursts-per-day",
    type=float,
    default=3.0,
    show_default=True,
    help="Expected bursts per day and model, >= 0 (each lasts 2 to 15 minutes).",
)
@click.option(
    "--burst-factor",
    type=float,
    default=4.0,
    show_default=True,
    help="Rate multiplier inside a burst, >= 1.",
)
def synth(
    out: Path,
    days: float,
    models: tuple[str, ...],
    scenario_path: Path | None,
    requests: int | None,
    seed: int,
    peak_hour: float,
    daily_amplitude: float,
    weekend_factor: float,
    bursts_per_day: float,
    burst_factor: float,
) -> None:
    """Write a seeded synthetic trace (generic format, .csv, .csv.gz or .parquet) to OUT.

    Daily and weekly cycles and bursts per model; the trace starts on a Monday 00:00 UTC.
    """
    try:
        rates = _parse_models(models)
        if scenario_path is not None:
            rates = _scenario_rates(scenario_path, dict(rates))
        elif not rates:
            rates = [("llama-3-8b", 3.0), ("llama-3-70b", 1.0)]
        spec = SynthSpec(
            models=tuple(
                SynthModel(
                    name,
                    mean_rps=rps,
                    peak_hour=peak_hour,
                    daily_amplitude=daily_amplitude,
                    weekend_factor=weekend_factor,
                    bursts_per_day=bursts_per_day,
                    burst_factor=burst_factor,
                )
                for name, rps in rates
            ),
            duration_s=days * DAY_S,
            requests=requests,
            seed=seed,
        )
        started = time.perf_counter()
        generated = synthesize(spec)
        write_trace(generated, out)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    took = time.perf_counter() - started
    click.echo(
        f"wrote {len(generated):,} requests ({', '.join(generated.models)}) over {days:g} days "
        f"to {out} in {took:.1f}s"
    )


def _scenario_rates(path: Path, given: dict[str, float]) -> list[tuple[str, float]]:
    """(trace name, mean requests/s) per model of the models file at ``path``: the rate
    ``given`` for that name (``--model``), else the model's capacity over
    ``SCENARIO_LOAD_DIVISOR``. A ``--model`` the file does not serve is an error."""
    from simulator.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    rates = []
    for model in scenario.models.values():
        name = model.trace_models[0]
        max_replicas = model.policy.max_replicas or QueueDepthConfig().max_replicas
        capacity_rps = max_replicas * model.service.throughput_rps
        rate = given.pop(name, float(f"{capacity_rps / SCENARIO_LOAD_DIVISOR:.2g}"))
        rates.append((name, rate))
    if given:
        served = ", ".join(n for n, _ in rates)
        raise ValueError(f"--model {next(iter(given))!r}: not a model of {path} ({served})")
    return rates


def _parse_models(specs: Sequence[str]) -> list[tuple[str, float]]:
    parsed: list[tuple[str, float]] = []
    for spec in specs:
        name, sep, rps = spec.partition("=")
        try:
            value = float(rps)
        except ValueError:
            value = float("nan")
        if not sep or not name.strip() or not value > 0:
            raise ValueError(f"--model {spec!r}: expected NAME=RPS with RPS > 0")
        parsed.append((name.strip(), value))
    return parsed


@trace.command()
@click.argument("path", type=click.Path(path_type=Path))
@trace_input_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the (transformed) trace in the generic format (.csv, .csv.gz, .parquet).",
)
def inspect(
    path: Path,
    trace_format: str | None,
    model_name: str | None,
    time_scale: float,
    rate: float,
    rename: tuple[str, ...],
    seed: int,
    out: Path | None,
) -> None:
    """Summarise a trace file (or a ServeGen directory): requests, duration, and per model its
    mean rate (over the minutes from the trace's start to its last arrival), its peak rate (its
    busiest minute) and its mean tokens. A ServeGen model above 20 M requests is summarised
    from its per-second counts (its requests are never held)."""
    aggregated = _inspect_aggregated(path, trace_format, model_name, rate, seed)
    if aggregated is not None:
        if out is not None or rename or time_scale != 1.0:
            raise click.ClickException(
                f"{path}: too large for --out, --rename or --time-scale "
                f"(above {INSPECT_MAX_REQUESTS:,} requests); use --rate to scale it down"
            )
        for line in bins_summary_lines(aggregated, f"{path} (servegen, per-second counts)"):
            click.echo(line)
        return
    loaded = load_trace_from_options(path, trace_format, model_name, time_scale, rate, rename, seed)
    fmt = trace_format or detect_format(path)  # already loaded, so detection succeeds
    for line in summary_lines(loaded, f"{path} ({fmt})"):
        click.echo(line)
    if out is not None:
        try:
            write_trace(loaded, out)
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {out}")


INSPECT_MAX_REQUESTS = 20_000_000
"""Above this many requests, ``trace inspect`` summarises a ServeGen model from its bins."""


def _inspect_aggregated(
    path: Path, trace_format: str | None, model_name: str | None, rate: float, seed: int
) -> ArrivalBins | None:
    """The model's per-second counts when it is ServeGen and too large to hold, else None."""
    try:
        fmt = _format(trace_format) or detect_format(path)
        if fmt != "servegen" or estimated_requests(path, rate, fmt) <= INSPECT_MAX_REQUESTS:
            return None
        return load_bins(path, fmt, model=model_name, seed=seed, rate=rate)
    except (TraceError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def bins_summary_lines(bins: ArrivalBins, title: str) -> list[str]:
    """``summary_lines`` for per-second counts; tokens are the means of the length mix."""
    start = dt.datetime.fromtimestamp(bins.epoch_s, dt.UTC).isoformat(timespec="seconds")
    duration = bins.duration_s
    lines = [
        title,
        f"requests {bins.requests():,.0f} over {duration / 3600:.2f} h, starting {start}",
        "measured service_s: no",
        f"{'model':<32} {'requests':>14} {'mean rps':>9} {'peak rps':>9} {'in tok':>7} {'out tok':>7}",
    ]
    per_bin = max(1, round(60 / bins.bin_s))
    spanned = math.ceil(duration / bins.bin_s - 1e-9)  # bins up to the last one holding an arrival
    for i, name in enumerate(bins.models):
        counts = bins.counts[i][:spanned]
        windows = np.add.reduceat(counts, np.arange(0, counts.shape[0], per_bin))
        mean_rps, peak_rps = window_rates(windows, per_bin * bins.bin_s)
        mix = bins.mixes[i]
        weight = bins.period_requests(i)
        weight = (
            weight / weight.sum() if weight.sum() > 0 else np.full(mix.periods, 1 / mix.periods)
        )
        lines.append(
            f"{name:<32} {counts.sum():>14,.0f} {mean_rps:>9.3f} {peak_rps:>9.3f} "
            f"{weight @ mix.per_period(mix.input_tokens.mean(axis=1)):>7.0f} "
            f"{weight @ mix.per_period(mix.output_tokens.mean(axis=1)):>7.0f}"
        )
    return lines


def window_rates(
    counts: npt.NDArray[np.float64] | npt.NDArray[np.int64], window_s: float
) -> tuple[float, float]:
    """Mean and peak arrival rate, requests/second, from the arrivals counted in consecutive
    ``window_s``-second windows covering the trace's span (a minute in ``trace inspect``). The
    mean is over the same windows the peak is the busiest of, so mean <= peak always; a trace of
    two requests one second apart has a mean and a peak of 2/60 requests/s, not a mean of 2."""
    if counts.size == 0:
        return math.nan, math.nan
    return float(counts.sum()) / (counts.size * window_s), float(counts.max()) / window_s


def summary_lines(trace: Trace, title: str) -> list[str]:
    """A plain-text summary: totals, then one row per model: its mean rate over the minutes the
    trace spans and the rate of its busiest minute (``window_rates``), and its mean tokens."""
    start = dt.datetime.fromtimestamp(trace.epoch_s, dt.UTC).isoformat(timespec="seconds")
    duration = trace.duration_s
    lines = [
        title,
        f"requests {len(trace):,} over {duration / 3600:.2f} h, starting {start}",
        f"measured service_s: {'yes' if trace.service_s is not None else 'no'}",
        f"{'model':<32} {'requests':>10} {'mean rps':>9} {'peak rps':>9} {'in tok':>7} {'out tok':>7}",
    ]
    minutes = int(duration // 60) + 1
    per_minute = np.bincount(
        trace.model.astype(np.int64) * minutes + (trace.arrival_s // 60).astype(np.int64),
        minlength=len(trace.models) * minutes,
    ).reshape(len(trace.models), minutes)
    counts = trace.counts()
    for i, name in enumerate(trace.models):
        mask = trace.model == i
        mean_rps, peak_rps = window_rates(per_minute[i], 60.0)
        lines.append(
            f"{name:<32} {counts[i]:>10,} {mean_rps:>9.3f} {peak_rps:>9.3f} "
            f"{trace.input_tokens[mask].mean():>7.0f} {trace.output_tokens[mask].mean():>7.0f}"
        )
    return lines


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scenario (models file) YAML. Default: every trace model on 256-slot vLLM replicas, "
    "one per on-demand one-GPU A100 node (a2-highgpu-1g), the scaler counting in-flight tasks, "
    "seven policies compared (docs/simulator.md).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="depthscale-report",
    show_default=True,
    help="Directory for report.json, report.md and report.html.",
)
@click.option(
    "--policies",
    "policy_list",
    metavar="A,B",
    help="Compare only these of the scenario's policies (comma-separated names).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@engine_option
@trace_input_options
def simulate(
    trace_path: Path,
    scenario_path: Path | None,
    out_dir: Path,
    policy_list: str | None,
    no_progress: bool,
    engine: str,
    trace_format: str | None,
    model_name: str | None,
    time_scale: float,
    rate: float,
    rename: tuple[str, ...],
    seed: int,
) -> None:
    """Replay TRACE through modelled KEDA, HPA and GPU node pools and compare the policies' GPU
    cost and queue wait. Writes report.json, report.md and report.html to --out.

    --seed, when given, also replaces the scenario's seed."""
    from simulator.simulate import run_command  # engine and matplotlib load only here

    given = _seed_given()
    run_command(
        lambda s, progress: load_traffic_from_options(
            trace_path, trace_format, model_name, time_scale, rate, rename, s, engine, progress
        ),
        scenario_path,
        out_dir,
        seed if given else None,
        policy_list,
        no_progress,
    )


def load_traffic_from_options(
    path: Path,
    trace_format: str | None,
    model_name: str | None,
    time_scale: float,
    rate: float,
    rename: Sequence[str],
    seed: int,
    engine: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> Trace | ArrivalBins:
    """The trace request by request (``load_trace_from_options``), or as per-second counts for
    the aggregated engine: with ``engine`` "aggregated", or "auto" above
    ``AGGREGATE_ABOVE_REQUESTS`` requests. ServeGen is binned as it is generated, so a
    billion-request model never exists request by request. ``progress(done, total)`` follows
    that generation."""
    try:
        fmt = _format(trace_format) or detect_format(path)
        aggregate = engine == "aggregated" or (
            engine == "auto" and estimated_requests(path, rate, fmt) > AGGREGATE_ABOVE_REQUESTS
        )
    except (TraceError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if not aggregate:
        return load_trace_from_options(
            path, trace_format, model_name, time_scale, rate, rename, seed
        )
    if rename or time_scale != 1.0:
        raise click.ClickException(
            f"{path}: --rename and --time-scale need the per-request engine "
            f"(this trace replays per second: --engine requests, or --rate to scale it down)"
        )
    try:
        return load_bins(path, fmt, model=model_name, seed=seed, rate=rate, progress=progress)
    except (TraceError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scenario (models file) YAML to tune. Default: as for simulate.",
)
@click.option(
    "--slo",
    "slo_wait_s",
    type=click.FloatRange(min=0),
    default=None,
    help="Queue-wait SLO, seconds (default: the scenario's slo_wait_s, 30).",
)
@click.option(
    "--attainment",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="Share of every model's requests that must meet the SLO "
    "(default: the scenario's slo_attainment, 0.99).",
)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=81,
    show_default=True,
    help="Settings sampled (the scenario's own included); successive halving scores a third "
    "of them on a three times longer prefix of the trace, twice.",
)
@click.option(
    "--max-launches-per-hour",
    "max_launch_rate",
    type=click.FloatRange(min=0),
    default=None,
    help="Also require at most this many GPU node launches per model per hour, on average "
    "(default: no limit).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Processes."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="depthscale-tune",
    show_default=True,
    help="Directory for report.html, report.json and the chosen setting (models.yaml, "
    "policy.yaml, scaledobject-metadata.yaml).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@engine_option
@trace_input_options
def tune(
    trace_path: Path,
    scenario_path: Path | None,
    slo_wait_s: float | None,
    attainment: float | None,
    budget: int,
    max_launch_rate: float | None,
    workers: int,
    out_dir: Path,
    no_progress: bool,
    engine: str,
    trace_format: str | None,
    model_name: str | None,
    time_scale: float,
    rate: float,
    rename: tuple[str, ...],
    seed: int,
) -> None:
    """Search the depthscale policy's knobs on TRACE: print the cost-versus-SLO frontier and the
    cheapest setting meeting the SLO, and write it as ScaledObject metadata, a policy block and
    a models file that `depthscale render` deploys (docs/policy.md, "Tuning").

    --seed, when given, also replaces the scenario's seed (the search is seeded by it)."""
    from simulator.tune_command import run_command  # engine and matplotlib load only here

    given = _seed_given()
    run_command(
        lambda s, progress: load_traffic_from_options(
            trace_path, trace_format, model_name, time_scale, rate, rename, s, engine, progress
        ),
        scenario_path,
        seed if given else None,
        slo_wait_s,
        attainment,
        budget,
        workers,
        out_dir,
        no_progress,
        max_launch_rate,
    )
