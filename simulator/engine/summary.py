"""From a run's trajectory to the report's figures (``simulator.results``): vectorised numpy.

Served requests are a prefix of each model's arrivals (FCFS: start times never decrease), so
waits are one subtraction over a slice. Most requests of a well-provisioned run wait 0 s; the
digest keeps only the positive waits, which is all quantiles need, and merges across models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.engine.loop import Trajectory
from simulator.engine.setup import Plan
from simulator.results import PolicyResult, Series, Totals, WaitStats

F64 = npt.NDArray[np.float64]
QS = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class WaitDigest:
    """Waits (seconds, all >= 0) of served requests, compressed: ``count`` of them, the
    ``positive`` ones, their ``total`` and ``max``, and how many are within the SLO."""

    count: int
    positive: F64
    total: float
    max: float
    within_slo: int

    @classmethod
    def of(cls, waits: F64, slo_s: float) -> WaitDigest:
        if waits.size == 0:
            return cls(0, np.zeros(0), 0.0, 0.0, 0)
        return cls(
            count=int(waits.size),
            positive=waits[waits > 0.0],
            total=float(waits.sum()),
            max=float(waits.max()),
            within_slo=int(np.count_nonzero(waits <= slo_s)),
        )

    @classmethod
    def merge(cls, parts: list[WaitDigest]) -> WaitDigest:
        return cls(
            count=sum(p.count for p in parts),
            positive=np.concatenate([p.positive for p in parts]) if parts else np.zeros(0),
            total=sum(p.total for p in parts),
            max=max((p.max for p in parts), default=0.0),
            within_slo=sum(p.within_slo for p in parts),
        )

    def stats(self) -> WaitStats:
        if self.count == 0:
            return WaitStats(0.0, 0.0, 0.0, 0.0, 0.0)
        p50, p95, p99 = _quantiles(self.positive, self.count, QS)
        return WaitStats(self.total / self.count, p50, p95, p99, self.max)


def _quantiles(positive: F64, n: int, qs: tuple[float, ...]) -> list[float]:
    """Linear-interpolation quantiles of ``n`` values: ``n - positive.size`` zeros and
    ``positive``; equal to ``np.percentile(values, 100·q)``."""
    zeros = n - positive.size
    ranks = sorted({r for q in qs for r in _ranks(q, n) if r >= zeros})
    ranked = np.partition(positive, [r - zeros for r in ranks]) if ranks else positive

    def at(rank: int) -> float:
        return 0.0 if rank < zeros else float(ranked[rank - zeros])

    out = []
    for q in qs:
        h = (n - 1) * q
        lo, hi = _ranks(q, n)
        out.append(at(lo) + (h - lo) * (at(hi) - at(lo)))
    return out


def _ranks(q: float, n: int) -> tuple[int, int]:
    lo = int(np.floor((n - 1) * q))
    return lo, min(lo + 1, n - 1)


def quantiles(waits: F64, qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(waits, 100·q)`` for non-negative ``waits``."""
    return _quantiles(waits[waits > 0.0], int(waits.size), qs)


def wait_stats(waits: F64) -> WaitStats:
    """Mean, p50/p95/p99 (linear interpolation) and max of ``waits``, seconds; zeros if empty."""
    return WaitDigest.of(waits, 0.0).stats()


def _totals(
    waits: WaitDigest,
    requests: int,
    busy_s: float,
    held_s: float,
    cost: float,
    gpu_h: float,
    node_h: float,
    scale_events: int,
    launches: int,
) -> Totals:
    return Totals(
        cost_usd=cost,
        gpu_hours=gpu_h,
        node_hours=node_h,
        utilization=busy_s / held_s if held_s > 0 else 0.0,
        wait_s=waits.stats(),
        slo_attainment=waits.within_slo / requests if requests else 1.0,
        requests=requests,
        served=waits.count,
        unserved=requests - waits.count,
        scale_events=scale_events,
        node_launches=launches,
    )


def _busy_slot_s(start: F64, service: F64, end_s: float) -> float:
    """Slot-seconds of service within the run: each served request's service, cut at the end.
    ``start`` is non-decreasing (FCFS), so only a tail can run past the end."""
    total = float(service.sum())
    if start.size == 0:
        return total
    tail = int(np.searchsorted(start, end_s - float(service.max()), side="right"))
    over = start[tail:] + service[tail:] - end_s
    return total - float(over[over > 0].sum())


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
    digests: list[WaitDigest] = []
    busy_total = held_total = 0.0
    for m, model in enumerate(plan.models):
        queue = run.queues[m]
        served = queue.started()
        start = queue.start_times()[:served]
        digest = WaitDigest.of(start - model.arrival_s[:served], plan.slo_wait_s)
        digests.append(digest)
        busy = _busy_slot_s(start, model.service_s[:served], plan.end_s)
        held = cluster.held_slot_s[m]
        busy_total += busy
        held_total += held
        pool = model.pool
        share = cluster.gpu_share_s[m] / pool_share[pool] if pool_share[pool] > 0 else 0.0
        gpus = cluster.pools[pool].spec.gpus_per_node
        per_model[model.name] = _totals(
            digest,
            int(model.arrival_s.size),
            busy,
            held,
            pool_cost[pool] * share,
            pool_node_h[pool] * gpus * share,
            pool_node_h[pool] * share,
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
    total = _totals(
        WaitDigest.merge(digests),
        sum(int(m.arrival_s.size) for m in plan.models),
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
    )
