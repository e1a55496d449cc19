"""The policies a simulation compares, built from the scenario's ``policies`` list and the trace.

Each entry becomes ``(name, kind, {model: policy})``: one policy object per scenario model,
because models differ (thresholds, replica throughput, the trace's own peaks). Every object has
the ``policies.types.Policy`` shape, so the engine drives all of them the same way.

Kinds and their ``params`` (all optional unless said otherwise):

``depthscale``         queue-depth scaling. Any key of a model's ``policy`` block
                       (``scaleUpPending``, ``stabilizationWindowSeconds``...) overrides that
                       model's setting for this entry.
``keda-native``        what KEDA does alone: ``ceil(pending / scaleUpPending)`` replicas,
                       activation on any pending task (``QueueDepthConfig(mode=pending)``).
                       ``scaleUpPending`` defaults to the model's (50: the seed's threshold).
``schedule``           business hours: ``peak`` replicas from ``start_hour`` (8) to ``end_hour``
                       (20) on ``weekdays`` ([0..4], 0 = Monday) in ``timezone`` ("UTC"),
                       ``off_peak`` otherwise; ``peak``/``off_peak`` are an integer or a mapping
                       model -> integer, and default to the replicas the trace's busiest 5-minute
                       window inside (outside) those hours needs. Or ``replicas``: an explicit
                       list of 24 (hour of day) or 168 (hour of week) counts, or a mapping
                       model -> such a list.
``hindsight-schedule`` per hour of day (``weekly: true``: of week) the replicas that hour's
                       busiest ``window_s`` (300) window on this trace needs, in ``timezone``.
                       The oracle: it has seen the whole trace.
``trailing-schedule``  per local day and hour, the replicas the busiest ``window_s`` window of
                       the same hour in the previous ``weeks`` (1) week(s) of this trace needs;
                       before a week of history, the same hour of the previous days; on the
                       first day, with no history, the opening traffic's replicas (below). It
                       never sees the day it is scored on (``simulator.schedule_sizing.trailing_schedule``).
``static-peak``        the replicas the trace's busiest ``window_s`` window needs, all the time.
``static``             ``replicas`` (required): an integer, for every model.

Sizing from the trace uses each model's replica throughput on this trace (``max_concurrency``
divided by the mean service time of its requests) at ``target_utilization`` (the scenario's,
0.8 by default: the same 80% ceiling the warm node buffer keeps a pool at), clamped to the
model's ``minReplicas``..``maxReplicas``. Wall-clock hours come from the trace's ``epoch_s``.

The opening traffic is the trace's first ``OPENING_S`` seconds: ``opening_replicas`` sizes it
the same way. Reactive policies start a warm run with that many replicas, and the trailing
schedule holds it on its first day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from policies.config import ConfigError, Mode, QueueDepthConfig
from policies.queue_depth import QueueDepthPolicy
from policies.schedule import (
    WEEKDAYS,
    ScheduleError,
    SchedulePolicy,
    business_hours,
    replicas_for_rate,
)
from policies.static import StaticError, StaticPolicy
from policies.types import Policy
from simulator.scenario import ModelSpec, PolicySpec, Scenario
from simulator.schedule_sizing import (
    Arrivals,
    PerSecond,
    hindsight_schedule,
    peak_replicas,
    trailing_schedule,
    window_peaks,
)
from simulator.traces.bins import ArrivalBins
from simulator.traces.trace import Trace

DEFAULT_WINDOW_S = 300.0
OPENING_S = 600.0
"""Seconds of traffic at the trace start that the warm start of reactive policies (and the
trailing schedule's first day) is sized for: long enough to average out single bursts, short
enough to be the traffic the fleet was serving when the trace began."""

ModelPolicies = dict[str, Policy[Any]]
PolicyEntry = tuple[str, str, ModelPolicies]


class PolicySetError(ValueError):
    """A policy entry's params are invalid; the message starts with the key path, e.g.
    ``policies.business-hours.params.peak: ...``."""


def select(scenario: Scenario, names: Sequence[str] | None) -> tuple[PolicySpec, ...]:
    """The scenario's policies, or only those named (in the order named)."""
    if not names:
        return scenario.policies
    by_name = {p.name: p for p in scenario.policies}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(by_name)
        raise PolicySetError(f"policies: no policy named {', '.join(unknown)} (known: {known})")
    return tuple(by_name[n] for n in names)


def build_policies(
    scenario: Scenario, trace: Trace | ArrivalBins, names: Sequence[str] | None = None
) -> list[PolicyEntry]:
    """``(name, kind, {model: policy})`` for each of the scenario's policies (or those ``names``),
    in scenario order; ``PolicySetError`` names the entry and param at fault."""
    demand = _Demand(scenario, trace)
    return [
        (spec.name, spec.kind, _build(spec, scenario, demand)) for spec in select(scenario, names)
    ]


class _Demand:
    """Per scenario model: its arrivals (times from the trace start, or per-second counts for
    an aggregated trace) and replica throughput on this trace."""

    def __init__(self, scenario: Scenario, trace: Trace | ArrivalBins) -> None:
        self.epoch_s = trace.epoch_s
        self.span_s = trace.duration_s
        self.arrivals: dict[str, Arrivals] = {}
        self.replica_rps: dict[str, float] = {}
        index = scenario.trace_model_index(trace.models) if trace.models else np.zeros(0, np.int32)
        of_request = None
        if isinstance(trace, Trace):  # each request's scenario model, once for all models
            of_request = index[trace.model] if len(trace) else np.zeros(0, np.int32)
        for i, (name, model) in enumerate(scenario.models.items()):
            if isinstance(trace, ArrivalBins):
                self.arrivals[name], mean_s = _binned(trace, index, i, model)
            else:
                assert of_request is not None
                mask = of_request == i
                self.arrivals[name] = trace.arrival_s[mask]
                if trace.service_s is not None:
                    service = trace.service_s[mask]
                else:
                    service = model.service.service_s(
                        trace.input_tokens[mask], trace.output_tokens[mask], model.max_concurrency
                    )
                mean_s = float(service.mean()) if service.size else 0.0
            self.replica_rps[name] = (
                model.max_concurrency / mean_s if mean_s > 0 else model.service.throughput_rps
            )


def _binned(
    bins: ArrivalBins, index: npt.NDArray[np.int32], i: int, model: ModelSpec
) -> tuple[PerSecond, float]:
    """Model ``i``'s per-second arrivals and its requests' mean service time, seconds."""
    mine = np.flatnonzero(index == i)
    counts = bins.counts[mine].sum(axis=0) if mine.size else np.zeros(bins.n_bins)
    total = weight = 0.0
    for j in mine:
        mix = bins.mixes[int(j)]
        service = model.mix_service_s(mix)
        per_row = bins.period_requests(int(j))
        total += float(np.dot(per_row, mix.per_period(service.mean(axis=1))))
        weight += float(per_row.sum())
    return PerSecond(counts), total / weight if weight > 0 else 0.0


def _build(spec: PolicySpec, scenario: Scenario, demand: _Demand) -> ModelPolicies:
    where = f"policies.{spec.name}.params"
    params = dict(spec.params)
    try:
        if spec.kind == "depthscale":
            return _depthscale(spec, scenario, params, where)
        if spec.kind == "keda-native":
            return _keda_native(spec, scenario, params, where)
        if spec.kind == "static":
            counts = _per_model(params.pop("replicas", None), scenario, f"{where}.replicas", int)
            _no_more(params, where)
            return {m: StaticPolicy(n, label=spec.name) for m, n in counts.items()}
        util = _float(
            params.pop("target_utilization", scenario.target_utilization),
            f"{where}.target_utilization",
        )
        window_s = _float(params.pop("window_s", DEFAULT_WINDOW_S), f"{where}.window_s")
        if spec.kind == "static-peak":
            _no_more(params, where)
            out: ModelPolicies = {}
            for m, model in scenario.models.items():
                need = peak_replicas(
                    demand.arrivals[m],
                    replica_rps=demand.replica_rps[m],
                    target_utilization=util,
                    start_epoch_s=demand.epoch_s,
                    window_s=window_s,
                )
                out[m] = StaticPolicy(_clamp(model, need), label=spec.name)
            return out
        tz = _zone(params.pop("timezone", "UTC"), f"{where}.timezone")
        if spec.kind == "trailing-schedule":
            weeks = _checked(int, params.pop("weeks", 1), f"{where}.weeks")
            _no_more(params, where)
            out = {}
            for m, model in scenario.models.items():
                config = model.policy.to_policy_config()
                rps = demand.replica_rps[m]
                opening = opening_replicas(demand.arrivals[m], rps, util, demand.span_s)
                out[m] = trailing_schedule(
                    demand.arrivals[m],
                    replica_rps=rps,
                    target_utilization=util,
                    span_s=demand.span_s,
                    first_day_replicas=_clamp(model, opening),
                    start_epoch_s=demand.epoch_s,
                    tz=tz,
                    window_s=window_s,
                    weeks=weeks,
                    min_replicas=config.min_replicas,
                    max_replicas=config.max_replicas,
                    label=spec.name,
                )
            return out
        if spec.kind == "hindsight-schedule":
            weekly = bool(params.pop("weekly", False))
            _no_more(params, where)
            out = {}
            for m, model in scenario.models.items():
                built = hindsight_schedule(
                    demand.arrivals[m],
                    replica_rps=demand.replica_rps[m],
                    target_utilization=util,
                    start_epoch_s=demand.epoch_s,
                    tz=tz,
                    window_s=window_s,
                    weekly=weekly,
                )
                out[m] = SchedulePolicy(
                    tuple(_clamp(model, n) for n in built.replicas),
                    start_epoch_s=demand.epoch_s,
                    tz=tz,
                    label=spec.name,
                )
            return out
        return _schedule(spec, scenario, demand, params, where, tz, util, window_s)
    except (ScheduleError, StaticError, ConfigError) as exc:
        raise PolicySetError(f"{where}: {exc}") from None


def _depthscale(
    spec: PolicySpec, scenario: Scenario, params: dict[str, Any], where: str
) -> ModelPolicies:
    out: ModelPolicies = {}
    for m, model in scenario.models.items():
        merged = {**model.policy.model_dump(by_alias=True, exclude_none=True), **params}
        try:
            thresholds = type(model.policy).model_validate(merged)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            key = ".".join(str(part) for part in err["loc"])
            problem = err["msg"].removeprefix("Value error, ")
            raise PolicySetError(f"{where}{'.' + key if key else ''}: {problem}") from None
        out[m] = QueueDepthPolicy(thresholds.to_policy_config(), label=spec.name)
    return out


def _keda_native(
    spec: PolicySpec, scenario: Scenario, params: dict[str, Any], where: str
) -> ModelPolicies:
    up = params.pop("scaleUpPending", None)
    _no_more(params, where)
    out: ModelPolicies = {}
    for m, model in scenario.models.items():
        base = model.policy.to_policy_config()
        threshold = base.scale_up_pending if up is None else _float(up, f"{where}.scaleUpPending")
        config = QueueDepthConfig(
            scale_up_pending=threshold,
            scale_down_pending=min(base.scale_down_pending, threshold / 2),
            min_replicas=base.min_replicas,
            max_replicas=base.max_replicas,
            mode=Mode.PENDING,
        )
        out[m] = QueueDepthPolicy(config, label=spec.name)
    return out


def _schedule(
    spec: PolicySpec,
    scenario: Scenario,
    demand: _Demand,
    params: dict[str, Any],
    where: str,
    tz: tzinfo,
    util: float,
    window_s: float,
) -> ModelPolicies:
    explicit = params.pop("replicas", None)
    if explicit is not None:
        _no_more(params, where)
        lists = _per_model(explicit, scenario, f"{where}.replicas", _int_list)
        return {
            m: SchedulePolicy(tuple(v), start_epoch_s=demand.epoch_s, tz=tz, label=spec.name)
            for m, v in lists.items()
        }
    start_hour = _checked(int, params.pop("start_hour", 8), f"{where}.start_hour")
    end_hour = _checked(int, params.pop("end_hour", 20), f"{where}.end_hour")
    weekdays = _checked(_int_list, params.pop("weekdays", list(WEEKDAYS)), f"{where}.weekdays")
    peak = params.pop("peak", None)
    off_peak = params.pop("off_peak", None)
    _no_more(params, where)
    peaks = None if peak is None else _per_model(peak, scenario, f"{where}.peak", int)
    offs = None if off_peak is None else _per_model(off_peak, scenario, f"{where}.off_peak", int)
    out: ModelPolicies = {}
    for m, model in scenario.models.items():
        hourly = window_peaks(
            demand.arrivals[m],
            start_epoch_s=demand.epoch_s,
            tz=tz,
            window_s=window_s,
            weekly=True,
        )
        inside = [
            rate
            for slot, rate in enumerate(hourly)
            if slot // 24 in weekdays and start_hour <= slot % 24 < end_hour
        ]
        outside = [
            rate
            for slot, rate in enumerate(hourly)
            if not (slot // 24 in weekdays and start_hour <= slot % 24 < end_hour)
        ]
        rps = demand.replica_rps[m]
        n_peak = (
            peaks[m]
            if peaks is not None
            else _clamp(model, replicas_for_rate(max(inside, default=0.0), rps, util))
        )
        n_off = (
            offs[m]
            if offs is not None
            else _clamp(model, replicas_for_rate(max(outside, default=0.0), rps, util))
        )
        out[m] = business_hours(
            n_peak,
            n_off,
            start_hour=start_hour,
            end_hour=end_hour,
            weekdays=weekdays,
            start_epoch_s=demand.epoch_s,
            tz=tz,
            label=spec.name,
        )
    return out


def opening_window_s(span_s: float) -> float:
    """The opening traffic's window: the first ``OPENING_S`` seconds, or the whole span of a
    shorter trace."""
    return min(OPENING_S, span_s) if span_s > 0 else OPENING_S


def opening_replicas(
    arrivals_s: Arrivals, replica_rps: float, target_utilization: float, span_s: float
) -> int:
    """Replicas the opening traffic needs: its arrival rate (requests/second) at
    ``target_utilization`` of ``replica_rps`` per replica."""
    window = opening_window_s(span_s)
    if isinstance(arrivals_s, PerSecond):
        opening = arrivals_s.before(window)
    else:
        opening = float(np.count_nonzero(np.asarray(arrivals_s) < window))
    return replicas_for_rate(opening / window, replica_rps, target_utilization)


def _clamp(model: ModelSpec, replicas: int) -> int:
    config = model.policy.to_policy_config()
    return max(config.min_replicas, min(config.max_replicas, replicas))


def _no_more(params: Mapping[str, Any], where: str) -> None:
    if params:
        raise PolicySetError(f"{where}.{next(iter(params))}: unknown param for this kind")


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicySetError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _int_list(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"expected a list of integers, got {value!r}")
    return list(value)


def _per_model(value: Any, scenario: Scenario, where: str, convert: Any) -> dict[str, Any]:
    """``value`` for every model: one value for all, or a mapping model -> value covering every
    model of the scenario."""
    if value is None:
        raise PolicySetError(f"{where}: is required")
    if isinstance(value, Mapping):
        missing = [m for m in scenario.models if m not in value]
        extra = [m for m in value if m not in scenario.models]
        if missing or extra:
            raise PolicySetError(
                f"{where}: the mapping must name every model exactly "
                f"(missing: {missing or 'none'}, unknown: {extra or 'none'})"
            )
        return {m: _checked(convert, value[m], f"{where}.{m}") for m in scenario.models}
    return {m: _checked(convert, value, where) for m in scenario.models}


def _checked(convert: Any, value: Any, where: str) -> Any:
    """``convert(value)``; integers must be integers (not 2.5, not true)."""
    if convert is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PolicySetError(f"{where}: expected an integer, got {value!r}")
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        raise PolicySetError(f"{where}: {exc}") from None


def _zone(name: Any, where: str) -> tzinfo:
    if name in ("UTC", "utc", "Z"):
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicySetError(f"{where}: unknown time zone {name!r}") from None
