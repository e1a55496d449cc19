"""The scaler's Prometheus metrics, on a registry of its own (one per server, so tests and
several servers in one process never collide).

Series (labels ``namespace``, ``scaled_object``, ``model``, ``queues`` identify one trigger; a
trigger nobody has asked about for the service's idle time leaves with all its series):

- ``depthscale_pending_tasks``           gauge, tasks waiting in the broker at the last read.
- ``depthscale_in_flight_tasks``         gauge, reserved/unacked tasks (only with includeUnacked).
- ``depthscale_desired_replicas``        gauge, replicas the last decision wants.
- ``depthscale_decisions_total``         counter by ``reason``: decisions this scaler computed.
- ``depthscale_last_evaluation_timestamp_seconds`` gauge, Unix time of the trigger's last
                                         evaluation here: rules ignore a trigger whose stamp is
                                         old (a replica KEDA no longer calls keeps its last values).
- ``depthscale_state_resets_total``      counter by ``reason`` (missing|unreadable): policy states
                                         that started afresh because the store lost or could not
                                         read them.
- ``depthscale_broker_reads_total``      counter by ``broker``: read attempts (one round trip each).
- ``depthscale_broker_errors_total``     counter by ``broker`` and ``kind`` (unavailable|timeout).
- ``depthscale_state_conflicts_total``   counter: compare-and-set lost to another scaler replica.
- ``depthscale_rpc_duration_seconds``    histogram by gRPC ``method`` and status ``code``.
- ``depthscale_kube_errors_total``       counter by ``kind``: failed replica-count reads from the
                                         Kubernetes API (``--replicas-from kubernetes``; registered
                                         by ``scaler/kube.py`` on the same registry).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_TRIGGER = ("namespace", "scaled_object", "model", "queues")

# Seconds. KEDA's metrics-adapter calls carry a 3 s deadline; most answers come from the cache
# in well under a millisecond, a broker read costs one loopback/LAN round trip.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ScalerMetrics:
    """All series of one scaler process, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.pending = Gauge(
            "depthscale_pending_tasks", "Tasks waiting in the broker.", _TRIGGER, registry=r
        )
        self.in_flight = Gauge(
            "depthscale_in_flight_tasks", "Reserved/unacked tasks.", _TRIGGER, registry=r
        )
        self.desired = Gauge(
            "depthscale_desired_replicas", "Replicas the policy wants.", _TRIGGER, registry=r
        )
        self.decisions = Counter(
            "depthscale_decisions", "Policy decisions by reason.", (*_TRIGGER, "reason"), registry=r
        )
        self.evaluated = Gauge(
            "depthscale_last_evaluation_timestamp_seconds",
            "Unix time of the trigger's last evaluation by this scaler.",
            _TRIGGER,
            registry=r,
        )
        self.state_resets = Counter(
            "depthscale_state_resets",
            "Policy states started afresh because the store lost or could not read them.",
            ("reason",),
            registry=r,
        )
        self.broker_reads = Counter(
            "depthscale_broker_reads", "Broker read attempts.", ("broker",), registry=r
        )
        self.broker_errors = Counter(
            "depthscale_broker_errors", "Failed broker reads.", ("broker", "kind"), registry=r
        )
        self.state_conflicts = Counter(
            "depthscale_state_conflicts",
            "Compare-and-set on the policy state lost to another scaler replica.",
            registry=r,
        )
        self.rpc_duration = Histogram(
            "depthscale_rpc_duration_seconds",
            "gRPC handling time by method and status code, seconds.",
            ("method", "code"),
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self._rpc_children: dict[tuple[str, str], Any] = {}
        self._read_children: dict[str, Any] = {}

    def count_broker_read(self, broker: str) -> None:
        """Count one broker read attempt (the labelled child is looked up once per broker)."""
        child = self._read_children.get(broker)
        if child is None:
            child = self._read_children[broker] = self.broker_reads.labels(broker)
        child.inc()

    def trigger(self, namespace: str, scaled_object: str, model: str, queues: str) -> TriggerSeries:
        """The per-trigger series of one trigger, their labelled children looked up on first use."""
        return TriggerSeries(self, (namespace, scaled_object, model, queues))

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record one RPC's handling time (the labelled child is looked up once per pair)."""
        child = self._rpc_children.get((method, code))
        if child is None:
            child = self._rpc_children[(method, code)] = self.rpc_duration.labels(method, code)
        child.observe(seconds)


class TriggerSeries:
    """One trigger's labelled children, each looked up once (``labels()`` costs a lock and a few
    dict operations per call). A child is created on first use only, so a series appears in
    ``/metrics`` exactly when it is first set, as with ``labels()`` each time."""

    __slots__ = (
        "_decisions",
        "_desired",
        "_evaluated",
        "_in_flight",
        "_labels",
        "_metrics",
        "_pending",
    )

    def __init__(self, metrics: ScalerMetrics, labels: tuple[str, str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        self._pending: Any = None
        self._in_flight: Any = None
        self._desired: Any = None
        self._evaluated: Any = None
        self._decisions: dict[str, Any] = {}

    def set_evaluated(self, unix_s: float) -> None:
        if self._evaluated is None:
            self._evaluated = self._metrics.evaluated.labels(*self._labels)
        self._evaluated.set(unix_s)

    def remove(self) -> None:
        """Take every series of this trigger out of ``/metrics``."""
        m = self._metrics
        for gauge, child in (
            (m.pending, self._pending),
            (m.in_flight, self._in_flight),
            (m.desired, self._desired),
            (m.evaluated, self._evaluated),
        ):
            if child is not None:
                gauge.remove(*self._labels)
        for reason in self._decisions:
            m.decisions.remove(*self._labels, reason)
        self._pending = self._in_flight = self._desired = self._evaluated = None
        self._decisions = {}

    def set_pending(self, tasks: float) -> None:
        if self._pending is None:
            self._pending = self._metrics.pending.labels(*self._labels)
        self._pending.set(tasks)

    def set_in_flight(self, tasks: float) -> None:
        if self._in_flight is None:
            self._in_flight = self._metrics.in_flight.labels(*self._labels)
        self._in_flight.set(tasks)

    def set_desired(self, replicas: float) -> None:
        if self._desired is None:
            self._desired = self._metrics.desired.labels(*self._labels)
        self._desired.set(replicas)

    def count_decision(self, reason: str) -> None:
        child = self._decisions.get(reason)
        if child is None:
            child = self._decisions[reason] = self._metrics.decisions.labels(*self._labels, reason)
        child.inc()
