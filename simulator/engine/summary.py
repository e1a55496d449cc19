"""From a run's trajectory to the report's figures (``simulator.results``): vectorised numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulator.engine.loop import Trajectory
from simulator.engine.setup import Plan
from simulator.results import PolicyResult, Series, Totals, WaitStats

F64 = npt.NDArray[np.float64]


def quantiles(waits: F64, qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(waits, 100·q)`` (linear interpolation) for non-negative ``waits``,
    partitioning only the positive ones: most requests of a well-provisioned run wait 0 s."""
    n = waits.size
    positive = waits[waits > 0.0]
    zeros = n - positive.size
    wanted = sorted({k for q in qs for k in _ranks(q, n)} - set(range(zeros)))
    ranked = np.partition(positive, [k - zeros for k in wanted]) if wanted else positive

    def at(k: int) -> float:
        return 0.0 if k < zeros else float(ranked[k - zeros])

    out = []
    for q in qs:
        h = (n - 1) * q
        lo = int(np.floor(h))
        hi = min(lo + 1, n - 1)
        out.append(at(lo) + (h - lo) * (at(hi) - at(lo)))
    return out


def _ranks(q: float, n: int) -> tuple[int, int]:
    lo = int(np.floor((n - 1) * q))
    return lo, min(lo + 1, n - 1)


def wait_stats(waits: F64) -> WaitStats:
    """Mean, p50/p95/p99 (linear interpolation) and max of ``waits``, seconds; zeros if empty."""
    if waits.size == 0:
        return WaitStats(0.0, 0.0, 0.0, 0.0, 0.0)
    p50, p95, p99 = quantiles(waits, (0.5, 0.95, 0.99))
    return WaitStats(float(waits.mean()), p50, p95, p99, float(waits.max()))


def _totals(
    waits: F64,
    requests: int,
    busy_s: float,
    held_s: float,
    cost: float,
    gpu_h: float,
    node_h: float,
    slo_s: float,
    scale_events: int,
    launches: int,
) -> Totals:
    served = int(waits.size)
    within = int(np.count_nonzero(waits <= slo_s))
    return Totals(
        cost_usd=cost,
        gpu_hours=gpu_h,
        node_hours=node_h,
        utilization=busy_s / held_s if held_s > 0 else 0.0,
        wait_s=wait_stats(waits),
        slo_attainment=within / requests if requests else 1.0,
        requests=requests,
        served=served,
        unserved=requests - served,
        scale_events=scale_events,
        node_launches=launches,
    )


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
    all_waits: list[F64] = []
    busy_total = held_total = 0.0
    for m, model in enumerate(plan.models):
        queue = run.queues[m]
        start = queue.start_times()
        served = ~np.isnan(start)
        waits = start[served] - model.arrival_s[served]
        busy = float(np.minimum(model.service_s[served], plan.end_s - start[served]).sum())
        held = cluster.held_slot_s[m]
        busy_total += busy
        held_total += held
        all_waits.append(waits)
        pool = model.pool
        share = cluster.gpu_share_s[m] / pool_share[pool] if pool_share[pool] > 0 else 0.0
        gpus = cluster.pools[pool].spec.gpus_per_node
        per_model[model.name] = _totals(
            waits,
            int(model.arrival_s.size),
            busy,
            held,
            pool_cost[pool] * share,
            pool_node_h[pool] * gpus * share,
            pool_node_h[pool] * share,
            plan.slo_wait_s,
            run.scale_events[m],
            cluster.launches_by_model[m],
        )
        arrived = np.searchsorted(model.arrival_s, run.sample_t, side="left")
        rate = np.diff(arrived, prepend=0).astype(np.float64) / plan.step_s
        series[model.name] = Series(
            t_s=run.sample_t.copy(),
            arrival_rps=rate,
            queue_depth=run.queue_depth[m],
            replicas_desired=run.desired[m],
            replicas_ready=run.ready[m],
            nodes=run.nodes[m],
        )
    waits_all = np.concatenate(all_waits) if all_waits else np.zeros(0)
    total = _totals(
        waits_all,
        sum(int(m.arrival_s.size) for m in plan.models),
        busy_total,
        held_total,
        sum(pool_cost),
        sum(h * p.spec.gpus_per_node for h, p in zip(pool_node_h, cluster.pools, strict=True)),
        sum(pool_node_h),
        plan.slo_wait_s,
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
    )
