"""The demo's KEDA and HPA: one loop asking the scaler over gRPC and resizing the Deployments.

At each control instant (trace seconds, the simulator's own: ``simulator.engine.setup.plan``),
per model, as ``simulator.engine.loop`` does it:

1. at a KEDA poll or an HPA sync, KEDA's three calls (GetMetricSpec, GetMetrics, IsActive);
   the scaler's evaluation cache answers all three from one decision, whose reason the loop
   reads from the service (KEDA never sees it; the scaler logs and exports it);
2. at a KEDA poll: KEDA's activation and cooldown (``simulator.engine.keda``);
3. at an HPA sync: the HPA's arithmetic on the metric (``simulator.engine.hpa``);
4. at a sample instant: the series get a point.

A failed call leaves the replicas as they are, as KEDA and the HPA do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from demo.cluster import Deployment
from demo.settings import NAMESPACE
from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.service import ScalerService
from simulator.engine.hpa import HpaController
from simulator.engine.keda import KedaController


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the live log, at ``t_s`` (trace seconds) for ``model``. ``actor``:
    ``policy`` (its decision changed: ``desired`` replicas for ``reason``, ``detail`` its
    sentence), ``KEDA`` or ``HPA`` (set the Deployment from ``before`` to ``replicas``),
    ``scaler`` (a call failed: ``reason`` the gRPC code, ``detail`` its message), or ``status``
    (every so often: ``before`` replicas, ``replicas`` of them serving, ``reason`` the broker's
    counts)."""

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
    (desired) and those serving (ready); the policy's decisions by reason up to the run's end;
    the Deployment's changes; failed scaler calls."""

    t_s: list[float] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    scale_events: int = 0
    errors: int = 0


@dataclass
class ModelControl:
    """One ScaledObject: its reference, KEDA's and the HPA's state, the latest answer (metric
    value, target, isActive) and decision (desired, reason), and its Deployment."""

    ref: pb.ScaledObjectRef
    keda: KedaController
    hpa: HpaController
    deployment: Deployment
    series: ModelSeries = field(default_factory=ModelSeries)
    metric: float = 0.0
    target: float = 1.0
    active: bool = False
    last: tuple[int, str] | None = None
    pending: int | None = None
    in_flight: int | None = None


async def keda_calls(
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


class ControlLoop:
    """KEDA and the HPA for every model; ``step`` runs one control instant."""

    def __init__(
        self,
        stub: pb_grpc.ExternalScalerStub,
        service: ScalerService,
        models: dict[str, ModelControl],
        on_event: Callable[[Event], None] | None = None,
        now: Callable[[], float] | None = None,
        status_every_s: float = 120.0,
    ) -> None:
        """now: wall seconds, stamped on replicas asked for (the loop's own clock).
        status_every_s: trace seconds between two ``status`` events (at sample instants)."""
        self.stub, self.service, self.models = stub, service, models
        self.on_event = on_event
        self.now = now
        self.status_every_s = status_every_s
        self._next_status_s = 0.0

    def _note(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def step(
        self, t: float, *, evaluate: bool, poll: bool, sync: bool, sample: bool, count: bool
    ) -> None:
        """One instant at ``t`` trace seconds. count: the decisions go into the series' reason
        counts (false past the run's end, where only the drain is waited for)."""
        for name, m in self.models.items():
            if evaluate:
                await self._evaluate(t, name, m, count)
            if poll:
                keda_sets = m.keda.poll(t, m.active, m.deployment.desired)
                if keda_sets is not None and keda_sets != m.deployment.desired:
                    self._scale(t, name, m, "KEDA", keda_sets)
            current = m.deployment.desired
            if sync and current > 0:
                wanted = m.hpa.sync(t, current, m.metric, m.target).replicas
                if wanted != current:
                    self._scale(t, name, m, "HPA", wanted)
            if sample:
                m.series.t_s.append(t)
                m.series.desired.append(m.deployment.desired)
                m.series.ready.append(m.deployment.ready())
                if t >= self._next_status_s:
                    self._status(t, name, m)
        if sample and t >= self._next_status_s:
            self._next_status_s = t + self.status_every_s

    def _status(self, t: float, name: str, m: ModelControl) -> None:
        """Where the model stands: its replicas (serving), and the broker's counts."""
        counts = (
            "broker unread"
            if m.pending is None
            else f"{m.pending} pending"
            + ("" if m.in_flight is None else f", {m.in_flight} in flight")
        )
        self._note(Event(t, name, "status", m.deployment.desired, m.deployment.ready(), None,
                         counts, ""))  # fmt: skip

    async def _evaluate(self, t: float, name: str, m: ModelControl, count: bool) -> None:
        replicas = m.deployment.desired
        try:
            m.metric, m.target, m.active = await keda_calls(self.stub, m.ref)
        except grpc.aio.AioRpcError as exc:
            m.series.errors += 1
            self._note(Event(t, name, "scaler", replicas, replicas, None,
                             f"error {exc.code().name}", exc.details() or ""))  # fmt: skip
            return
        target = self.service.resolve(NAMESPACE, m.ref.name, dict(m.ref.scalerMetadata))
        evaluation = await self.service.evaluate(target)
        if evaluation.depth is not None:
            m.pending, m.in_flight = evaluation.depth.pending, evaluation.depth.in_flight
        decision = evaluation.decision
        reason = decision.reason.value
        if count:
            m.series.reasons[reason] = m.series.reasons.get(reason, 0) + 1
        if m.last != (decision.desired, reason):
            m.last = (decision.desired, reason)
            self._note(Event(t, name, "policy", replicas, replicas, decision.desired, reason,
                             decision.detail))  # fmt: skip

    def _scale(self, t: float, name: str, m: ModelControl, actor: str, replicas: int) -> None:
        before = m.deployment.desired
        m.deployment.scale_to(replicas, self.now() if self.now is not None else t)
        m.series.scale_events += 1
        desired, reason = m.last if m.last is not None else (replicas, "")
        self._note(Event(t, name, actor, before, replicas, desired, reason, ""))
