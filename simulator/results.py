"""What one simulation produces: the data contract between the engine and the report.

Plain frozen dataclasses of numbers (units in every name or docstring); numpy arrays only in the
time series. The engine fills them; the report (json/md/html) only reads them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

TIME_BASED_KINDS = ("schedule", "trailing-schedule", "hindsight-schedule")
"""Policy kinds that scale on the clock: every saving in the report is measured against these."""


@dataclass(frozen=True, slots=True)
class WaitStats:
    """Queue wait of served requests, seconds (arrival to start of service)."""

    mean: float
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class Totals:
    """Cost, capacity and service figures for one model, or summed over models.

    cost_usd:       node cost, USD (per model: its share of node cost by GPUs held).
    gpu_hours:      GPU-hours held by replicas (ready or warming) plus idle GPUs on the model's nodes
                    attributed by share; total = GPUs on running nodes × hours.
    node_hours:     node-hours (per model: share).
    utilization:    busy replica-slot seconds / GPU-held replica-slot seconds, 0..1.
    wait_s:         queue wait statistics of served requests.
    slo_attainment: share of all requests (unserved count as misses) waiting <= scenario SLO, 0..1.
    requests:       requests that arrived.
    served:         requests whose service started before the end of the run.
    unserved:       requests = served + unserved, always.
    scale_events:   changes of the target replica count (HPA scale actions).
    node_launches:  GPU nodes launched.
    """

    cost_usd: float
    gpu_hours: float
    node_hours: float
    utilization: float
    wait_s: WaitStats
    slo_attainment: float
    requests: int
    served: int
    unserved: int
    scale_events: int
    node_launches: int


@dataclass(frozen=True, slots=True)
class RouteWaits:
    """The waits of one route's requests of one model: ``celery`` (tasks through the broker) or
    ``online`` (through the gateway straight to vLLM, waiting inside it for a slot).

    requests:       requests of this route that arrived.
    served:         those whose service started before the end of the run.
    wait_s:         queue wait of the served ones, seconds.
    slo_attainment: share of the route's requests (unserved count as misses) waiting <= the
                    scenario's SLO, 0..1.
    """

    requests: int
    served: int
    wait_s: WaitStats
    slo_attainment: float


@dataclass(frozen=True, slots=True)
class Series:
    """Time series for one model sampled on the control grid (every ``step_s`` seconds).

    t_s:              sample times, seconds from the trace start.
    arrival_rps:      arrivals per second over the preceding step.
    queue_depth:      requests waiting (not yet in service) at the sample time.
    replicas_desired: the HPA's target replica count.
    replicas_ready:   replicas serving.
    nodes:            GPU nodes running (launched and not yet removed) in the model's pool.
    """

    t_s: FloatArray
    arrival_rps: FloatArray
    queue_depth: FloatArray
    replicas_desired: FloatArray
    replicas_ready: FloatArray
    nodes: FloatArray


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One policy's run over the whole trace.

    name/kind:        as in the scenario's policy list (kind: depthscale, keda-native, schedule,
                      trailing-schedule, hindsight-schedule, static-peak, static).
    total:            summed over models.
    per_model:        model name -> its figures.
    series:           model name -> its time series.
    reasons:          decision reason value -> count (the policy's own reasons).
    routes:           model served online -> route (``celery``, ``online``) -> its waits.

    Savings against the time-based baselines are not stored here: ``savings_table`` computes
    them from the costs.
    """

    name: str
    kind: str
    total: Totals
    per_model: dict[str, Totals]
    series: dict[str, Series]
    reasons: dict[str, int] = field(default_factory=dict)
    routes: dict[str, dict[str, RouteWaits]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything the report shows.

    trace:        short description of the input (file, format, requests, models, span).
    duration_s:   simulated seconds.
    seed:         the seed used (same seed, same result).
    slo_wait_s:   the queue-wait SLO the attainment figures use, seconds.
    step_s:       sampling step of the series, seconds.
    policies:     one result per policy, in scenario order.
    assumptions:  human-readable lines naming defaults the run used (GPU type, prices, delays).
    slo_attainment: a policy meets the SLO when every model's ``slo_attainment`` is at least
                  this, 0..1.
    ideal_cost_usd: model name -> its fluid ideal, USD: its requests' total service time over a
                  replica's slots at the target utilization, at the price of a replica-hour
                  (what perfectly elastic capacity would cost); empty when not computed.
    warnings:     sentences on what limits the comparison (a trace too short, a baseline
                  without history), shown near the top of the report.
    """

    trace: str
    duration_s: float
    seed: int
    slo_wait_s: float
    step_s: float
    policies: list[PolicyResult]
    assumptions: list[str] = field(default_factory=list)
    slo_attainment: float = 0.99
    ideal_cost_usd: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ---- savings against the time-based baselines: computed here and nowhere else -----------------


def baselines(policies: Sequence[PolicyResult]) -> list[str]:
    """Names of the time-based policies of the run (kind in ``TIME_BASED_KINDS``), in run order."""
    return [p.name for p in policies if p.kind in TIME_BASED_KINDS]


def savings_pct(cost_usd: float, baseline_usd: float) -> float | None:
    """100 × (baseline − cost) / baseline, percent: positive when cheaper than the baseline; None
    when the baseline cost nothing (no percentage of zero) or the cost is unknown (NaN)."""
    if not baseline_usd > 0 or not math.isfinite(cost_usd):
        return None
    return 100.0 * (baseline_usd - cost_usd) / baseline_usd


def savings_table(
    policies: Sequence[PolicyResult], model: str | None = None
) -> dict[str, dict[str, float | None]]:
    """policy name -> baseline name -> ``savings_pct``, on the total or on one model's figures
    (NaN cost, hence None, for a policy without that model)."""

    def cost(p: PolicyResult) -> float:
        if model is None:
            return p.total.cost_usd
        totals = p.per_model.get(model)
        return math.nan if totals is None else totals.cost_usd

    bases = [p for p in policies if p.kind in TIME_BASED_KINDS]
    return {p.name: {b.name: savings_pct(cost(p), cost(b)) for b in bases} for p in policies}
