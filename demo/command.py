"""``depthscale demo`` and ``depthscale replay``: the whole path on one machine, then the
simulator's run of the same trace beside it.

Both run a trace through real processes on loopback (``demo.live``): a client submitting Celery
tasks, workers and stand-in servers started and stopped as replicas, the gRPC scaler on the real
broker reader, and a KEDA-and-HPA loop, all ``--time-scale`` times faster than the trace. Then
``depthscale simulate``'s engine runs the same trace under the same settings
(``demo.settings``) and the two are compared (``demo.compare``). ``demo`` runs a built-in burst
(``demo.traffic``) unless given ``--trace``; ``replay`` takes a trace file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from demo.brokers import DemoBrokerError
from demo.compare import compare, lines, reasons
from demo.control import Event
from demo.live import LiveResult, run_live
from demo.local_redis import LocalRedisError
from demo.settings import DEFAULT_RABBITMQ_URL, ReplaySettings
from demo.traffic import burst_trace
from simulator.results import PolicyResult
from simulator.scenario import Scenario
from simulator.traces.trace import Trace, TraceError

_DEFAULTS = ReplaySettings()
RABBITMQ_URL_ENV = "DEPTHSCALE_DEMO_RABBITMQ_URL"


F = TypeVar("F", bound=Callable[..., None])


def _options(command: F) -> F:
    """The options ``demo`` and ``replay`` share."""
    options = [
        click.option(
            "--time-scale",
            type=click.FloatRange(min=1),
            default=_DEFAULTS.time_scale,
            show_default=True,
            help="Trace seconds per wall second: every arrival, service time, warm-up, "
            "policy window, KEDA poll and HPA sync is divided by it.",
        ),
        click.option(
            "--broker",
            type=click.Choice(["redis", "rabbitmq"]),
            default="redis",
            show_default=True,
            help="redis: a private redis-server. rabbitmq: a private vhost on --rabbitmq-url.",
        ),
        click.option(
            "--rabbitmq-url",
            envvar=RABBITMQ_URL_ENV,
            default=DEFAULT_RABBITMQ_URL,
            show_default=True,
            help=f"RabbitMQ node (env {RABBITMQ_URL_ENV}). On the default vhost a "
            "private one is made with rabbitmqctl and deleted after; add "
            "?management=http://HOST:15672 for in-flight counts.",
        ),
        click.option(
            "--slots",
            type=click.IntRange(min=1),
            default=_DEFAULTS.slots,
            show_default=True,
            help="Batch slots per replica: the stand-in's --max-num-seqs, the worker's "
            "--concurrency and the trigger's replicaConcurrency.",
        ),
        click.option(
            "--warmup-seconds",
            type=click.FloatRange(min=0),
            default=_DEFAULTS.warmup_s,
            show_default=True,
            help="A replica's start, trace seconds (the stand-in's warm-up; the "
            "policy's warmupSeconds).",
        ),
        click.option(
            "--window-seconds",
            type=click.FloatRange(min=0),
            default=_DEFAULTS.window_s,
            show_default=True,
            help="The policy's stabilizationWindowSeconds, trace seconds.",
        ),
        click.option(
            "--max-replicas",
            type=click.IntRange(1, 50),
            default=_DEFAULTS.max_replicas,
            show_default=True,
            help="Most replicas per model (maxReplicas); each is two processes.",
        ),
        click.option(
            "--tail-seconds",
            type=click.FloatRange(min=0),
            default=_DEFAULTS.tail_s,
            show_default=True,
            help="Trace seconds the run goes on after the last arrival.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings(
    *,
    time_scale: float,
    broker: str,
    rabbitmq_url: str,
    slots: int,
    warmup_seconds: float,
    window_seconds: float,
    max_replicas: int,
    tail_seconds: float,
) -> ReplaySettings:
    """The shared options as settings (click has checked each one's range)."""
    return ReplaySettings(
        time_scale=time_scale,
        slots=slots,
        warmup_s=warmup_seconds,
        window_s=window_seconds,
        max_replicas=max_replicas,
        tail_s=tail_seconds,
        broker="rabbitmq" if broker == "rabbitmq" else "redis",
        rabbitmq_url=rabbitmq_url,
    )


def describe(trace: Trace, scenario: Scenario, settings: ReplaySettings) -> list[str]:
    """What the run will do, every time in trace seconds and in wall seconds."""
    k = settings.time_scale
    keda = scenario.control_plane.keda
    hpa = scenario.control_plane.hpa
    end = settings.end_s(trace)
    service = settings.service_s(trace)

    def both(seconds: float) -> str:
        return f"{seconds:g} s ({seconds / k:.3g} s wall)"

    return [
        f"trace: {trace.source or 'trace'}, {len(trace)} requests for "
        f"{', '.join(trace.models)} over {trace.duration_s:.0f} s",
        f"time x{k:g}: the run covers {both(end)} (the trace, then {settings.tail_s:g} s more)",
        f"policy window {both(settings.window_s)}, replica warm-up {both(settings.warmup_s)}, "
        f"at most {settings.max_replicas} replicas of {settings.slots} slots",
        f"KEDA polls every {both(keda.polling_interval_s)} (cooldown "
        f"{both(keda.cooldown_period_s)}); the HPA syncs every {both(hpa.sync_period_s)}",
        f"service time {settings.prefill_s:g} s per prompt token + {settings.decode_s:g} s per "
        f"output token: mean {both(float(service.mean()))}, longest {both(float(service.max()))}",
        f"broker: {settings.broker}"
        + ("" if settings.counts_in_flight else " (no management API: pending counts only)"),
    ]


def _event_line(event: Event) -> str:
    head = f"{event.t_s:7.0f} s  {event.model:<12}"
    if event.actor == "policy":
        return f"{head} policy wants {event.desired}: {event.reason}: {event.detail}"
    if event.actor == "scaler":
        return f"{head} scaler {event.reason}: {event.detail}"
    if event.actor == "status":
        return f"{head} {event.before} replicas, {event.replicas} serving; {event.reason}"
    return f"{head} {event.actor} sets {event.before} -> {event.replicas} replicas"


def measured_startup_s(live: LiveResult, settings: ReplaySettings) -> tuple[float, float]:
    """A replica's start as the live run measured it, (low, high) trace seconds: the warm-up
    plus the shortest and the longest worker start seen (none seen: the warm-up alone)."""
    starts = live.worker_starts_s or [0.0]
    k = settings.time_scale
    return settings.warmup_s + min(starts) * k, settings.warmup_s + max(starts) * k


def simulate_same(
    trace: Trace, settings: ReplaySettings, startup_s: tuple[float, float] | None = None
) -> PolicyResult:
    """``depthscale simulate``'s engine on the trace with the stand-in's service times, the
    replicas starting in ``startup_s`` (trace seconds; None: the warm-up alone)."""
    from simulator.engine import run

    return run(settings.served_trace(trace), settings.scenario(trace, startup_s)).policies[0]


def replay(trace: Trace, settings: ReplaySettings) -> tuple[LiveResult, PolicyResult]:
    """Run, print and compare; the live and simulated results."""
    scenario = settings.scenario(trace)
    for line in describe(trace, scenario, settings):
        click.echo(line)
    click.echo("starting the broker, the scaler and the client; replicas start as asked for")
    try:
        live = asyncio.run(
            run_live(trace, scenario, settings, lambda e: click.echo(_event_line(e)))
        )
    except (LocalRedisError, DemoBrokerError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"the demo could not start: {exc}") from None
    except KeyboardInterrupt:
        click.echo("interrupted; everything stopped", err=True)
        raise SystemExit(130) from None
    submitted = sum(live.submitted.values())
    succeeded = sum(live.succeeded.values())
    failed = sum(live.failed.values())
    click.echo(
        f"\nafter {live.wall_s:.0f} s: {submitted} tasks submitted, {succeeded} answered, "
        f"{failed} failed, {live.lost} lost"
    )
    if live.worker_starts_s:
        starts = sorted(live.worker_starts_s)
        click.echo(
            f"workers took {starts[0]:.2f}-{starts[-1]:.2f} s wall to start ({len(starts)} "
            f"replicas; x{settings.time_scale:g}: {starts[0] * settings.time_scale:.0f}-"
            f"{starts[-1] * settings.time_scale:.0f} trace s on top of the warm-up); the "
            f"KEDA-and-HPA loop ran at most {live.max_lag_s:.2f} s late"
        )
    for error in live.replica_errors:
        click.echo(f"replica failed: {error}", err=True)
    startup = measured_startup_s(live, settings)
    click.echo(
        f"simulating the same trace and settings, replicas starting in {startup[0]:.0f}-"
        f"{startup[1]:.0f} trace s (the warm-up plus the workers' measured start) ..."
    )
    simulated = simulate_same(trace, settings, startup)
    click.echo("")
    for line in lines(compare(live, simulated), reasons(live, simulated)):
        click.echo(line)
    if live.lost:
        raise click.ClickException(f"{live.lost} tasks lost")
    return live, simulated


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--trace", "trace_path", type=click.Path(exists=True, path_type=Path),
              default=None,
              help="Replay this trace (any format `depthscale trace inspect` reads) instead "
                   "of the built-in burst.")  # fmt: skip
