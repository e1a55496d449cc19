"""The capacity-target rule (the ``depthscale`` preset): size replicas to the work in the
system, ahead of a GPU warm-up, and let them go as soon as a window of evidence allows.

Like the Kubernetes HPA, the decision is a chain of named stages, each returning its value and
a reason, so a log line says which stage set the number and an ablation is a configuration:

1. ``capacity``:  replicas serving plus those on their way (observed, or the policy's own view).
2. ``proposal``:  the work in the system (in flight + pending), averaged over the growth window
   (or its last quarter when that is higher: a step up counts at once), at
   ``replica_concurrency`` tasks per full replica, plus ``headroom`` counted in whole replicas
   (Knative sizes on concurrency the same way, with a target utilisation).
3. ``floor``:     never below what the work in flight needs now, nor below the seasonal floor
   (``policies.season``): the load the same time of earlier hours and days carried, one
   warm-up ahead.
4. ``stabilise``: scale-up at once; scale-down only to the highest proposal of the last
   ``stabilization_window_s`` (the HPA's scale-down stabilisation), so one step goes straight
   to what the window's busiest moment needed rather than one replica per window.
5. ``limit``:     a reactive scale-up asks for at most ``scale_up_factor`` × the replicas
   serving (or 4 more) until the capacity on its way is ready; floors are not limited.
6. ``clamp``:     buffer, ``min_replicas`` and ``max_replicas``; zero only after a whole window
   with nothing pending or in flight.

Pure: ``decide_target`` reads nothing but its arguments.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

from policies.config import QueueDepthConfig
from policies.season import expected_load, remember
from policies.state import QueueDepthState
from policies.types import Decision, Observation, Reason

SCALE_UP_MIN_STEP = 4
"""Replicas a limited scale-up may always add (the HPA's default scale-up policy allows 4 Pods)."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage's outcome: replicas (before the buffer) and why."""

    replicas: int
    reason: Reason
    detail: str


def decide_target(
    config: QueueDepthConfig,
    obs: Observation,
    state: QueueDepthState,
    samples: tuple[tuple[float, int, int], ...],
    capacity: int,
    warming: int,
) -> tuple[Decision, QueueDepthState]:
    """The capacity-target decision; ``samples`` (this observation last), ``capacity`` and
    ``warming`` come from the shared capacity stage of ``queue_depth``."""
    at = obs.at_s
    first_seen = at if state.first_seen_s is None else state.first_seen_s
    in_flight = obs.in_flight or 0
    idle_now = obs.pending == 0 and in_flight == 0
    idle_since = (at if state.idle_since_s is None else state.idle_since_s) if idle_now else None
    buffer = config.buffer_replicas if capacity > 0 else 0
    base = max(capacity - buffer, 0)

    # The season remembers the work in service, not the queue: a backlog that built up while
    # capacity warmed is not demand to keep capacity for on the next day.
    season, slot = remember(
        config,
        state.season,
        state.slot,
        at,
        in_flight if obs.in_flight is not None else obs.pending,
    )
    proposal = _proposal(config, obs, samples)
    floor, lowest, explain = _floor(config, obs, proposal, season)
    history = _window(config, state, at, floor.replicas, base if state.first_seen_s is None else 0)
    stable = _stabilise(config, floor, history, base)
    # The limit holds back the reactive proposal, never a floor: work in flight runs on
    # replicas that exist, and the seasonal floor is a forecast made a warm-up ahead.
    limited = _limit(config, stable, base, warming)
    if lowest > limited.replicas:
        floor_stage = explain()
        limited = Stage(lowest, floor_stage.reason, f"{floor_stage.detail}: scale up")
    desired, reason, detail = _clamp(config, limited, base, obs, idle_since, at)

    if desired > state.desired:
        last_increase_s: float | None = at
        warming_from = state.desired if warming == 0 else state.warming_from
    else:
        last_increase_s, warming_from = state.last_increase_s, min(state.warming_from, desired)
    new_state = QueueDepthState(
        desired=desired,
        last_increase_s=last_increase_s,
        warming_from=warming_from,
        low_since_s=None,
        last_down_s=at if desired < state.desired else state.last_down_s,
        idle_since_s=idle_since,
        first_seen_s=first_seen,
        last_at_s=at,
        samples=samples,
        proposals=history,
        season=season,
        slot=slot,
    )
    return Decision(desired, reason, detail, float(desired)), new_state


def _proposal(
    config: QueueDepthConfig, obs: Observation, samples: tuple[tuple[float, int, int], ...]
) -> Stage:
    conc = config.replica_concurrency or 1
    in_flight = obs.in_flight or 0
    load = obs.pending + in_flight
    last = samples[-1][0]
    span = last - samples[0][0]
    quarter = last - span / 4
    total = recent_total = 0.0
    recent = 0
    for t, p, f in samples:
        total += p + f
        if t >= quarter:
            recent_total += p + f
            recent += 1
    mean = total / len(samples)
    level = mean
    if config.react_to_recent and recent:
        # A step up shows in the last quarter of the window before it moves the window's mean.
        level = max(mean, recent_total / recent)
    full = level / conc
    # Headroom in whole replicas: a fraction of a replica rounds away, so a small fleet runs on
    # the slack that whole replicas already give, and a large one keeps ``headroom`` spare.
    need = max(math.ceil(full - 1e-9), round(full * (1.0 + config.headroom)))
    detail = (
        f"{load} tasks in the system ({in_flight} in flight, {obs.pending} pending), "
        f"{level:.0f} over the last {span:.0f}s: {full:.2f} replicas full at {conc} each"
    )
    if config.headroom > 0:
        detail += f", {need} with {config.headroom:.0%} headroom"
    return Stage(need, Reason.SCALE_UP, detail)


def _floor(
    config: QueueDepthConfig, obs: Observation, proposal: Stage, season: tuple[int, ...]
) -> tuple[Stage, int, Callable[[], Stage]]:
    """The proposal raised to the floors; the highest floor (replicas) on its own, and how to
    explain it: the work in flight needs its replicas now; the seasonal floor keeps capacity
    for the load the same time of earlier periods carried, one warm-up ahead. The explanation
    is built only when a decision uses it (most decisions are holds)."""
    conc = config.replica_concurrency or 1
    in_flight = obs.in_flight or 0
    busy = math.ceil(in_flight / conc) if in_flight else 0
    expected = seasonal = 0
    if config.seasonal_fraction > 0:
        expected = expected_load(config, season, obs.at_s)
        seasonal = math.ceil(config.seasonal_fraction * expected / conc - 1e-9)

    def explain() -> Stage:
        if seasonal > busy:
            return Stage(
                seasonal,
                Reason.SEASONAL_FLOOR,
                f"{proposal.detail}; the same time of earlier periods carried {expected} "
                f"tasks: keep {config.seasonal_fraction:g} of it, {seasonal} replicas",
            )
        return Stage(busy, Reason.HOLD_IN_FLIGHT, f"{in_flight} in flight need {busy}")

    highest = max(busy, seasonal)
    if highest > proposal.replicas:
        return explain(), highest, explain
    return proposal, highest, explain


def _window(
    config: QueueDepthConfig, state: QueueDepthState, at: float, replicas: int, seen: int
) -> tuple[tuple[float, int], ...]:
    """Proposals within the stabilization window, this one last. A state with no history (a
    new or restarted scaler) starts the window with the capacity it sees, so it holds that for
    a whole window before trusting its own proposals."""
    horizon = at - config.stabilization_window_s
    proposals = state.proposals
    first = bisect_right(proposals, horizon, key=itemgetter(0))
    kept = proposals[first:]
    if kept and kept[-1][0] >= at:  # a clock that went back: keep only the past
        kept = tuple(p for p in kept if p[0] < at)
    if state.first_seen_s is None and seen > 0:
        kept = ((at, seen),)
    return (*kept, (at, replicas))


def _stabilise(
    config: QueueDepthConfig,
    proposed: Stage,
    history: tuple[tuple[float, int], ...],
    base: int,
) -> Stage:
    if proposed.replicas >= base:
        if proposed.replicas == base:
            return Stage(base, Reason.HOLD, f"{proposed.detail}: hold {base}")
        return Stage(proposed.replicas, proposed.reason, f"{proposed.detail}: scale up")
    highest = max(history, key=itemgetter(1))[1]
    if highest >= base:
        return Stage(
            base,
            Reason.HOLD_STABILIZING,
            f"{proposed.detail}; the last {config.stabilization_window_s:g}s needed {highest}: "
            f"hold {base}",
        )
    return Stage(
        highest,
        Reason.SCALE_DOWN,
        f"{proposed.detail}; at most {highest} needed over the last "
        f"{config.stabilization_window_s:g}s: scale down to {highest}",
    )


def scale_up_limit(factor: float, base: int, warming: int) -> tuple[int, str]:
    """The most replicas one scale-up may ask for while ``warming`` of ``base`` are on their
    way: ``factor`` × those serving or 4 more (never fewer than ``base``), and the sentence
    saying so. A backlog that the replicas already serving drain before new GPUs are up needs
    no new GPUs; one that keeps growing after them gets the next step a warm-up later."""
    serving = max(base - warming, 0)
    limit = max(math.ceil(factor * serving), serving + SCALE_UP_MIN_STEP, base)
    return limit, (
        f"scale-up capped at {limit} this step: at most {factor:g}× the {serving} serving "
        f"replicas, or {SCALE_UP_MIN_STEP} more, until those requested are serving"
    )


def _limit(config: QueueDepthConfig, stage: Stage, base: int, warming: int) -> Stage:
    if config.scale_up_factor is None or stage.replicas <= base:
        return stage
    limit, why = scale_up_limit(config.scale_up_factor, base, warming)
    if stage.replicas <= limit:
        return stage
    return Stage(limit, stage.reason, f"{stage.detail}; {why}")


def _clamp(
    config: QueueDepthConfig,
    stage: Stage,
    base: int,
    obs: Observation,
    idle_since: float | None,
    at: float,
) -> tuple[int, Reason, str]:
    replicas, reason, detail = stage.replicas, stage.reason, stage.detail
    busy = obs.pending > 0 or (obs.in_flight or 0) > 0
    if replicas == 0 and base == 0:
        if busy:
            replicas, reason = 1, Reason.ACTIVATE
            detail = f"{obs.pending} pending at zero replicas: activate with 1"
        else:
            reason, detail = Reason.IDLE, "nothing pending at zero replicas"
    elif replicas == 0:
        window = config.stabilization_window_s
        if idle_since is None or at - idle_since < window:
            replicas, reason = 1, Reason.HOLD_STABILIZING
            idle_for = 0.0 if idle_since is None else at - idle_since
            detail = (
                f"{detail}; the last replica goes only after {window:g}s with nothing pending "
                f"or in flight (idle for {idle_for:.0f}s): hold 1"
            )
        else:
            reason = Reason.SCALE_TO_ZERO
    elif base == 0 and busy:
        reason = Reason.ACTIVATE
        detail = f"{detail}: activate with {replicas}"
    desired = replicas + (config.buffer_replicas if replicas > 0 else 0)
    if desired > config.max_replicas:
        detail += f"; capped at maxReplicas {config.max_replicas}"
        if reason in (Reason.SCALE_UP, Reason.SCALE_UP_IN_FLIGHT, Reason.ACTIVATE):
            reason = Reason.CAPPED_MAX
    clamped = max(config.min_replicas, min(config.max_replicas, desired))
    if clamped == config.min_replicas and config.min_replicas > 0 and reason is Reason.IDLE:
        reason, detail = Reason.HOLD_MIN, f"nothing pending; holding minReplicas {clamped}"
    return clamped, reason, detail
