"""``depthscale demo``: the live scaler at work on this machine, no cluster needed.

Everything is real except the GPUs:

- a private ``redis-server`` (scaler/local_redis.py) is the Celery broker;
- a real Celery producer publishes bursts of tasks with priorities 0-9 for two models;
- the real scaler (``ScalerService`` behind the grpc.aio server) answers on a loopback port;
- a KEDA-like poller calls GetMetricSpec, GetMetrics and IsActive over real gRPC every poll and
  turns the answer into replicas as KEDA + HPA would (``demo_cluster.hpa_replicas``);
- simulated vLLM replicas (``demo_cluster.ModelReplicas``) warm up, then pop tasks from the Celery
  lists in kombu's priority order, so the queues drain at a rate set by what the scaler asked for.

Time is compressed by ``--speed``: the policy's 10-minute window, 5-minute warm-up, look-ahead and
growth window and KEDA's 30 s polling interval are all divided by it (30 by default: the window
takes 20 s), so a burst, the scale-up, the drain and the scale-to-zero fit in a minute and a half.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import click
import grpc
import redis.asyncio as aioredis
from celery import Celery
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from policies.config import SEED
from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.brokers.redis import RedisBrokerReader, list_keys
from scaler.demo_cluster import ModelReplicas, hpa_replicas
from scaler.local_redis import LocalRedis, LocalRedisError
from scaler.server import start
from scaler.service import ScalerService
from scaler.state_store import MemoryStateStore
from simulator.kube_defaults import KEDA_POLLING_INTERVAL_S

BROKER = "demo"
NAMESPACE = "demo"
TICK_S = 0.25
"""Seconds between producer and worker steps."""

# The real-time defaults, divided by --speed for the demo: the seed policy's (policies/config.py)
# and KEDA's polling interval (simulator/kube_defaults.py), read from where they are defined.
REAL_WINDOW_S = SEED.stabilization_window_s
REAL_WARMUP_S = SEED.warmup_s
REAL_LOOKAHEAD_S = SEED.lookahead_s
REAL_GROWTH_S = SEED.growth_window_s
REAL_POLL_S = KEDA_POLLING_INTERVAL_S


@dataclass(frozen=True, slots=True)
class Burst:
    """``tasks`` published evenly between two fractions of the demo's duration."""

    start: float
    end: float
    tasks: int


@dataclass(frozen=True, slots=True)
class DemoModel:
    """A model, its Celery queue, how fast one replica drains it (tasks/s) and its traffic."""

    name: str
    queue: str
    tasks_per_s: float
    bursts: tuple[Burst, ...]


