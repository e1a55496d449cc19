"""From a scenario and a trace to what the engine runs on: per-model request arrays, pool and
control-plane specs, and the control instants. Pure: no clock, no files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.queue_depth import QueueDepthPolicy
from policies.types import Policy
from simulator.engine import fluid
from simulator.engine.cluster import PoolSpec
from simulator.engine.hpa import Direction, HpaSpec, Rule
from simulator.engine.online import OnlineSpec
from simulator.scenario import ModelSpec, ScalingBehavior, Scenario
from simulator.traces.bins import ArrivalBins
from simulator.traces.trace import Trace

F64 = npt.NDArray[np.float64]

HPA_QUERIES_SCALER = True
"""Whether each HPA sync evaluates the policy afresh. KEDA's metrics adapter calls the scaler's
GetMetrics at every HPA sync unless the trigger sets ``useCachedMetrics: true`` (KEDA docs, ScaledObject triggers: useCachedMetrics),
and the live scaler caches an evaluation for only 5 s, shorter than the 15 s sync; our
ScaledObjects do not set ``useCachedMetrics``. So by default the policy runs at every KEDA poll
and every HPA sync (once per instant when they coincide)."""

DRAIN_S = 900.0
"""Without ``simulation.duration_s`` a run lasts until this many seconds after the last arrival,
so requests arriving at the very end get a fair chance to be served."""

ModelPolicy = Policy[Any]
PolicyTriple = tuple[str, str, ModelPolicy | Mapping[str, ModelPolicy]]


class EngineError(ValueError):
    """The scenario, trace and policies do not fit together; the message names the part."""


@dataclass(frozen=True, slots=True)
class ModelRun:
    """One scenario model as the engine sees it.

    arrival_s/service_s: its requests (arrival sorted), seconds.
    concurrency:         batch slots per replica.
    gpus:                GPUs per replica.
    pool:                index of its node pool.
    startup_s:           (low, high) pod start-up seconds once its node is ready.
    hpa:                 its HPA's spec; keda_min_replicas/cooldown_s: its ScaledObject's.
    counts_in_flight:    the scaler counts in-flight (unacked) tasks for it (``includeUnacked``),
                         so the policy's observations carry ``in_flight``; else None, as live.
    counts_replicas:     the scaler reads its Deployment's ready/warming replicas
                         (``control_plane.replicas_from: kubernetes``), so the observations
                         carry them, read at the evaluation instant; else None.
    online:              its online traffic (``simulator.engine.online``), None when it has none.
    """

    name: str
    arrival_s: F64
    service_s: F64
    concurrency: int
    gpus: int
    pool: int
    startup_s: tuple[float, float]
    hpa: HpaSpec
    keda_min_replicas: int
    cooldown_s: float
    counts_in_flight: bool = False
    counts_replicas: bool = False
    fluid: FluidDemand | None = None
    online: OnlineSpec | None = None

    @property
    def requests(self) -> float:
        """Requests of this model in the trace."""
        if self.fluid is not None:
            return float(self.fluid.counts.sum())
        return float(self.arrival_s.size)

    @property
    def total_service_s(self) -> float:
        """Slot-seconds of service its requests need (aggregated: expected, per period)."""
        if self.fluid is not None:
            return self.fluid.total_service_s()
        return float(self.service_s.sum())

    def arrived_before(self, t_s: F64) -> F64:
        """Requests that arrived before each instant of ``t_s`` (seconds)."""
        if self.fluid is not None:
            cumulative = np.concatenate([[0.0], np.cumsum(self.fluid.counts)])
            k = np.clip(np.floor(t_s + 1e-9).astype(np.int64), 0, self.fluid.counts.size)
            return np.asarray(cumulative[k], dtype=np.float64)
        return np.searchsorted(self.arrival_s, t_s, side="left").astype(np.float64)


@dataclass(frozen=True, slots=True)
class FluidDemand:
    """A model's traffic for the aggregated engine (``simulator.engine.fluid``).

    counts:         requests arriving in each second from the trace start.
    occupancy:      (periods, L) the occupancy kernel of a request started in each period.
    survival:       (periods, L) its survival kernel (``fluid.survival_kernel``).
    mean_service_s: (periods,) mean service time of the period's requests, seconds.
    period_s:       seconds each period covers.
    drain_s:        the longest a stopped replica may take to finish its requests: the 99.9th
                    percentile of the service times, seconds.
    """

    counts: F64
    occupancy: F64
    survival: F64
    mean_service_s: F64
    period_s: float
    drain_s: float

    def total_service_s(self) -> float:
        periods = self.mean_service_s.shape[0]
        seconds = np.arange(self.counts.size, dtype=np.float64)
        row = np.clip((seconds // self.period_s).astype(np.int64), 0, periods - 1)
        per_row = np.bincount(row, weights=self.counts, minlength=periods)
        return float(np.dot(per_row, self.mean_service_s))


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one run needs. Times in seconds from the trace start.

    times:   the control instants (sorted), with flags saying what happens at each:
             ``is_eval`` the policy is evaluated (the scaler is asked), ``is_poll`` KEDA acts
             on isActive, ``is_sync`` the HPA acts on the metric, ``is_sample`` a series point,
             ``is_scrape`` Prometheus scrapes vLLM's gauges (only when a model is served
             online).
    end_s:   end of the run; requests not started by then are unserved.
    step_s:  series sampling step.
    scrape_lag_s: seconds before a scrape is visible to the online trigger's query.
    """

    models: list[ModelRun]
    pools: list[PoolSpec]
    times: F64
    is_eval: npt.NDArray[np.bool_]
    is_poll: npt.NDArray[np.bool_]
    is_sync: npt.NDArray[np.bool_]
    is_sample: npt.NDArray[np.bool_]
    end_s: float
    step_s: float
    slo_wait_s: float
    seed: int
    assumptions: list[str]
    is_scrape: npt.NDArray[np.bool_] | None = None
    scrape_lag_s: float = 0.0


