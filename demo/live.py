"""The live run: a trace through real processes on loopback, compressed ``time_scale`` times.

- the broker: a private ``redis-server`` (``demo.local_redis``), or a private vhost on RabbitMQ
  (``demo.brokers``); results always go to a private Redis;
- a client thread submits each request of the trace as a real Celery task (``worker.client``) at
  its arrival time divided by the time scale, a prompt of its input tokens in words and
  ``max_tokens`` its output tokens;
- the scaler (``ScalerService`` with the real broker reader behind ``scaler.server.start``)
  answers on a loopback port; its clock runs ``time_scale`` times fast from the run's start, so
  the policy reads trace seconds and its windows need no rewriting;
- a KEDA-and-HPA loop polls it over gRPC on the simulator's own control instants
  (``simulator.engine.setup.plan``: KEDA's polls, the HPA's syncs) and applies the simulator's
  own KEDA and HPA arithmetic (``simulator.engine.keda``, ``simulator.engine.hpa``) to a
  ``demo.cluster.Deployment`` of real replica processes.

The wall clock is read here only (``time.monotonic`` for the schedule, ``time.time`` once per
submitted task, to set against Celery's ``date_done``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from demo.brokers import Brokers, open_brokers
from demo.cluster import Deployment, ReplicaSpec, workdir
from demo.settings import BROKER, NAMESPACE, ReplaySettings
from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.server import start
from scaler.service import ScalerService
from scaler.state_store import MemoryStateStore
from simulator.engine.hpa import HpaController
from simulator.engine.keda import KedaController
from simulator.engine.setup import Plan, plan
from simulator.scenario import Scenario
from simulator.traces.trace import Trace
from worker.client import Client

DRAIN_DEADLINE_S = 120.0
"""Wall seconds, after the run's end, that the loop goes on scaling while results are missing;
a task still without a result then is counted lost."""


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the live log: at ``t_s`` (trace seconds) ``model``'s policy decided
    ``desired`` for ``reason`` (``detail`` its sentence), or KEDA/the HPA (``actor``) set the
    Deployment from ``before`` to ``replicas``."""

    t_s: float
    model: str
    actor: str
    before: int
    replicas: int
    desired: int | None
    reason: str
    detail: str


@dataclass
class ModelSeries:
    """A model's live series on the sample instants (trace seconds): the Deployment's replicas
    (desired), those serving (ready), and the policy's reason counts over every evaluation."""

    t_s: list[float] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    scale_events: int = 0
    errors: int = 0


@dataclass
class LiveResult:
    """What the live run leaves: per model its series, the tasks submitted and their results,
    each served task's wait (trace seconds: wall from submission to result, times the time
    scale, less its service time), the loop's worst lateness (wall seconds behind an instant)
    and the workers' start times (wall seconds from the stand-in's health to consuming);
    exit_codes: ``worker`` (those that got ready) and ``standin`` (all) -> each process's exit
    status (None: still running)."""

    series: dict[str, ModelSeries]
    submitted: dict[str, int]
    succeeded: dict[str, int]
    failed: dict[str, int]
    waits_s: dict[str, list[float]]
    max_lag_s: float
    worker_starts_s: list[float]
    replica_errors: list[str]
    wall_s: float
    exit_codes: dict[str, list[int | None]] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Tasks submitted that never got a result (success or failure)."""
        return (
            sum(self.submitted.values()) - sum(self.succeeded.values()) - sum(self.failed.values())
        )


class TraceClock:
    """Trace seconds since ``begin()``: wall seconds times ``scale``; the scaler's clock."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.origin = time.monotonic()

    def begin(self) -> float:
        self.origin = time.monotonic()
        return self.origin

    def __call__(self) -> float:
        return (time.monotonic() - self.origin) * self.scale


def _instants(the_plan: Plan) -> Iterator[tuple[float, bool, bool, bool, bool]]:
    """(t, eval, poll, sync, sample) for each control instant of the plan."""
    yield from zip(
        the_plan.times.tolist(),
        the_plan.is_eval.tolist(),
        the_plan.is_poll.tolist(),
        the_plan.is_sync.tolist(),
        the_plan.is_sample.tolist(),
        strict=True,
    )


def _after(the_plan: Plan, scenario: Scenario) -> Iterator[tuple[float, bool, bool, bool, bool]]:
    """Instants past the plan's end, on the same KEDA and HPA grid, without samples."""
    poll = round(scenario.control_plane.keda.polling_interval_s * 1000)
    sync = round(scenario.control_plane.hpa.sync_period_s * 1000)
    step = int(np.gcd(poll, sync))
    ms = round(the_plan.end_s * 1000)
    while True:
        ms += step
        is_poll, is_sync = ms % poll == 0, ms % sync == 0
        if is_poll or is_sync:
            yield ms / 1000.0, True, is_poll, is_sync, False