MODELS = (
    DemoModel("llama-3-8b", "llama-3-8b", 12.0, (Burst(0.03, 0.12, 400), Burst(0.25, 0.32, 350))),
    DemoModel("llama-3-70b", "llama-3-70b", 4.0, (Burst(0.12, 0.24, 160),)),
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """duration_s: wall seconds the demo runs. speed: time compression (>= 1). window_s,
    warmup_s, poll_s: override the compressed values (seconds). max_replicas: per model.
    scale_down_step: replicas removed per window (the seed policy removes 1; the demo removes
    more so that the way back to zero fits in its minute and a half)."""

    duration_s: float = 90.0
    speed: float = 30.0
    window_s: float | None = None
    warmup_s: float | None = None
    poll_s: float | None = None
    max_replicas: int = 10
    scale_down_step: int = 5
    seed: int = 7
    models: tuple[DemoModel, ...] = MODELS

    @property
    def window(self) -> float:
        return self.window_s if self.window_s is not None else REAL_WINDOW_S / self.speed

    @property
    def warmup(self) -> float:
        return self.warmup_s if self.warmup_s is not None else REAL_WARMUP_S / self.speed

    @property
    def poll(self) -> float:
        return self.poll_s if self.poll_s is not None else max(REAL_POLL_S / self.speed, 0.25)

    def metadata(self, model: DemoModel) -> dict[str, str]:
        """The ScaledObject trigger metadata the poller sends for ``model``."""
        return {
            "broker": BROKER,
            "queues": model.queue,
            "model": model.name,
            "stabilizationWindowSeconds": f"{self.window:g}",
            "warmupSeconds": f"{self.warmup:g}",
            "lookaheadSeconds": f"{REAL_LOOKAHEAD_S / self.speed:g}",
            "growthWindowSeconds": f"{REAL_GROWTH_S / self.speed:g}",
            "maxReplicas": str(self.max_replicas),
            "scaleDownStep": str(self.scale_down_step),
        }


@dataclass(frozen=True, slots=True)
class Row:
    """One poll of one model: what the broker held, what the scaler said, what runs.

    t_s: seconds since the demo started. pending: tasks waiting (the scaler's read; None when
    the answer was an error). ready: simulated replicas serving. starting: simulated replicas
    asked for but not serving yet (node, image and weights; the policy's own sentences call the
    replicas it believes in this state "warming up"). metric: GetMetrics value. active: IsActive.
    replicas: what KEDA + HPA set from them.
    """

    t_s: float
    model: str
    pending: int | None
    ready: int
    starting: int
    metric: float | None
    active: bool | None
    replicas: int
    reason: str
    detail: str


@dataclass
class DemoResult:
    """rows: every poll's rows, in order. published/drained: tasks per model. redis_port,
    grpc_port: where the (now stopped) private broker and scaler listened."""

    rows: list[Row] = field(default_factory=list)
    published: dict[str, int] = field(default_factory=dict)
    drained: dict[str, int] = field(default_factory=dict)
    redis_port: int = 0
    grpc_port: int = 0


async def run_demo(
    options: DemoOptions, on_poll: Callable[[list[Row]], None] | None = None
) -> DemoResult:
    """Run the whole demo for ``options.duration_s`` seconds; everything started is stopped."""
    result = DemoResult(
        published={m.name: 0 for m in options.models}, drained={m.name: 0 for m in options.models}
    )
    cluster = {m.name: ModelReplicas(options.warmup, m.tasks_per_s) for m in options.models}
    with LocalRedis() as broker:
        service = ScalerService(
            {BROKER: RedisBrokerReader(broker.url, timeout_s=1.0)},
            MemoryStateStore(),
            cache_s=min(options.poll / 2, 1.0),
        )
        running = await start(service, port=0, host="127.0.0.1")
        result.redis_port, result.grpc_port = broker.port, running.port
        redis_client = aioredis.Redis.from_url(broker.url)
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def produce() -> None:
            app = Celery("depthscale-demo", broker=broker.url, set_as_current=False)
            rng = random.Random(options.seed)
            owed = {m.name: 0.0 for m in options.models}
            try:
                while True:
                    frac = (loop.time() - t0) / options.duration_s
                    jobs: list[tuple[str, int]] = []
                    for m in options.models:
                        for b in m.bursts:
                            if b.start <= frac < b.end:
                                owed[m.name] += (
                                    b.tasks * TICK_S / ((b.end - b.start) * options.duration_s)
                                )
                        due = int(owed[m.name])
                        owed[m.name] -= due
                        jobs += [(m.queue, rng.randint(0, 9)) for _ in range(due)]
                        result.published[m.name] += due
                    if jobs:
                        await asyncio.to_thread(_publish, app, jobs)
                    await asyncio.sleep(TICK_S)
            finally:
                app.close()

        async def work() -> None:
            specs = {m.name: service.resolve(NAMESPACE, m.name, options.metadata(m)).metadata.spec
                     for m in options.models}  # fmt: skip
            last = loop.time()
            while True:
                await asyncio.sleep(TICK_S)
                now = loop.time()
                for m in options.models:
                    budget = cluster[m.name].capacity(now - t0, now - last)
                    for key in list_keys(specs[m.name]):  # kombu's order: priority 0 first
                        if budget <= 0:
                            break
                        popped = await redis_client.rpop(key, budget)
                        taken = len(popped) if isinstance(popped, list) else 0
                        budget -= taken
                        result.drained[m.name] += taken
                last = now

        async def poll(stub: pb_grpc.ExternalScalerStub) -> None:
            refs = {
                m.name: pb.ScaledObjectRef(
                    name=m.name, namespace=NAMESPACE, scalerMetadata=options.metadata(m)
                )
                for m in options.models
            }
            while True:
                rows = [await _poll_one(stub, service, refs[m.name], m, cluster[m.name], loop.time() - t0)
                        for m in options.models]  # fmt: skip
                result.rows.extend(rows)
                if on_poll is not None:
                    on_poll(rows)
                await asyncio.sleep(options.poll)

        tasks: list[asyncio.Task[None]] = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stub = pb_grpc.ExternalScalerStub(channel)
                tasks = [
                    asyncio.create_task(produce()),
                    asyncio.create_task(work()),
                    asyncio.create_task(poll(stub)),
                ]
                done, _ = await asyncio.wait(tasks, timeout=options.duration_s,
                                             return_when=asyncio.FIRST_EXCEPTION)  # fmt: skip
                for task in done:
                    task.result()  # a crashed part ends the demo with its error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await redis_client.aclose()
            await running.stop(0.5)
    return result


async def _poll_one(
    stub: object,
    service: object,
    ref: object,
    model: DemoModel,
    replicas: ModelReplicas,
    t_s: float,
) -> Row:
    """KEDA's three calls for one ScaledObject, then scale the simulated Deployment."""
    import grpc

    from proto import externalscaler_pb2 as pb
    from proto import externalscaler_pb2_grpc as pb_grpc
    from scaler.service import ScalerService

    assert isinstance(stub, pb_grpc.ExternalScalerStub)
    assert isinstance(service, ScalerService)
    assert isinstance(ref, pb.ScaledObjectRef)
    try:
        spec = (await stub.GetMetricSpec(ref)).metricSpecs[0]
        value = (
            await stub.GetMetrics(
                pb.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.metricName)
            )
        ).metricValues[0]
        active = (await stub.IsActive(ref)).result
    except grpc.aio.AioRpcError as exc:
        # KEDA holds the replica count when the scaler errs.
        return Row(t_s, model.name, None, replicas.ready(t_s), replicas.warming(t_s), None, None,
                   len(replicas.ready_at_s), f"error {exc.code().name}", exc.details() or "")  # fmt: skip
    metric = value.metricValueFloat if value.metricValueFloat > 0 else float(value.metricValue)
    target = spec.targetSizeFloat if spec.targetSizeFloat > 0 else float(spec.targetSize)
    wanted = hpa_replicas(active, metric, target)
    replicas.scale_to(wanted, t_s)
    # The reason behind the answer (KEDA never sees it; the scaler logs and exports it).
    evaluation = await service.evaluate(
        service.resolve(ref.namespace, ref.name, dict(ref.scalerMetadata))
    )
    depth = evaluation.depth
    return Row(
        t_s=t_s,
        model=model.name,
        pending=None if depth is None else depth.pending,
        ready=replicas.ready(t_s),
        starting=replicas.warming(t_s),
        metric=metric,
        active=active,
        replicas=wanted,
        reason=evaluation.decision.reason.value,
        detail=evaluation.decision.detail,
    )