def direction(behavior: ScalingBehavior) -> Direction:
    return Direction(
        window_s=float(behavior.stabilization_window_s),
        rules=tuple(Rule(r.type, r.value, float(r.period_s)) for r in behavior.policies),
        select=behavior.select_policy,
        tolerance=behavior.tolerance,
    )


def _grid(period_s: float, end_s: float) -> npt.NDArray[np.int64]:
    """Multiples of ``period_s`` in [0, end_s], as integer milliseconds."""
    count = math.floor(end_s / period_s + 1e-9) + 1
    return np.round(np.arange(count) * period_s * 1000.0).astype(np.int64)


def plan(
    trace: Trace | ArrivalBins,
    scenario: Scenario,
    hpa_queries_scaler: bool = HPA_QUERIES_SCALER,
) -> Plan:
    """Split the trace by scenario model and lay out the control instants. A per-request
    ``Trace`` runs on the per-request queue; ``ArrivalBins`` on the aggregated one."""
    try:
        index = scenario.trace_model_index(trace.models)
    except KeyError as exc:
        raise EngineError(str(exc.args[0])) from None
    pool_names = list(scenario.node_pools)
    pools = []
    for spec in scenario.node_pools.values():
        buffer = spec.warm_buffer
        pools.append(
            PoolSpec(
                name=spec.name,
                gpus_per_node=spec.gpus_per_node,
                usd_per_hour=spec.hourly_usd,
                launch_s=(spec.launch_s.low, spec.launch_s.high),
                consolidate_after_s=spec.consolidate_after_s,
                spot=spec.capacity_type == "spot",
                interruptions_per_hour=spec.spot_interruptions_per_hour,
                notice_s=spec.spot_notice_s,
                max_nodes=spec.max_nodes,
                buffer_nodes=None if buffer is None else buffer.nodes,
                buffer_utilization=None if buffer is None else buffer.target_utilization,
            )
        )
    hpa = scenario.control_plane.hpa
    keda = scenario.control_plane.keda
    up, down = direction(hpa.scale_up), direction(hpa.scale_down)
    models = []
    of_request = None  # each request's scenario model, computed once for all models
    if isinstance(trace, Trace) and len(scenario.models) > 1:
        of_request = index[trace.model]
    for i, model in enumerate(scenario.models.values()):
        fluid: FluidDemand | None = None
        online: OnlineSpec | None = None
        if isinstance(trace, ArrivalBins):
            if model.served_online:
                raise EngineError(
                    f"models.{model.name}.online.share: the aggregated engine does not model "
                    "online traffic; use the per-request engine or set it to 0"
                )
            arrival = service = np.zeros(0)
            fluid = _fluid_demand(trace, index, i, model)
        else:
            arrival, service = _requests(trace, of_request, i, model)
            if model.served_online:
                online = _online(model, arrival.size, scenario.seed, i)
        config = model.policy.to_policy_config()
        models.append(
            ModelRun(
                name=model.name,
                arrival_s=np.ascontiguousarray(arrival),
                service_s=np.ascontiguousarray(service, dtype=np.float64),
                concurrency=model.max_concurrency,
                gpus=model.gpus_per_replica,
                pool=pool_names.index(model.node_pool),
                startup_s=(model.startup_s.low, model.startup_s.high),
                hpa=HpaSpec(max(config.min_replicas, 1), config.max_replicas, up, down),
                keda_min_replicas=config.min_replicas,
                cooldown_s=keda.cooldown_period_s,
                counts_in_flight=bool(model.policy.include_unacked),
                counts_replicas=scenario.control_plane.replicas_from == "kubernetes",
                fluid=fluid,
                online=online,
            )
        )
    step = scenario.simulation.sample_every_s
    if scenario.simulation.duration_s is not None:
        end = scenario.simulation.duration_s
        horizon = f"runs {end:g} s from the trace start (simulation.duration_s)"
    else:
        end = trace.duration_s + DRAIN_S
        if isinstance(trace, ArrivalBins):
            end = max(end, trace.n_bins * trace.bin_s)
        horizon = f"runs until {DRAIN_S:g} s after the last arrival"
    end = math.ceil(end / step - 1e-9) * step
    polls = _grid(keda.polling_interval_s, end)
    syncs = _grid(hpa.sync_period_s, end)
    samples = _grid(step, end)
    prometheus = scenario.control_plane.prometheus
    scrapes = np.zeros(0, dtype=np.int64)
    if any(m.online is not None for m in models):
        # Prometheus scrapes each target at a fixed offset within its interval; here half an
        # interval off the KEDA/HPA grid.
        interval = prometheus.scrape_interval_s
        scrapes = _grid(interval, end) + round(interval * 500.0)
        scrapes = scrapes[scrapes <= round(end * 1000.0)]
    ms = np.unique(np.concatenate([polls, syncs, samples, scrapes]))
    assumptions = [
        f"KEDA polls the scaler every {keda.polling_interval_s:g} s (cooldown "
        f"{keda.cooldown_period_s:g} s); the HPA syncs every {hpa.sync_period_s:g} s and "
        + (
            "asks the scaler afresh each time (no useCachedMetrics)"
            if hpa_queries_scaler
            else "uses the metric of the latest poll (useCachedMetrics)"
        ),
        "the scaler reads each model's ready and warming replicas at every evaluation, as "
        "serve --replicas-from kubernetes does"
        if scenario.control_plane.replicas_from == "kubernetes"
        else "the scaler gets no replica counts and counts on its own past decisions, as "
        "serve --replicas-from decisions does",
        f"the run {horizon}; requests not started by then count as unserved",
        "empty nodes only are consolidated (Karpenter WhenEmpty; serving pods carry "
        "karpenter.sh/do-not-disrupt), so replicas spread over nodes keep them running",
        "scale-down removes pending, then warming, then the least busy ready replicas; "
        "removed replicas finish the requests they hold",
        "requests in service on a spot node that is reclaimed are assumed to finish",
        "a replica holds max_concurrency batch slots; a request holds one slot for its service time",
    ]
    for m in models:
        if m.online is not None:
            assumptions.append(
                f"model {m.name}: {m.online.mask.mean():.1%} of its requests arrive online "
                "(through the gateway, not Celery), share the replicas' slots first come first "
                "served, and are never seen by the scaler; "
                + (
                    f"the prometheus trigger shows the HPA vLLM's running + waiting requests "
                    f"for {m.online.target:g} per replica (AverageValue), scraped every "
                    f"{prometheus.scrape_interval_s:g} s half an interval off the HPA's syncs, "
                    f"visible {prometheus.lag_s:g} s after the scrape, the highest of the last "
                    f"{m.online.hold_s:g} s; the HPA takes the larger proposal of its two metrics"
                    if m.online.trigger
                    else "no trigger sees them (online.trigger false)"
                )
            )
    for pool in pools:
        assumptions.append(
            f"node pool {pool.name}: {pool.gpus_per_node} GPUs/node at ${pool.usd_per_hour:g}/node-hour"
            f" ({'spot' if pool.spot else 'on-demand'}), launch {pool.launch_s[0]:g}-"
            f"{pool.launch_s[1]:g} s, empty nodes removed after {pool.consolidate_after_s:g} s"
        )
    return Plan(
        models=models,
        pools=pools,
        times=ms.astype(np.float64) / 1000.0,
        is_eval=np.isin(ms, polls) | (np.isin(ms, syncs) & hpa_queries_scaler),
        is_poll=np.isin(ms, polls),
        is_sync=np.isin(ms, syncs),
        is_sample=np.isin(ms, samples),
        is_scrape=np.isin(ms, scrapes) if scrapes.size else None,
        scrape_lag_s=prometheus.lag_s,
        end_s=float(end),
        step_s=float(step),
        slo_wait_s=scenario.slo_wait_s,
        seed=scenario.seed,
        assumptions=assumptions,
    )


