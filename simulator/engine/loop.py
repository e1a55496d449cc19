"""The control loop of one policy run: KEDA polls, HPA syncs and the cluster, on the tick grid.

At each control instant ``t`` (all models, in scenario order):

1. the cluster applies what fell due (drains ending, spot notices, pending pods, placeholders,
   consolidation);
2. when the scaler is asked (a KEDA poll, and an HPA sync unless metrics are cached): every
   request that can start before ``t`` starts (the compiled queue), and the policy gets what the
   live scaler would see (``policies.observe.observe``): the pending count, the in-flight count
   only when the model counts them (``includeUnacked``), and the Deployment's ready and warming
   replicas only with ``replicas_from: kubernetes`` (otherwise the policy trusts its own past
   decisions); it decides, and the GetMetricSpec/GetMetrics/IsActive calls of that instant are
   answered from that one decision, as the live scaler's evaluation cache does;
3. at a KEDA poll: KEDA acts on ``isActive`` (activation at zero, cooldown to zero);
4. at an HPA sync: the HPA turns the latest metric into a replica count (tolerance,
   stabilization, rate limits, bounds) and the Deployment is resized;
5. at a sample instant: the series get a point;
6. at a Prometheus scrape (only when a model is served online): vLLM's gauges of each model
   served online are recorded; KEDA's prometheus trigger reads the latest recorded value
   (``simulator.engine.online``): the HPA takes the larger of its proposal and the scaler's, and
   KEDA holds the model active while either trigger is.

The policy objects are the ones the live scaler runs (``policies/``), called with simulated time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.observe import observe
from policies.types import Observation
from simulator.engine.cluster import Cluster
from simulator.engine.fluid import FluidQueue
from simulator.engine.hpa import HpaController
from simulator.engine.keda import KedaController
from simulator.engine.online import MixedQueue, Scrapes
from simulator.engine.queue import ModelQueue, ServingQueue
from simulator.engine.setup import ModelPolicy, Plan

F64 = npt.NDArray[np.float64]
QueueFactory = Callable[[F64, F64, int], ServingQueue]


@dataclass(slots=True)
class Trajectory:
    """What one run leaves behind for ``totals.summarize`` (per model unless said otherwise)."""

    queues: list[ServingQueue]
    cluster: Cluster
    scale_events: list[int]
    reasons: dict[str, int]
    sample_t: F64
    queue_depth: list[F64]
    desired: list[F64]
    ready: list[F64]
    nodes: list[F64]
    decisions: list[list[tuple[Observation, Any]]] = field(default_factory=list)


def simulate(
    plan: Plan,
    policies: list[ModelPolicy],
    progress: Callable[[float], None] | None = None,
    make_queue: QueueFactory = ModelQueue,
    record_decisions: bool = False,
    warm: Sequence[int] | None = None,
) -> Trajectory:
    """Run ``policies`` (one per model, in plan order) through the plan's control instants.

    warm: replicas per model already serving at t=0 (nodes up, pods ready), with each policy in
          its ``warm_state`` for that count, KEDA last active at 0 and the HPA having recommended
          that count; None starts cold: no replicas, no nodes."""
    models = plan.models
    n = len(models)
    queues = [
        MixedQueue(m.arrival_s, m.service_s, m.concurrency, m.online.mask)
        if m.online is not None
        else make_queue(m.arrival_s, m.service_s, m.concurrency)
        if m.fluid is None
        else FluidQueue(
            m.fluid.counts,
            m.fluid.occupancy,
            m.fluid.survival,
            m.fluid.period_s,
            m.fluid.drain_s,
            m.concurrency,
        )
        for m in models
    ]
    cluster = Cluster(
        plan.pools,
        [m.pool for m in models],
        [m.gpus for m in models],
        [m.startup_s for m in models],
        queues,
        plan.seed,
    )
    hpas = [HpaController(m.hpa) for m in models]
    kedas = [KedaController(m.cooldown_s, m.keda_min_replicas) for m in models]
    states = [p.initial_state() for p in policies]
    if warm is not None:
        states = [p.warm_state(count) for p, count in zip(policies, warm, strict=True)]
        for m, count in enumerate(warm):
            if cluster.provision(m, count, 0.0):
                kedas[m].last_active_s = 0.0
                hpas[m].recommendations.append((0.0, len(cluster.live[m])))
    targets = [p.metric_target for p in policies]
    # Models whose ScaledObject carries the prometheus trigger: what Prometheus holds of them.
    scrapes: dict[int, Scrapes] = {
        m: Scrapes(plan.scrape_lag_s, model.online.hold_s)
        for m, model in enumerate(models)
        if model.online is not None and model.online.trigger
    }
    mixed = {m: q for m, q in enumerate(queues) if isinstance(q, MixedQueue)}
    scrape_at = plan.is_scrape.tolist() if plan.is_scrape is not None else [False] * len(plan.times)
    metric = [0.0] * n  # the latest decision's metric value, per model
    active = [False] * n  # the latest decision's isActive, per model
    scale_events = [0] * n
    reasons: dict[str, int] = {}
    decisions: list[list[tuple[Observation, Any]]] = [[] for _ in range(n)]

    n_samples = int(plan.is_sample.sum())
    depth = [np.zeros(n_samples) for _ in range(n)]
    desired = [np.zeros(n_samples) for _ in range(n)]
    ready_s = [np.zeros(n_samples) for _ in range(n)]
    nodes = [np.zeros(n_samples) for _ in range(n)]
    sample_t = plan.times[plan.is_sample]

    times = plan.times.tolist()
    evals = plan.is_eval.tolist()
    polls = plan.is_poll.tolist()
    syncs = plan.is_sync.tolist()
    samples = plan.is_sample.tolist()
    report_every = max(len(times) // 200, 1)
    live = cluster.live  # model -> its Deployment's pods (len = replica count)
    maintain = cluster.maintain
    models_range = range(n)
    k = 0
    for i, t in enumerate(times):
        maintain(t)
        if evals[i]:
            for m in models_range:
                queue = queues[m]
                queue.advance(t)
                # What the live scaler sees, built as it builds it: the broker's counts
                # (in-flight only with includeUnacked) and, with replicas_from kubernetes, the
                # Deployment's ready/warming replicas read at this evaluation. Online requests
                # are no tasks: the broker never holds them.
                if m in mixed:
                    seen = mixed[m].counts(t)
                    pending, in_flight = seen.pending, seen.in_flight
                else:
                    pending = queue.arrived(t) - queue.started()
                    in_flight = queue.in_flight(t) if models[m].counts_in_flight else 0
                obs = observe(
                    t,
                    pending,
                    in_flight if models[m].counts_in_flight else None,
                    cluster.ready_warming(m, t) if models[m].counts_replicas else None,
                )
                decision, states[m] = policies[m].decide(obs, states[m])
                if record_decisions:
                    decisions[m].append((obs, decision))
                key = decision.reason.value
                reasons[key] = reasons.get(key, 0) + 1
                metric[m] = decision.metric_value
                active[m] = decision.desired >= 1
        if polls[i]:
            for m in models_range:
                current = len(live[m])
                is_active = active[m]
                if m in scrapes:
                    # IsActive is the OR of the triggers; the prometheus scaler's
                    # activationThreshold is KEDA's default, 0.
                    is_active = is_active or (scrapes[m].seen(t) or 0.0) > 0.0
                keda_sets = kedas[m].poll(t, is_active, current)
                if keda_sets is not None and keda_sets != current:
                    cluster.set_replicas(m, keda_sets, t)
                    scale_events[m] += 1
        if syncs[i]:
            for m in models_range:
                current = len(live[m])
                if current == 0:
                    continue
                others: tuple[tuple[float, float], ...] = ()
                if m in scrapes:
                    spec = models[m].online
                    assert spec is not None
                    others = ((scrapes[m].seen(t) or 0.0, spec.target),)
                wanted = hpas[m].sync(t, current, metric[m], targets[m], others).replicas
                if wanted != current:
                    cluster.set_replicas(m, wanted, t)
                    scale_events[m] += 1
            maintain(t)
        if samples[i]:
            for m in models_range:
                queue = queues[m]
                queue.advance(t)
                depth[m][k] = queue.arrived(t) - queue.started()
                desired[m][k] = len(live[m])
                ready_s[m][k] = cluster.ready_warming(m, t)[0]
                nodes[m][k] = cluster.nodes_in_pool(models[m].pool)
            k += 1
        if scrape_at[i]:
            # After this instant's queries: a sample taken now is visible from the next one.
            for m, scraped in scrapes.items():
                queue = mixed[m]
                queue.advance(t)
                scraped.record(t, float(queue.counts(t).gauges))
        if progress is not None and i % report_every == 0:
            progress(i / len(times))
    for queue in queues:
        queue.advance(plan.end_s)
    cluster.finish(plan.end_s)
    if progress is not None:
        progress(1.0)
    return Trajectory(
        queues=queues,
        cluster=cluster,
        scale_events=scale_events,
        reasons=reasons,
        sample_t=sample_t,
        queue_depth=depth,
        desired=desired,
        ready=ready_s,
        nodes=nodes,
        decisions=decisions,
    )
