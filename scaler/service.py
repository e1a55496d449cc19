"""The scaler's logic behind the gRPC surface: metadata → broker read → policy → shared state.

Collect, decide, act in three places (Knative's lesson): the broker reader collects, the policy
decides, KEDA and the HPA act. This module only orchestrates, and it sees nothing but the ports
(``scaler/ports.py``), so its tests run on in-process fakes.

KEDA asks the same ScaledObject several times a minute (kedacore/keda v2.20: externalscaler.proto and the metrics adapter: GetMetricSpec, GetMetrics,
IsActive on every polling interval, and again on every HPA sync), so:

- one *evaluation* (broker read + decision) per trigger per ``cache_s`` seconds answers all three
  RPCs alike; concurrent callers of a trigger whose evaluation is under way await the same task;
- the clock is read once per evaluation, here at the edge, and handed to the policy as ``at_s``;
- every decision goes through the ``StateStore`` with compare-and-set: the replica that loses
  adopts the winner's fresh decision, so two scaler replicas answer alike; a record written less
  than ``cache_s`` ago by any replica is answered from without reading the broker again;
- errors are never a made-up 0: bad metadata raises ``MetadataError``; a broker or state store
  that fails or does not answer within ``broker_timeout_s`` raises ``BrokerUnavailable``.

Where replica counts come from: KEDA never tells an external scaler how many replicas run. Without
a ``ReplicaSource`` the observation leaves ``ready``/``warming`` as None and the policy counts on
its own past decisions (kept in the shared state with their timestamps; replicas asked for less
than ``warmupSeconds`` ago count as warming). With one (``scaler/kube.py``: the ScaledObject's
target from the Kubernetes API), each fresh evaluation reads the counts alongside the broker and
passes them on; unknown counts fall back to the policy's own view. docs/scaler.md explains the consequences.
The observation itself is built by ``policies.observe.observe``, as the simulator builds its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from policies.observe import observe
from policies.queue_depth import QueueDepthPolicy
from policies.state import QueueDepthState
from policies.types import Decision, Observation
from scaler.access import AccessDenied, BrokerOptions
from scaler.cache import IdleCache
from scaler.clock import AnchoredClock
from scaler.metadata import (
    MetadataError,
    ScalerMetadata,
    check_queue_name,
    check_size,
    parse_metadata,
)
from scaler.metrics import ScalerMetrics, TriggerSeries
from scaler.ports import (
    BrokerReader,
    BrokerTimeout,
    BrokerUnavailable,
    Depth,
    Record,
    StateStore,
    Unavailable,
)
from scaler.state_store import StateUnavailable, StateUnreadable

if TYPE_CHECKING:
    from scaler.kube import ReplicaCounts, ReplicaSource

log = logging.getLogger("depthscale.scaler")

Clock = Callable[[], float]
"""Returns the current time in seconds: live, Unix time that never steps (``AnchoredClock``);
in tests, anything monotonic."""

RequestKey = bytes
"""A digest of (namespace, name, metadata items): one exact request shape, 16 bytes whatever
the request's size, so no cache keeps a request's text."""
_T = TypeVar("_T")

MAX_NAMESPACE_CHARS = 63  # an RFC 1123 label (Kubernetes namespaces)
MAX_NAME_CHARS = 253  # an RFC 1123 subdomain (Kubernetes object names)

METRIC_PREFIX = "depthscale"
_NOT_METRIC_CHARS = re.compile(r"[^a-z0-9]+")
_READABLE_CHARS = 40


def request_key(namespace: str, name: str, metadata: Mapping[str, str]) -> RequestKey:
    """The digest of one request shape; length-prefixed, so no two shapes share an encoding."""
    digest = hashlib.blake2b(digest_size=16)
    for text in (namespace, name, *(t for item in sorted(metadata.items()) for t in item)):
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.digest()


def trigger_identity(metadata: ScalerMetadata) -> str:
    """8 hex digits naming the work a trigger watches (broker, queues, key prefix): two triggers
    of one ScaledObject keep separate state, and a threshold edit keeps its state."""
    spec = metadata.spec
    text = "\0".join((metadata.broker, spec.key_prefix, *spec.queues))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def metric_name(namespace: str, name: str, model: str) -> str:
    """The trigger's one metric name: lowercase ``[a-z0-9-]``, stable, unique per trigger.

    ``depthscale-<namespace>-<name>-<model>`` folded to the allowed characters and cut to 40 of
    them, then 8 hex digits of a SHA-256 of the exact triple, so two triggers whose names fold to
    the same text never share a metric."""
    readable = _NOT_METRIC_CHARS.sub("-", f"{namespace}-{name}-{model}".lower()).strip("-")
    readable = readable[:_READABLE_CHARS].strip("-")
    digest = hashlib.sha256(f"{namespace}/{name}/{model}".encode()).hexdigest()[:8]
    return f"{METRIC_PREFIX}-{readable}-{digest}" if readable else f"{METRIC_PREFIX}-{digest}"


@dataclass(frozen=True, slots=True)
class Target:
    """One ScaledObject trigger, resolved: its parsed metadata and the names derived from it.

    key:       identity of this exact request shape (namespace, name, metadata) for the caches.
    state_key: where its policy state lives in the StateStore
               (``namespace/name/model/<trigger identity>``): the identity hashes what the trigger
               watches (broker, queues, key prefix), so two triggers of one ScaledObject keep
               their own state, and a threshold edit keeps the window.
    """

    namespace: str
    name: str
    model: str
    metadata: ScalerMetadata
    policy: QueueDepthPolicy
    metric_name: str
    state_key: str
    key: RequestKey
    series: TriggerSeries = field(compare=False, repr=False)

    @property
    def labels(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.name, self.model, ",".join(self.metadata.spec.queues))


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer for one trigger at one instant, shared by GetMetricSpec, GetMetrics, IsActive.

    decision:      the policy's decision (desired replicas, reason, metric value).
    metric_target: the HPA target per replica (AverageValue), > 0.
    depth:         the broker read behind the decision; None when adopted from another replica.
    at_s:          when the decision was taken, seconds by the service clock.
    shared:        True when another replica's (or an earlier process's) record was adopted.
    """

    decision: Decision
    metric_target: float
    depth: Depth | None
    at_s: float
    shared: bool = False