class Submitter(threading.Thread):
    """Submits the trace's requests on schedule (wall origin + arrival / scale) from its own
    thread (Celery's publishing blocks); records each task id with its model, wall submission
    time and service time (trace seconds)."""

    def __init__(
        self, client: Client, trace: Trace, service_s: np.ndarray, scale: float, origin: float
    ) -> None:
        super().__init__(name="depthscale-demo-client", daemon=True)
        self.client, self.trace, self.service_s = client, trace, service_s
        self.scale, self.origin = scale, origin
        self.tasks: list[tuple[str, int, float, float]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        trace = self.trace
        try:
            for i in range(len(trace)):
                due = self.origin + float(trace.arrival_s[i]) / self.scale
                if self.stop.wait(max(0.0, due - time.monotonic())):
                    return
                model = int(trace.model[i])
                body = {
                    "messages": [
                        {"role": "user", "content": " ".join(["w"] * int(trace.input_tokens[i]))}
                    ],
                    "max_tokens": max(int(trace.output_tokens[i]), 1),
                }
                submitted_at = time.time()
                task_id = self.client.submit(trace.models[model], body, priority=5)
                self.tasks.append((task_id, model, submitted_at, float(self.service_s[i])))
        except BaseException as exc:  # reported by the run, which stops
            self.error = exc


async def _keda_calls(
    stub: pb_grpc.ExternalScalerStub, ref: pb.ScaledObjectRef
) -> tuple[float, float, bool]:
    """KEDA's three calls for one ScaledObject: (metric value, target, isActive)."""
    spec = (await stub.GetMetricSpec(ref)).metricSpecs[0]
    value = (
        await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.metricName))
    ).metricValues[0]
    active = (await stub.IsActive(ref)).result
    metric = value.metricValueFloat if value.metricValueFloat > 0 else float(value.metricValue)
    target = spec.targetSizeFloat if spec.targetSizeFloat > 0 else float(spec.targetSize)
    return metric, target, active