def _requests(
    trace: Trace, of_request: npt.NDArray[np.int32] | None, i: int, model: ModelSpec
) -> tuple[F64, F64]:
    """Model ``i``'s arrival times and service times, seconds. ``of_request``: each request's
    scenario model, or None when the scenario has one model (every request is its own)."""
    rows = None if of_request is None else np.flatnonzero(of_request == i)
    arrival = trace.arrival_s if rows is None else trace.arrival_s[rows]
    if trace.service_s is not None:
        service = trace.service_s if rows is None else trace.service_s[rows]
    else:
        tokens_in = trace.input_tokens if rows is None else trace.input_tokens[rows]
        tokens_out = trace.output_tokens if rows is None else trace.output_tokens[rows]
        service = model.service.service_s(tokens_in, tokens_out, model.max_concurrency)
    _check_service(model.name, service)
    return np.ascontiguousarray(arrival), np.ascontiguousarray(service, dtype=np.float64)


def _online(model: ModelSpec, requests: int, seed: int, i: int) -> OnlineSpec:
    """Which of model ``i``'s ``requests`` arrive online: each with probability
    ``online.share``, drawn from the scenario's seed (the same requests for every policy)."""
    rng = np.random.default_rng([seed, 0x0A11, i])
    target = model.online.target_per_replica
    assert target is not None  # filled by the scenario
    return OnlineSpec(
        mask=rng.random(requests) < model.online.share,
        target=float(target),
        hold_s=online_hold_s(model),
        trigger=model.online.trigger,
    )