class StateConflict(Unavailable):
    """Compare-and-set kept losing to other scaler replicas; answered UNAVAILABLE."""


Refusal = MetadataError | AccessDenied


@dataclass(slots=True)
class _Caches:
    targets: IdleCache[RequestKey, Target | Refusal]
    known: IdleCache[str, int]
    evaluations: dict[RequestKey, Evaluation] = field(default_factory=dict)
    evaluating: dict[RequestKey, asyncio.Task[Evaluation]] = field(default_factory=dict)
    reading: dict[RequestKey, asyncio.Task[Depth]] = field(default_factory=dict)
    swept_at_s: float | None = None


def _settle(
    running: dict[RequestKey, asyncio.Task[_T]], key: RequestKey, task: asyncio.Task[_T]
) -> None:
    """Forget a finished task, marking its exception retrieved (every waiter got it)."""
    if running.get(key) is task:
        del running[key]
    if not task.cancelled():
        task.exception()


MAX_TRIGGERS = 2_000
"""Triggers (request shapes, refused ones included) kept at once; beyond it the least recently
used is forgotten: its series leave ``/metrics`` and it is parsed again when it returns (its
policy state lives in the state store, not here)."""
MAX_CACHE_BYTES = 64 * 2**20
"""Estimated bytes of the parsed-trigger cache."""
IDLE_S = 900.0
"""Seconds after which a trigger nobody asks about is forgotten, series included. KEDA asks
every polling interval (30 s by default) and the HPA every 15 s, so a live trigger never idles
this long."""
_TARGET_BYTES = 4096  # a parsed trigger: policy, config, metadata, labelled series
_REFUSAL_BYTES = 1024  # a refusal: its key and problem, capped by the metadata limits