async def run_live(
    trace: Trace,
    scenario: Scenario,
    settings: ReplaySettings,
    on_event: Callable[[Event], None] | None = None,
) -> LiveResult:
    """Run ``trace`` through the live system; every process started is stopped on return."""
    served = settings.served_trace(trace)
    the_plan = plan(served, scenario)
    names = list(trace.models)
    scale = settings.time_scale
    clock = TraceClock(scale)
    started = time.monotonic()
    async with _system(settings, clock) as (brokers, service, port, folder):
        deployments = {
            name: Deployment(
                ReplicaSpec(
                    model=name,
                    slots=settings.slots,
                    warmup_s=settings.warmup_s,
                    time_scale=1.0 / scale,
                    prefill_s=settings.prefill_s,
                    decode_s=settings.decode_s,
                    broker_url=brokers.broker_url,
                    result_backend=brokers.result_backend,
                ),
                folder,
            )
            for name in names
        }
        refs = {
            name: pb.ScaledObjectRef(
                name=name, namespace=NAMESPACE, scalerMetadata=settings.metadata(scenario, name)
            )
            for name in names
        }
        models = {m.name: m for m in the_plan.models}
        hpas = {name: HpaController(models[name].hpa) for name in names}
        kedas = {
            name: KedaController(models[name].cooldown_s, models[name].keda_min_replicas)
            for name in names
        }
        series = {name: ModelSeries() for name in names}
        metric = dict.fromkeys(names, 0.0)
        target = dict.fromkeys(names, 1.0)
        active = dict.fromkeys(names, False)
        last: dict[str, tuple[int, str]] = {}
        await asyncio.to_thread(
            brokers.declare, [q for name in names for q in scenario.models[name].queues]
        )
        client = Client(brokers.broker_url, brokers.result_backend)
        assert served.service_s is not None
        submitter = Submitter(client, trace, served.service_s, scale, clock.begin())
        max_lag = 0.0

        def note(event: Event) -> None:
            if on_event is not None:
                on_event(event)

        def act(name: str, actor: str, replicas: int, t: float) -> None:
            deployment = deployments[name]
            before = deployment.desired
            deployment.scale_to(replicas, time.monotonic())
            series[name].scale_events += 1
            desired, reason = last.get(name, (replicas, ""))
            note(Event(t, name, actor, before, replicas, desired, reason, ""))

        submitter.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.ExternalScalerStub(channel)
                pending_ids: dict[str, tuple[int, float, float]] = {}
                results: dict[str, tuple[str, float | None]] = {}
                drain_until: float | None = None
                instants = _instants(the_plan)
                for t, is_eval, is_poll, is_sync, is_sample in _chained(
                    instants, _after(the_plan, scenario)
                ):
                    if submitter.error is not None:
                        raise submitter.error
                    due = clock.origin + t / scale
                    now = time.monotonic()
                    if due > now:
                        await asyncio.sleep(due - now)
                    max_lag = max(max_lag, time.monotonic() - due)
                    past_end = t > the_plan.end_s
                    if past_end:
                        if drain_until is None:
                            drain_until = time.monotonic() + DRAIN_DEADLINE_S
                        for task_id, model, at, cost in submitter.tasks:
                            if task_id not in results:
                                pending_ids.setdefault(task_id, (model, at, cost))
                        done = await asyncio.to_thread(_collect, client, pending_ids, results)
                        for task_id in done:
                            pending_ids.pop(task_id, None)
                        if (
                            not pending_ids and not submitter.is_alive()
                        ) or time.monotonic() > drain_until:
                            break
                    for name in names:
                        deployment = deployments[name]
                        if is_eval:
                            try:
                                metric[name], target[name], active[name] = await _keda_calls(
                                    stub, refs[name]
                                )
                            except grpc.aio.AioRpcError as exc:
                                series[name].errors += 1
                                note(Event(t, name, "scaler", deployment.desired,
                                           deployment.desired, None, f"error {exc.code().name}",
                                           exc.details() or ""))  # fmt: skip
                            else:
                                evaluation = await service.evaluate(
                                    service.resolve(
                                        NAMESPACE, name, dict(refs[name].scalerMetadata)
                                    )
                                )
                                decision = evaluation.decision
                                reason = decision.reason.value
                                if not past_end:
                                    counts = series[name].reasons
                                    counts[reason] = counts.get(reason, 0) + 1
                                if last.get(name) != (decision.desired, reason):
                                    last[name] = (decision.desired, reason)
                                    note(Event(t, name, "policy", deployment.desired,
                                               deployment.desired, decision.desired, reason,
                                               decision.detail))  # fmt: skip
                        current = deployment.desired
                        if is_poll:
                            keda_sets = kedas[name].poll(t, active[name], current)
                            if keda_sets is not None and keda_sets != current:
                                act(name, "KEDA", keda_sets, t)
                        current = deployment.desired
                        if is_sync and current > 0:
                            wanted = hpas[name].sync(t, current, metric[name], target[name])
                            if wanted.replicas != current:
                                act(name, "HPA", wanted.replicas, t)
                        if is_sample:
                            series[name].t_s.append(t)
                            series[name].desired.append(deployment.desired)
                            series[name].ready.append(deployment.ready())
        finally:
            submitter.stop.set()
            submitter.join(timeout=30)
            for deployment in deployments.values():
                await deployment.close()
            # Results that came in while the workers drained.
            rest = {
                task_id: (model, at, cost)
                for task_id, model, at, cost in submitter.tasks
                if task_id not in results
            }
            await asyncio.to_thread(_collect, client, rest, results)
            client.close()
    submitted = dict.fromkeys(names, 0)
    succeeded = dict.fromkeys(names, 0)
    failed = dict.fromkeys(names, 0)
    waits: dict[str, list[float]] = {name: [] for name in names}
    for task_id, model, at, cost in submitter.tasks:
        name = names[model]
        submitted[name] += 1
        outcome = results.get(task_id)
        if outcome is None:
            continue
        state, done_at = outcome
        if state == "SUCCESS":
            succeeded[name] += 1
            if done_at is not None:
                waits[name].append(max((done_at - at) * scale - cost, 0.0))
        else:
            failed[name] += 1
    return LiveResult(
        series=series,
        submitted=submitted,
        succeeded=succeeded,
        failed=failed,
        waits_s=waits,
        max_lag_s=max_lag,
        worker_starts_s=[s for d in deployments.values() for s in d.worker_starts_s],
        replica_errors=[e for d in deployments.values() for e in d.errors],
        wall_s=time.monotonic() - started,
        exit_codes={
            "worker": [
                r.worker.returncode
                for d in deployments.values()
                for r in d.history
                if r.worker is not None and r.ready_s is not None
            ],
            "standin": [
                r.standin.returncode
                for d in deployments.values()
                for r in d.history
                if r.standin is not None
            ],
        },
    )


def _chained(
    *parts: Iterator[tuple[float, bool, bool, bool, bool]],
) -> Iterator[tuple[float, bool, bool, bool, bool]]:
    for part in parts:
        yield from part


def _collect(
    client: Client,
    wanted: dict[str, tuple[int, float, float]],
    results: dict[str, tuple[str, float | None]],
) -> list[str]:
    """Read each wanted task's result from the backend (blocking); record the finished ones in
    ``results`` as (state, Unix seconds it finished); their ids."""
    from celery.result import AsyncResult

    done: list[str] = []
    for task_id in list(wanted):
        result = AsyncResult(task_id, app=client.app)
        state = str(result.state)
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            finished: Any = result.date_done
            at = finished.timestamp() if isinstance(finished, datetime) else None
            results[task_id] = (state, at)
            done.append(task_id)
    return done


@contextlib.asynccontextmanager
async def _system(
    settings: ReplaySettings, clock: TraceClock
) -> AsyncIterator[tuple[Brokers, ScalerService, int, Path]]:
    """The brokers, the scaler on a loopback port and a folder for the workers' logs."""
    with open_brokers(settings) as brokers, workdir() as folder:
        service = ScalerService({BROKER: brokers.reader()}, MemoryStateStore(), clock=clock)
        running = await start(service, port=0, host="127.0.0.1")
        try:
            yield brokers, service, running.port, Path(folder)
        finally:
            await running.stop(0.5)