@_options
def demo(trace_path: Path | None, **kwargs: Any) -> None:
    """The whole path on this machine, no cluster needed, then the simulator beside it.

    \b
    A client submits real Celery tasks; workers beside stand-in vLLM servers
    (finite batch slots, token-proportional latency, a warm-up) serve them; the
    gRPC scaler reads the broker; a KEDA-and-HPA loop polls it and starts and
    stops replicas (scale-down: SIGTERM, the worker drains, then the stand-in
    stops). Each decision prints with its reason; at the end every task is
    counted, and the same trace runs through the simulator for comparison.
    Without --trace: 20 minutes with one burst, about 90 s at x20.
    """
    trace = _load(trace_path) if trace_path is not None else burst_trace()
    replay(trace, _settings(**kwargs))


@click.command("replay", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("trace_path", metavar="TRACE", type=click.Path(exists=True, path_type=Path))
@_options
def replay_command(trace_path: Path, **kwargs: Any) -> None:
    """Replay TRACE through the live system, compressed --time-scale times, and set it
    against the simulator's run of the same trace and settings.

    \b
    Prints the settings (trace and wall seconds), each decision with its reason,
    the tasks submitted, answered and lost, then live against simulated:
    decisions by reason, scale events, replicas over time (mean and largest
    difference), waits p50/p95, tasks lost. Exits 1 if a task was lost.
    Keep traces short: a 20-minute trace at x20 takes about 90 s.
    """
    replay(_load(trace_path), _settings(**kwargs))


def _load(path: Path) -> Trace:
    from simulator.traces.loader import load_trace

    try:
        return load_trace(path)
    except TraceError as exc:
        raise click.ClickException(str(exc)) from None