class ScalerService:
    """The external scaler's behaviour, transport-free.

    brokers:          broker name → reader; metadata names one of these keys.
    store:            where policy state lives (memory, or Redis shared by replicas).
    clock:            seconds; read once per evaluation.
    cache_s:          seconds one evaluation answers every RPC for its trigger, > 0.
    broker_timeout_s: seconds a broker read may take before it counts as unavailable, > 0.
    stream_poll_s:    seconds between broker reads of each open StreamIsActive, > 0.
    access:           broker name → who may use it and its kombu layout (``scaler.access``);
                      a broker without an entry is open to every namespace, kombu's defaults.
    idle_s:           seconds after which a trigger nobody asks about is forgotten (its parsed
                      metadata, cached answer and Prometheus series), > 0.
    max_triggers, max_cache_bytes: bounds on the triggers kept at once (least recently used out).
    idle_clock:       monotonic seconds for the housekeeping above (never the policy's clock).
    cas_attempts:     compare-and-set attempts before giving up with UNAVAILABLE, >= 1.
    replicas:         where the target's ready and warming replicas come from, read once per
                      fresh evaluation; None: the policy counts on its own decisions.
    """

    def __init__(
        self,
        brokers: Mapping[str, BrokerReader],
        store: StateStore,
        *,
        clock: Clock | None = None,
        cache_s: float = 5.0,
        broker_timeout_s: float = 1.0,
        stream_poll_s: float = 0.5,
        cas_attempts: int = 3,
        metrics: ScalerMetrics | None = None,
        replicas: ReplicaSource | None = None,
        access: Mapping[str, BrokerOptions] | None = None,
        idle_s: float = IDLE_S,
        max_triggers: int = MAX_TRIGGERS,
        max_cache_bytes: int = MAX_CACHE_BYTES,
        idle_clock: Clock = time.monotonic,
    ) -> None:
        for name, value in (
            ("cache_s", cache_s),
            ("broker_timeout_s", broker_timeout_s),
            ("stream_poll_s", stream_poll_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value}")
        if cas_attempts < 1:
            raise ValueError(f"cas_attempts must be >= 1, got {cas_attempts}")
        self.brokers = dict(brokers)
        self.access = {name: (access or {}).get(name, BrokerOptions()) for name in self.brokers}
        self.store = store
        self.clock: Clock = clock if clock is not None else AnchoredClock()
        self.cache_s = cache_s
        self.broker_timeout_s = broker_timeout_s
        self.stream_poll_s = stream_poll_s
        self.cas_attempts = cas_attempts
        self.metrics = metrics if metrics is not None else ScalerMetrics()
        self.replicas = replicas
        self.idle_s = idle_s
        self.idle_clock = idle_clock
        self._caches = _Caches(
            targets=IdleCache(
                max_entries=max_triggers,
                max_bytes=max_cache_bytes,
                idle_s=idle_s,
                on_evict=self._forget,
            ),
            # The last decision per policy state key: what a state that went missing from the
            # store is rebuilt from (an emptied state Redis, a record of another release).
            known=IdleCache(max_entries=max_triggers, max_bytes=max_triggers, idle_s=4 * idle_s),
        )
        # Cached request shapes per trigger series (labels), so eviction is O(1).
        self._series_users: Counter[tuple[str, str, str, str]] = Counter()
        self._resets_logged: IdleCache[str, bool] = IdleCache(
            max_entries=max_triggers, max_bytes=max_triggers, idle_s=4 * idle_s
        )

    # --- metadata -------------------------------------------------------------------------

    def resolve(self, namespace: str, name: str, metadata: Mapping[str, str]) -> Target:
        """Parse and check one trigger; raises ``MetadataError`` naming the key at fault, or
        ``AccessDenied``. Work is bounded by the request's size limits before anything else."""
        if len(namespace) > MAX_NAMESPACE_CHARS:
            raise MetadataError("namespace", f"longer than {MAX_NAMESPACE_CHARS} characters")
        if len(name) > MAX_NAME_CHARS:
            raise MetadataError("name", f"longer than {MAX_NAME_CHARS} characters")
        check_size(metadata)
        key = request_key(namespace, name, metadata)
        now = self.idle_clock()
        self._sweep(now)
        known = self._caches.targets.get(key, now)
        if known is None:
            try:
                known = self._resolve(namespace, name, metadata, key)
            except MetadataError as exc:
                # A new exception, without the traceback whose frames hold the request.
                known = MetadataError(exc.key, exc.problem)
            except AccessDenied as exc:
                known = AccessDenied(str(exc))
            cost = _REFUSAL_BYTES if isinstance(known, Exception) else _TARGET_BYTES
            self._caches.targets.put(key, known, cost, now)
            if isinstance(known, Target) and key in self._caches.targets:
                self._series_users[known.labels] += 1
        if isinstance(known, MetadataError):
            # The same answer for the same input, without parsing it again (a fresh exception:
            # one raised many times would keep growing its traceback).
            raise MetadataError(known.key, known.problem)
        if isinstance(known, AccessDenied):
            raise AccessDenied(str(known))
        return known

    def _resolve(
        self, namespace: str, name: str, metadata: Mapping[str, str], key: RequestKey
    ) -> Target:
        if not name:
            raise MetadataError("name", "the ScaledObject reference has no name")
        parsed = parse_metadata(metadata)
        if parsed.broker not in self.brokers:
            known = ", ".join(sorted(self.brokers)) or "none"
            raise MetadataError(
                "broker", f"no broker named {parsed.broker!r} is configured (known: {known})"
            )
        options = self.access[parsed.broker]
        options.check(parsed.broker, namespace, parsed.spec.queues)
        if parsed.spec.include_unacked and not getattr(
            self.brokers[parsed.broker], "counts_in_flight", True
        ):
            raise MetadataError(
                "includeUnacked",
                f"broker {parsed.broker!r} has no management API configured, so tasks in flight "
                "cannot be counted (docs/rabbitmq.md)",
            )
        spec = replace(
            parsed.spec,
            sep=options.sep,
            unacked_key=options.unacked_key,
            priority_steps=(
                parsed.spec.priority_steps
                if "priorityLevels" in metadata
                else options.priority_steps
            ),
            key_prefix=(
                parsed.spec.key_prefix if "keyPrefix" in metadata else options.global_keyprefix
            ),
        )
        for queue in spec.queues:
            try:
                check_queue_name(queue, spec.sep)
            except ValueError as exc:
                raise MetadataError("queues", str(exc)) from None
        parsed = replace(parsed, spec=spec)
        model = parsed.model or name
        target = Target(
            namespace=namespace,
            name=name,
            model=model,
            metadata=parsed,
            policy=QueueDepthPolicy(parsed.config),
            metric_name=metric_name(namespace, name, model),
            state_key=f"{namespace}/{name}/{model}/{trigger_identity(parsed)}",
            key=key,
            series=self.metrics.trigger(namespace, name, model, ",".join(spec.queues)),
        )
        return target

    def _forget(self, key: RequestKey, known: Target | Refusal) -> None:
        """A trigger left the cache (idle, or pushed out): its answers and series go with it."""
        self._caches.evaluations.pop(key, None)
        if isinstance(known, Target):
            # Request shapes that differ only in thresholds share one trigger's series: they
            # leave /metrics with the last of them.
            users = self._series_users[known.labels] - 1
            if users > 0:
                self._series_users[known.labels] = users
            else:
                del self._series_users[known.labels]
                known.series.remove()

    def _sweep(self, now: float) -> None:
        """At most every minute: forget triggers idle longer than ``idle_s``."""
        swept = self._caches.swept_at_s
        if swept is not None and 0 <= now - swept < min(60.0, self.idle_s / 4):
            return
        self._caches.swept_at_s = now
        self._caches.targets.sweep(now)
        self._caches.known.sweep(now)
        self._resets_logged.sweep(now)

    # --- broker ---------------------------------------------------------------------------

    async def read_depth(self, target: Target) -> Depth:
        """One broker read for the trigger; concurrent reads of one trigger share a round trip.
        Raises ``BrokerUnavailable`` (``BrokerTimeout`` after ``broker_timeout_s``)."""
        running = self._caches.reading.get(target.key)
        if running is None:
            running = asyncio.create_task(self._read_depth(target))
            self._caches.reading[target.key] = running
            running.add_done_callback(lambda t: _settle(self._caches.reading, target.key, t))
        return await asyncio.shield(running)

    async def _read_depth(self, target: Target) -> Depth:
        broker = target.metadata.broker
        self.metrics.count_broker_read(broker)
        try:
            async with asyncio.timeout(self.broker_timeout_s):
                return await self.brokers[broker].read(target.metadata.spec)
        except (TimeoutError, BrokerTimeout):
            self.metrics.broker_errors.labels(broker, "timeout").inc()
            raise BrokerTimeout(
                f"broker {broker!r}: no answer within {self.broker_timeout_s:g} s"
            ) from None
        except BrokerUnavailable as exc:
            # KEDA (and the ScaledObject's author) learn the broker's name; its host, port and
            # user stay in the scaler's own log.
            self.metrics.broker_errors.labels(broker, "unavailable").inc()
            log.warning(
                "broker %r unavailable: %s",
                broker,
                exc,
                extra={"fields": {"event": "broker-error", "broker": broker}},
            )
            raise BrokerUnavailable(f"broker {broker!r} is unavailable (see scaler logs)") from None

    # --- evaluation -----------------------------------------------------------------------

    async def evaluate(self, target: Target, *, max_age_s: float | None = None) -> Evaluation:
        """The trigger's current answer: cached if younger than ``max_age_s`` (default
        ``cache_s``), else one fresh evaluation shared by every concurrent caller."""
        max_age = self.cache_s if max_age_s is None else max_age_s
        now = self.clock()
        cached = self._caches.evaluations.get(target.key)
        if cached is not None and self._fresh(cached.at_s, now, max_age):
            return cached
        running = self._caches.evaluating.get(target.key)
        if running is None:
            running = asyncio.create_task(self._evaluate(target, now, max_age))
            self._caches.evaluating[target.key] = running
            running.add_done_callback(lambda t: _settle(self._caches.evaluating, target.key, t))
        return await asyncio.shield(running)

    def _fresh(self, at_s: float, now: float, max_age: float) -> bool:
        """A decision taken at ``at_s`` still answers at ``now``: younger than ``max_age``, or
        stamped at most ``cache_s`` ahead (another replica's clock running a little fast). A
        stamp further ahead means our clock stepped back: it is stale, not fresh."""
        return -self.cache_s <= now - at_s < max_age

    async def _load(self, target: Target) -> Record | None:
        """The stored record; None when there is none or it cannot be read (counted and logged
        once as a reset). Store errors name no host."""
        try:
            record = await self.store.load(target.state_key)
        except StateUnreadable as exc:
            self._reset(target, "unreadable", str(exc))
            return None
        except StateUnavailable as exc:
            log.warning(
                "state store unavailable: %s",
                exc,
                extra={"fields": {"event": "state-error", "model": target.model}},
            )
            raise StateUnavailable("policy state store is unavailable (see scaler logs)") from None
        if record is None and target.state_key in self._caches.known:
            self._reset(target, "missing", "the stored record is gone")
        return record

    def _reset(self, target: Target, reason: str, detail: str) -> None:
        self.metrics.state_resets.labels(reason).inc()
        now = self.idle_clock()
        if self._resets_logged.get(target.state_key, now) is None:
            self._resets_logged.put(target.state_key, True, 1, now)
            log.warning(
                "policy state of %s/%s model=%s starts afresh (%s: %s): no scale-down until it "
                "has watched a whole window",
                target.namespace,
                target.name,
                target.model,
                reason,
                detail,
                extra={"fields": {"event": "state-reset", "reason": reason, "model": target.model}},
            )

    def _fresh_state(self, target: Target) -> QueueDepthState:
        """A state that has watched nothing: from the last decision this process took for the
        trigger when it knows one (an emptied or unreadable store), else the policy's initial
        state. Either way no scale-down before a whole window is observed."""
        desired = self._caches.known.get(target.state_key, self.idle_clock())
        if desired is None:
            return target.policy.initial_state()
        return target.policy.warm_state(desired)

    async def _evaluate(self, target: Target, now: float, max_age: float) -> Evaluation:
        record = await self._load(target)
        if record is not None and self._fresh(record.at_s, now, max_age):
            evaluation = self._adopt(target, record)
        else:
            # Replica counts (when there is a source) are read alongside the broker, never per
            # RPC; the source answers None rather than raising.
            counting = (
                asyncio.create_task(self.replicas.counts(target.namespace, target.name))
                if self.replicas is not None
                else None
            )
            try:
                # The evaluation is coalesced already: read directly, unless a read of this
                # trigger (StreamIsActive's) is under way, which it shares.
                reading = self._caches.reading.get(target.key)
                if reading is not None:
                    depth = await asyncio.shield(reading)
                else:
                    depth = await self._read_depth(target)
            except BaseException:
                if counting is not None:
                    counting.cancel()
                raise
            counts = await counting if counting is not None else None
            evaluation = await self._decide(target, now, depth, record, counts)
        self._keep_answer(target, evaluation, now)
        return evaluation

    def _adopt(self, target: Target, record: Record) -> Evaluation:
        target.series.set_desired(record.decision.desired)
        self._caches.known.put(target.state_key, record.decision.desired, 1, self.idle_clock())
        return Evaluation(
            decision=record.decision,
            metric_target=target.policy.metric_target,
            depth=None,
            at_s=record.at_s,
            shared=True,
        )

    async def _decide(
        self,
        target: Target,
        now: float,
        depth: Depth,
        record: Record | None,
        counts: ReplicaCounts | None = None,
    ) -> Evaluation:
        for _ in range(self.cas_attempts):
            if record is not None and 0 < record.at_s - now <= self.cache_s:
                return self._adopt(target, record)  # a replica whose clock runs a little ahead
            observation = observe(
                now,
                depth.pending,
                depth.in_flight,
                None if counts is None else (counts.ready, counts.warming),
            )
            state = record.state if record is not None else self._fresh_state(target)
            decision, new_state = target.policy.decide(observation, state)
            expected = record.version if record is not None else None
            if await self.store.compare_and_set(
                target.state_key, expected, Record(new_state, decision, now)
            ):
                self._record_decision(target, observation, decision, record)
                self._caches.known.put(target.state_key, decision.desired, 1, self.idle_clock())
                return Evaluation(decision, target.policy.metric_target, depth, now)
            self.metrics.state_conflicts.inc()
            record = await self._load(target)
            if record is not None and self._fresh(record.at_s, now, self.cache_s):
                return self._adopt(target, record)  # another replica just decided: answer alike
        raise StateConflict(
            f"policy state {target.state_key!r}: compare-and-set lost {self.cas_attempts} times"
        )

    def _record_decision(
        self, target: Target, observation: Observation, decision: Decision, previous: Record | None
    ) -> None:
        series = target.series
        series.set_pending(observation.pending)
        if observation.in_flight is not None:
            series.set_in_flight(observation.in_flight)
        series.set_desired(decision.desired)
        series.count_decision(decision.reason.value)
        changed = previous is None or (
            previous.decision.desired,
            previous.decision.reason,
        ) != (decision.desired, decision.reason)
        level = logging.INFO if changed else logging.DEBUG
        if not log.isEnabledFor(level):
            return  # the fields below cost more than the decision's bookkeeping above
        log.log(
            level,
            "decision %s/%s model=%s: %s replicas (%s) %s",
            target.namespace,
            target.name,
            target.model,
            decision.desired,
            decision.reason.value,
            decision.detail,
            extra={
                "fields": {
                    "event": "decision",
                    "namespace": target.namespace,
                    "scaled_object": target.name,
                    "model": target.model,
                    "broker": target.metadata.broker,
                    "pending": observation.pending,
                    "in_flight": observation.in_flight,
                    "ready": observation.ready,
                    "warming": observation.warming,
                    "desired": decision.desired,
                    "previous_desired": None if previous is None else previous.decision.desired,
                    "reason": decision.reason.value,
                    "detail": decision.detail,
                    "metric_value": decision.metric_value,
                }
            },
        )

    def _keep_answer(self, target: Target, evaluation: Evaluation, now: float) -> None:
        """Keep the answer for the trigger's next RPCs (while the trigger is cached) and stamp
        its series, so rules can tell a trigger this replica still serves from a stale one."""
        if target.key in self._caches.targets:
            self._caches.evaluations[target.key] = evaluation
        target.series.set_evaluated(now)

    # --- activity stream ------------------------------------------------------------------

    async def watch_active(self, target: Target) -> AsyncIterator[bool]:
        """IsActive values for StreamIsActive: the current one at once, then each change.

        Every ``stream_poll_s`` the broker is read; an inactive trigger whose queues hold work
        is re-evaluated at once (not at the next cache expiry), so ``true`` follows new work
        within about one poll. Broker trouble sends nothing (KEDA keeps its last value and the
        polling RPCs report the error); the stream stays open and resumes when the broker does."""
        last: bool | None = None
        while True:
            active: bool | None = None
            try:
                evaluation = await self.evaluate(target)
                active = evaluation.decision.active
                if not active:
                    depth = await self.read_depth(target)
                    if depth.pending > 0 or (depth.in_flight or 0) > 0:
                        evaluation = await self.evaluate(target, max_age_s=0.0)
                        active = evaluation.decision.active
            except Unavailable as exc:
                log.warning(
                    "StreamIsActive %s/%s: %s",
                    target.namespace,
                    target.name,
                    exc,
                    extra={"fields": {"event": "stream-error", "model": target.model}},
                )
            if active is not None and active != last:
                last = active
                yield active
            await asyncio.sleep(self.stream_poll_s)

    async def close(self) -> None:
        """Close every broker reader, the state store and the replica source."""
        for reader in self.brokers.values():
            await reader.close()
        await self.store.close()
        if self.replicas is not None:
            await self.replicas.close()