def _publish(app: Celery, jobs: list[tuple[str, int]]) -> None:
    """Real Celery publishing (blocking; runs in a worker thread)."""
    with app.producer_or_acquire() as producer:
        for queue, priority in jobs:
            app.send_task(
                "demo.generate",
                kwargs={"model": queue, "max_tokens": 256},
                queue=queue,
                priority=priority,
                producer=producer,
            )


# --- presentation -----------------------------------------------------------------------------


def _plain_line(row: Row) -> str:
    pending = "-" if row.pending is None else str(row.pending)
    metric = "-" if row.metric is None else f"{row.metric:g}"
    active = "-" if row.active is None else ("yes" if row.active else "no")
    return (
        f"{row.t_s:6.1f}s  {row.model:<12} pending={pending:>5}  ready={row.ready:>2} "
        f"starting={row.starting:>2}  metric={metric:>3} active={active:<3} "
        f"replicas={row.replicas:>2}  {row.reason}: {row.detail}"
    )


def _print_rows(rows: list[Row]) -> None:
    for row in rows:
        click.echo(_plain_line(row))


class _LiveTable:
    """A rich table of the latest poll per model, and the last few changes of replicas."""

    def __init__(self, options: DemoOptions) -> None:
        self.console = Console()
        self.options = options
        self.latest: dict[str, Row] = {}
        self.changes: list[Row] = []

    def update(self, rows: list[Row]) -> Group:
        for row in rows:
            before = self.latest.get(row.model)
            if before is None or (before.replicas, before.reason) != (row.replicas, row.reason):
                self.changes = [*self.changes, row][-8:]
            self.latest[row.model] = row
        return self.render()

    def render(self) -> Group:
        """The latest poll, one row per model, in about 80 columns (nothing cut: a cell too
        wide for a narrower terminal folds), then the latest changes with their sentences."""
        at = max((row.t_s for row in self.latest.values()), default=0.0)
        table = Table(
            title=f"depthscale demo at {at:.1f} s — {self.options.speed:g}x time, window "
            f"{self.options.window:g} s, warm-up {self.options.warmup:g} s",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
        )
        for column in ("model", "pending", "ready", "starting", "KEDA", "replicas", "reason"):
            justify: Literal["left", "right"] = "left" if column in ("model", "reason") else "right"
            table.add_column(column, justify=justify, overflow="fold")
        for row in self.latest.values():
            table.add_row(
                row.model,
                "-" if row.pending is None else str(row.pending),
                str(row.ready),
                str(row.starting),
                _keda_cell(row),
                str(row.replicas),
                row.reason,
            )
        changes = Table(title="changes", show_header=False, box=None, pad_edge=False)
        for _ in range(4):
            changes.add_column(no_wrap=True)
        changes.add_column(overflow="fold")
        for row in self.changes:
            changes.add_row(
                f"{row.t_s:.1f}s", row.model, f"→ {row.replicas}", row.reason, row.detail
            )
        return Group(table, changes)


