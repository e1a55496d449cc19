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
from demo.control import ControlLoop, Event, ModelControl, ModelSeries
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


Task = tuple[str, int, float, float]
"""A submitted task: id, model index, Unix seconds submitted, service time (trace seconds)."""


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
        self.tasks: list[Task] = []
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


async def run_live(
    trace: Trace,
    scenario: Scenario,
    settings: ReplaySettings,
    on_event: Callable[[Event], None] | None = None,
) -> LiveResult:
    """Run ``trace`` through the live system; every process started is stopped on return."""
    served = settings.served_trace(trace)
    assert served.service_s is not None
    the_plan = plan(served, scenario)
    names = list(trace.models)
    scale = settings.time_scale
    clock = TraceClock(scale)
    started = time.monotonic()
    results: dict[str, tuple[str, float | None]] = {}
    async with _system(settings, clock) as (brokers, service, port, folder):
        specs = {m.name: m for m in the_plan.models}
        models = {
            name: ModelControl(
                ref=pb.ScaledObjectRef(
                    name=name, namespace=NAMESPACE, scalerMetadata=settings.metadata(scenario, name)
                ),
                keda=KedaController(specs[name].cooldown_s, specs[name].keda_min_replicas),
                hpa=HpaController(specs[name].hpa),
                deployment=Deployment(_replica_spec(name, settings, brokers), folder),
            )
            for name in names
        }
        await asyncio.to_thread(
            brokers.declare, [q for name in names for q in scenario.models[name].queues]
        )
        client = Client(brokers.broker_url, brokers.result_backend)
        submitter = Submitter(client, trace, served.service_s, scale, clock.begin())
        max_lag = 0.0
        submitter.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                loop = ControlLoop(pb_grpc.ExternalScalerStub(channel), service, models,
                                   on_event, time.monotonic)  # fmt: skip
                drain_until: float | None = None
                for t, evaluate, poll, sync, sample in _chained(
                    _instants(the_plan), _after(the_plan, scenario)
                ):
                    if submitter.error is not None:
                        raise submitter.error
                    due = clock.origin + t / scale
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    max_lag = max(max_lag, time.monotonic() - due)
                    past_end = t > the_plan.end_s
                    if past_end:
                        # The run is over: go on scaling only while results are missing.
                        if drain_until is None:
                            drain_until = time.monotonic() + DRAIN_DEADLINE_S
                        missing = _missing(submitter.tasks, results)
                        await asyncio.to_thread(_collect, client, missing, results)
                        done = not submitter.is_alive() and not _missing(submitter.tasks, results)
                        if done or time.monotonic() > drain_until:
                            break
                    await loop.step(t, evaluate=evaluate, poll=poll, sync=sync, sample=sample,
                                    count=not past_end)  # fmt: skip
        finally:
            submitter.stop.set()
            submitter.join(timeout=30)
            for m in models.values():
                await m.deployment.close()
            # Results that came in while the workers drained.
            await asyncio.to_thread(_collect, client, _missing(submitter.tasks, results), results)
            client.close()
    deployments = [m.deployment for m in models.values()]
    return LiveResult(
        series={name: m.series for name, m in models.items()},
        **_tally(names, submitter.tasks, results, scale),
        max_lag_s=max_lag,
        worker_starts_s=[s for d in deployments for s in d.worker_starts_s],
        replica_errors=[e for d in deployments for e in d.errors],
        wall_s=time.monotonic() - started,
        exit_codes=_exit_codes(deployments),
    )


def _replica_spec(name: str, settings: ReplaySettings, brokers: Brokers) -> ReplicaSpec:
    return ReplicaSpec(
        model=name,
        slots=settings.slots,
        warmup_s=settings.warmup_s,
        time_scale=1.0 / settings.time_scale,
        prefill_s=settings.prefill_s,
        decode_s=settings.decode_s,
        broker_url=brokers.broker_url,
        result_backend=brokers.result_backend,
    )


def _missing(tasks: list[Task], results: dict[str, tuple[str, float | None]]) -> list[str]:
    return [task[0] for task in tasks if task[0] not in results]


def _tally(
    names: list[str], tasks: list[Task], results: dict[str, tuple[str, float | None]], scale: float
) -> dict[str, Any]:
    """Per model: tasks submitted, succeeded, failed, and the served ones' waits (trace s)."""
    submitted = dict.fromkeys(names, 0)
    succeeded = dict.fromkeys(names, 0)
    failed = dict.fromkeys(names, 0)
    waits: dict[str, list[float]] = {name: [] for name in names}
    for task_id, model, at, cost in tasks:
        name = names[model]
        submitted[name] += 1
        outcome = results.get(task_id)
        if outcome is None:
            continue
        state, done_at = outcome
        if state != "SUCCESS":
            failed[name] += 1
            continue
        succeeded[name] += 1
        if done_at is not None:
            waits[name].append(max((done_at - at) * scale - cost, 0.0))
    return {"submitted": submitted, "succeeded": succeeded, "failed": failed, "waits_s": waits}


def _exit_codes(deployments: list[Deployment]) -> dict[str, list[int | None]]:
    replicas = [r for d in deployments for r in d.history]
    return {
        "worker": [r.worker.returncode for r in replicas if r.worker and r.ready_s is not None],
        "standin": [r.standin.returncode for r in replicas if r.standin is not None],
    }


def _chained(
    *parts: Iterator[tuple[float, bool, bool, bool, bool]],
) -> Iterator[tuple[float, bool, bool, bool, bool]]:
    for part in parts:
        yield from part


def _collect(
    client: Client, wanted: list[str], results: dict[str, tuple[str, float | None]]
) -> None:
    """Read each wanted task's result from the backend (blocking); record the finished ones in
    ``results`` as (state, Unix seconds it finished)."""
    from celery.result import AsyncResult

    for task_id in wanted:
        result = AsyncResult(task_id, app=client.app)
        state = str(result.state)
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            finished: Any = result.date_done
            at = finished.timestamp() if isinstance(finished, datetime) else None
            results[task_id] = (state, at)


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
