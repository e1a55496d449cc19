"""From a run's trajectory to the report's figures (``simulator.results``): vectorised numpy.

Each queue summarises its waits in a ``WaitSketch`` (bounded memory, 0.5% relative error on
quantiles; count, mean, max and SLO attainment exact), merged across models.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulator.engine.loop import Trajectory
from simulator.engine.online import MixedQueue
from simulator.engine.setup import Plan
from simulator.engine.sketch import WaitSketch
from simulator.results import PolicyResult, RouteWaits, Series, Totals, WaitStats

F64 = npt.NDArray[np.float64]
QS = (0.5, 0.95, 0.99)


def _merged(parts: list[WaitSketch], slo_s: float) -> WaitSketch:
    merged = WaitSketch(slo_s)
    for part in parts:
        merged.merge(part)
    return merged


def sketch_stats(sketch: WaitSketch) -> WaitStats:
    """Mean, p50/p95/p99 (within the sketch's 0.5% relative error) and max, seconds."""
    if sketch.count <= 0:
        return WaitStats(0.0, 0.0, 0.0, 0.0, 0.0)
    p50, p95, p99 = (sketch.quantile(q) for q in QS)
    return WaitStats(sketch.mean, p50, p95, p99, sketch.max)


def _totals(
    waits: WaitSketch,
    requests: float,
    busy_s: float,
    held_s: float,
    cost: float,
    gpu_h: float,
    node_h: float,
    scale_events: int,
    launches: int,
) -> Totals:
    served = round(waits.count)
    arrived = round(requests)
    return Totals(
        cost_usd=cost,
        gpu_hours=gpu_h,
        node_hours=node_h,
        utilization=busy_s / held_s if held_s > 0 else 0.0,
        wait_s=sketch_stats(waits),
        slo_attainment=min(waits.within_slo / requests, 1.0) if requests > 0 else 1.0,
        requests=arrived,
        served=served,
        unserved=max(arrived - served, 0),
        scale_events=scale_events,
        node_launches=launches,
    )


def route_waits(queue: MixedQueue, slo_s: float) -> dict[str, RouteWaits]:
    """The waits of a model's Celery tasks and of its online requests, apart."""
    out = {}
    for route, online in (("celery", False), ("online", True)):
        waits, requests = queue.wait_of(online)
        sketch = WaitSketch(slo_s)
        sketch.add(waits)
        out[route] = RouteWaits(
            requests=requests,
            served=int(waits.size),
            wait_s=sketch_stats(sketch),
            slo_attainment=min(sketch.within_slo / requests, 1.0) if requests > 0 else 1.0,
        )
    return out


def summarize(name: str, kind: str, plan: Plan, run: Trajectory) -> PolicyResult:
    """Totals per model and overall, and the per-model series."""
    cluster = run.cluster
    pool_cost = [p.node_s / 3600.0 * p.spec.usd_per_hour for p in cluster.pools]
    pool_node_h = [p.node_s / 3600.0 for p in cluster.pools]
    pool_share = [0.0] * len(cluster.pools)
    for m, model in enumerate(plan.models):
        pool_share[model.pool] += cluster.gpu_share_s[m]

    per_model: dict[str, Totals] = {}
    series: dict[str, Series] = {}
    digests: list[WaitSketch] = []
    busy_total = held_total = 0.0
    routes: dict[str, dict[str, RouteWaits]] = {}
    for m, model in enumerate(plan.models):
        queue = run.queues[m]
        if isinstance(queue, MixedQueue):
            routes[model.name] = route_waits(queue, plan.slo_wait_s)
        digest = queue.wait_sketch(plan.slo_wait_s)
        digests.append(digest)
        busy = queue.busy_slot_s(plan.end_s)
        held = cluster.held_slot_s[m]
        busy_total += busy
        held_total += held
        pool = model.pool
        share = cluster.gpu_share_s[m] / pool_share[pool] if pool_share[pool] > 0 else 0.0
        gpus = cluster.pools[pool].spec.gpus_per_node
        per_model[model.name] = _totals(
            digest,
            model.requests,
            busy,
            held,
            pool_cost[pool] * share,
            pool_node_h[pool] * gpus * share,
            pool_node_h[pool] * share,
            run.scale_events[m],
            cluster.launches_by_model[m],
        )
        arrived = model.arrived_before(run.sample_t)
        rate = np.diff(arrived, prepend=0.0) / plan.step_s
        series[model.name] = Series(
            t_s=run.sample_t.copy(),
            arrival_rps=rate,
            queue_depth=run.queue_depth[m],
            replicas_desired=run.desired[m],
            replicas_ready=run.ready[m],
            nodes=run.nodes[m],
        )
    total = _totals(
        _merged(digests, plan.slo_wait_s),
        sum(m.requests for m in plan.models),
        busy_total,
        held_total,
        sum(pool_cost),
        sum(h * p.spec.gpus_per_node for h, p in zip(pool_node_h, cluster.pools, strict=True)),
        sum(pool_node_h),
        sum(run.scale_events),
        sum(p.launches for p in cluster.pools),
    )
    return PolicyResult(
        name=name,
        kind=kind,
        total=total,
        per_model=per_model,
        series=series,
        reasons=dict(sorted(run.reasons.items())),
        routes=routes,
    )