def _keda_cell(row: Row) -> str:
    """What KEDA got from the scaler: the metric and whether the model is active."""
    if row.metric is None or row.active is None:
        return "-"
    return f"{row.metric:g}, {'active' if row.active else 'idle'}"


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=3),
    default=90.0,
    show_default=True,
    help="Seconds the demo runs.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Time compression: the policy's window, warm-up, look-ahead and KEDA's poll "
    "interval are divided by it.",
)
@click.option(
    "--window-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Stabilization window, seconds (default {REAL_WINDOW_S:g} / speed).",
)
@click.option(
    "--warmup-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help=f"GPU warm-up, seconds (default {REAL_WARMUP_S:g} / speed).",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=None,
    help=f"KEDA polling interval, seconds (default {REAL_POLL_S:g} / speed, at least 0.25).",
)
@click.option(
    "--max-replicas",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="Most replicas per model (the ScaledObject's maxReplicas).",
)
@click.option(
    "--scale-down-step",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Replicas removed per stabilization window.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Task priorities' seed.")
@click.option("--plain", is_flag=True,
              help="One line per model per poll instead of a live table (automatic when the "
                   "output is not a terminal).")  # fmt: skip
def demo(
    duration: float,
    speed: float,
    window_seconds: float | None,
    warmup_seconds: float | None,
    poll_seconds: float | None,
    max_replicas: int,
    scale_down_step: int,
    seed: int,
    plain: bool,
) -> None:
    """Private Redis, Celery bursts for two models, the scaler, and a KEDA-like poller."""
    options = DemoOptions(
        duration_s=duration,
        speed=speed,
        window_s=window_seconds,
        warmup_s=warmup_seconds,
        poll_s=poll_seconds,
        max_replicas=max_replicas,
        scale_down_step=scale_down_step,
        seed=seed,
    )
    view = _LiveTable(options)
    started = time.monotonic()
    try:
        if plain or not view.console.is_terminal:
            click.echo(
                f"depthscale demo: {speed:g}x time, window {options.window:g} s, warm-up "
                f"{options.warmup:g} s, KEDA poll {options.poll:g} s, {duration:g} s"
            )
            result = asyncio.run(run_demo(options, _print_rows))
        else:
            with Live(view.render(), console=view.console, refresh_per_second=4) as live:
                result = asyncio.run(run_demo(options, lambda rows: live.update(view.update(rows))))
    except LocalRedisError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"demo could not start: {exc}") from None
    except KeyboardInterrupt:
        click.echo("interrupted; everything stopped", err=True)
        raise SystemExit(130) from None
    click.echo(f"\nafter {time.monotonic() - started:.0f} s:")
    for m in options.models:
        peak = max((r.replicas for r in result.rows if r.model == m.name), default=0)
        click.echo(f"  {m.name:<12} published {result.published[m.name]:>5}, served "
                   f"{result.drained[m.name]:>5}, peak replicas {peak}")  # fmt: skip