def online_hold_s(model: ModelSpec) -> float:
    """Seconds the online trigger's query holds its highest sum: the policy's own
    ``stabilizationWindowSeconds``, so online load scales down as late as Celery load does."""
    return float(model.policy.to_policy_config().stabilization_window_s)


def _fluid_demand(
    bins: ArrivalBins, index: npt.NDArray[np.int32], i: int, model: ModelSpec
) -> FluidDemand:
    """Model ``i``'s per-second arrivals (its trace models summed) and, per period, the kernels
    of its requests' service times (trace models sharing a scenario model mixed by their
    requests in each period)."""
    if bins.bin_s != 1.0:
        raise EngineError(f"the aggregated engine needs 1-second bins, got {bins.bin_s:g} s")
    mine = np.flatnonzero(index == i)
    counts = bins.counts[mine].sum(axis=0) if mine.size else np.zeros(bins.n_bins)
    parts: list[tuple[F64, F64, F64, F64, float]] = []  # per trace model: H, G, means, w, p99
    period = 3600.0
    for j in mine:
        mix = bins.mixes[int(j)]
        service = model.mix_service_s(mix)
        _check_service(model.name, service.ravel())
        period = mix.period_s
        weight = bins.period_requests(int(j))
        occupancy, survival = fluid.occupancy_kernel(service), fluid.survival_kernel(service)
        if mix.weights is not None:
            occupancy, survival = mix.weights @ occupancy, mix.weights @ survival
        means = mix.per_period(service.mean(axis=1))
        # Each row's share of the requests: its period's requests, spread by the weights.
        share = weight if mix.weights is None else weight @ mix.weights
        parts.append((occupancy, survival, means, weight, _quantile(service, share, 0.999)))
    if not parts:
        one = np.array([[1.0, 0.0]])
        mean = np.array([1.0 / model.service.throughput_rps])
        return FluidDemand(counts, one * mean[0], one, mean, period, float(mean[0]))
    periods = max(p[0].shape[0] for p in parts)
    length = max(p[0].shape[1] for p in parts)
    total = np.zeros(periods)
    occupancy = np.zeros((periods, length))
    survival = np.zeros((periods, length))
    means = np.zeros(periods)
    for h, g, m, w, _ in parts:
        rows = np.minimum(np.arange(periods), h.shape[0] - 1)
        share = np.ones(periods) if len(parts) == 1 else np.maximum(w[rows], 1e-12)
        occupancy[:, : h.shape[1]] += share[:, None] * h[rows]
        survival[:, : g.shape[1]] += share[:, None] * g[rows]
        means += share * m[rows]
        total += share
    drain = max(p[4] for p in parts)
    return FluidDemand(
        np.ascontiguousarray(counts),
        occupancy / total[:, None],
        survival / total[:, None],
        means / total,
        period,
        min(drain, fluid.MAX_KERNEL_S),
    )


def _quantile(samples: F64, row_weights: F64, q: float) -> float:
    """The ``q`` quantile of (rows, k) samples, each row weighing ``row_weights[row]``."""
    values = samples.ravel()
    weights = np.repeat(np.maximum(row_weights, 0.0) / samples.shape[1], samples.shape[1])
    if not weights.sum() > 0:
        return float(np.quantile(values, q))
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[order][min(at, values.size - 1)])


def _check_service(name: str, service: F64) -> None:
    if service.size and not float(service.min()) >= 0.0:  # also catches NaN
        bad = int(np.flatnonzero(~(service >= 0.0))[0])
        raise EngineError(
            f"model {name}: request {bad} of the model has service time "
            f"{float(service[bad])!r} s; service times must be >= 0"
        )


def default_policies(scenario: Scenario) -> list[PolicyTriple]:
    """Just depthscale's queue-depth policy, each model with its own thresholds."""
    per_model: dict[str, ModelPolicy] = {
        name: QueueDepthPolicy(model.policy.to_policy_config())
        for name, model in scenario.models.items()
    }
    return [("depthscale", "depthscale", per_model)]


def per_model(entry: PolicyTriple, names: Sequence[str]) -> list[ModelPolicy]:
    """The policy object for each model: one shared object, or a mapping covering every model."""
    name, _, policy = entry
    if isinstance(policy, Mapping):
        missing = [m for m in names if m not in policy]
        if missing:
            raise EngineError(f"policy {name}: no policy object for model(s) {', '.join(missing)}")
        return [policy[m] for m in names]
    return [policy for _ in names]
