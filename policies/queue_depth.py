"""The queue-depth policy: scale on Celery tasks waiting per replica, count GPUs on their way.

Rules (docs/policy.md has them with worked examples):

* Thresholds are per replica, counting replicas ready *and* warming ("capacity"). With B replicas
  of capacity (excluding ``buffer_replicas``) and P pending:
  - P / B > scale_up_pending: scale up at once to ceil(P' / scale_up_pending) replicas, where P'
    is the larger of P and the backlog projected ``lookahead_s`` ahead from the recent growth rate.
  - P' / B > scale_up_pending only through the projection: same, reason ``scale-up-lookahead``.
  - P / B < scale_down_pending (or P = 0) for a whole ``stabilization_window_s`` (and the policy has watched a
    whole window since it started): remove ``scale_down_step`` replicas, never below
    ``min_replicas`` nor below ceil(in_flight / replica_concurrency); each further step needs a
    fresh window. The last replica goes only after a whole window with nothing pending and
    nothing in flight.
  - otherwise hold.
* At zero replicas any pending (or in-flight) task activates the model at once.
* Replicas requested less than ``warmup_s`` ago count as capacity, so a backlog that keeps
  growing while GPUs warm up does not cascade into more and more replicas (aibrix#2670).

Pure: ``decide`` reads nothing but its arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from policies.config import DEPTHSCALE, Mode, QueueDepthConfig, Rule
from policies.state import QueueDepthState
from policies.target import decide_target, scale_up_limit
from policies.types import Decision, Observation, Reason


@dataclass(frozen=True, slots=True)
class QueueDepthPolicy:
    """depthscale's queue-depth policy (``DEPTHSCALE`` preset by default; ``SEED`` is the seed's
    rule as first stated)."""

    config: QueueDepthConfig = DEPTHSCALE
    label: str = "depthscale"

    @property
    def name(self) -> str:
        return self.label

    @property
    def metric_target(self) -> float:
        """Replicas mode: the metric is desired replicas, target 1 per replica.
        Pending mode: the metric is pending tasks, target scale_up_pending per replica."""
        if self.config.mode is Mode.PENDING:
            return self.config.scale_up_pending
        return 1.0

    def initial_state(self) -> QueueDepthState:
        return QueueDepthState()

    def warm_state(self, replicas: int) -> QueueDepthState:
        """Its last decision was ``replicas`` and none of them is still warming. The low run and
        the watched window start at the first observation, as after any restart."""
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        return QueueDepthState(desired=replicas, warming_from=replicas)

    def decide(
        self, observation: Observation, state: QueueDepthState
    ) -> tuple[Decision, QueueDepthState]:
        if self.config.mode is Mode.PENDING:
            return _decide_pending(self.config, observation, state)
        # The target rule sizes on the work in the system: it needs in-flight counts and a
        # per-replica concurrency. Without them an empty queue may hide busy workers, and the
        # threshold rule, whose every step down is a probe a window long, decides.
        config = self.config
        if (
            config.rule is Rule.TARGET
            and config.replica_concurrency is not None
            and observation.in_flight is not None
        ):
            samples = _remember(self.config, observation, state)
            capacity, warming = _capacity(self.config, observation, state)
            return decide_target(self.config, observation, state, samples, capacity, warming)
        return _decide_replicas(self.config, observation, state)


Sample = tuple[float, int, int]  # (at_s, pending, in_flight or 0 when unknown)


def growth_rate(
    samples: tuple[Sample, ...], min_span_s: float, *, with_in_flight: bool = False
) -> float:
    """Growth in tasks/second of pending alone or of the whole load (pending + in flight), as a
    trend must show it: in both halves of the samples.

    0 unless there are at least three samples spanning ``min_span_s`` seconds and both halves
    move the same way; then the smaller of the two slopes. One jump (a burst landing, the first
    sight of a queue) rises in one half only, and projecting it over a GPU warm-up would size
    for a backlog that never comes."""
    if len(samples) < 3:
        return 0.0
    t0, t1 = samples[0][0], samples[-1][0]
    if t1 - t0 < min_span_s or t1 - t0 <= 0:
        return 0.0
    half = (t0 + t1) / 2
    mid = min(range(1, len(samples) - 1), key=lambda i: abs(samples[i][0] - half))

    def load(i: int) -> int:
        _, pending, in_flight = samples[i]
        return pending + in_flight if with_in_flight else pending

    first = (load(mid) - load(0)) / (samples[mid][0] - t0)
    second = (load(len(samples) - 1) - load(mid)) / (t1 - samples[mid][0])
    if first > 0 and second > 0:
        return min(first, second)
    if first < 0 and second < 0:
        return max(first, second)
    return 0.0


def _remember(
    config: QueueDepthConfig, obs: Observation, state: QueueDepthState
) -> tuple[Sample, ...]:
    """Samples within the growth window, ending with this observation (one sample per instant)."""
    horizon = obs.at_s - config.growth_window_s
    kept = tuple(s for s in state.samples if horizon <= s[0] < obs.at_s)
    return (*kept, (obs.at_s, obs.pending, obs.in_flight or 0))


def _warming_requested(config: QueueDepthConfig, obs: Observation, state: QueueDepthState) -> int:
    """Replicas this policy asked for less than warmup_s ago (its own view of what is warming)."""
    if state.last_increase_s is None or obs.at_s - state.last_increase_s >= config.warmup_s:
        return 0
    return max(state.desired - state.warming_from, 0)


def _capacity(
    config: QueueDepthConfig, obs: Observation, state: QueueDepthState
) -> tuple[int, int]:
    """(capacity, warming): replicas serving plus those on their way, and how many of them are
    on their way. Without an observed replica count the policy trusts its own last decision;
    with one, replicas it asked for within warmup_s still count even if the cluster has not
    created them yet."""
    requested_warming = _warming_requested(config, obs, state)
    observed = obs.observed_replicas
    if observed is None:
        return state.desired, requested_warming
    ready_seen, warming_seen = obs.ready or 0, obs.warming or 0
    if state.first_seen_s is not None and observed > state.desired:
        # The cluster runs a scale-down up to an HPA sync after it is decided: replicas above
        # the last decision are on their way out, not capacity (read as capacity they would
        # make the policy step back up and restart its window). A state with no history (a
        # restarted scaler) takes the counts as they are.
        ready_seen = min(ready_seen, state.desired)
        warming_seen = min(warming_seen, state.desired - ready_seen)
        observed = ready_seen + warming_seen
    capacity = max(observed, state.desired) if requested_warming else observed
    return capacity, warming_seen + max(capacity - observed, 0)


def _clamp(config: QueueDepthConfig, replicas: int) -> int:
    return max(config.min_replicas, min(config.max_replicas, replicas))


def _decide_pending(
    config: QueueDepthConfig, obs: Observation, state: QueueDepthState
) -> tuple[Decision, QueueDepthState]:
    """KEDA-native passthrough: the HPA divides pending by scale_up_pending; activation on any."""
    want = math.ceil(obs.pending / config.scale_up_pending)
    if obs.pending > 0:
        want = max(want, 1)
    desired = _clamp(config, want)
    detail = (
        f"{obs.pending} pending / {config.scale_up_pending:g} per replica -> {desired} replicas "
        "(KEDA-native passthrough)"
    )
    new_state = replace(
        state,
        desired=desired,
        first_seen_s=obs.at_s if state.first_seen_s is None else state.first_seen_s,
        last_at_s=obs.at_s,
    )
    return Decision(desired, Reason.PASSTHROUGH, detail, float(obs.pending)), new_state


def _decide_replicas(
    config: QueueDepthConfig, obs: Observation, state: QueueDepthState
) -> tuple[Decision, QueueDepthState]:
    at = obs.at_s
    first_seen = at if state.first_seen_s is None else state.first_seen_s
    samples = _remember(config, obs, state)
    in_flight = obs.in_flight or 0
    idle_now = obs.pending == 0 and in_flight == 0
    idle_since = (at if state.idle_since_s is None else state.idle_since_s) if idle_now else None

    # Capacity: what serves now plus what is on its way. Without an observed replica count the
    # policy trusts its own last decision; with one, replicas it asked for within warmup_s still
    # count even if the cluster has not created them yet.
    requested_warming = _warming_requested(config, obs, state)
    capacity, warming = _capacity(config, obs, state)
    buffer = config.buffer_replicas if capacity > 0 else 0
    base = max(capacity - buffer, 0)

    up, down = config.scale_up_pending, config.scale_down_pending
    rate = growth_rate(samples, config.growth_window_s / 2)
    projected = obs.pending + max(rate, 0.0) * config.lookahead_s
    need_now = math.ceil(obs.pending / up)
    need_ahead = math.ceil(projected / up)
    # With in-flight counts and a per-replica concurrency, busy replicas are a leading signal:
    # a continuous-batching replica takes work without queueing until its slots are full, so
    # the queue alone shows load only at saturation, minutes too late for a GPU warm-up.
    conc = config.replica_concurrency
    busy_known = conc is not None and obs.in_flight is not None
    in_flight_floor = math.ceil(in_flight / conc) if conc else 0
    need_busy = 0
    busy_projected = float(in_flight)
    if conc is not None and busy_known and config.scale_up_on_in_flight:
        load_rate = growth_rate(samples, config.growth_window_s / 2, with_in_flight=True)
        busy_projected = in_flight + max(load_rate, 0.0) * config.lookahead_s
        need_busy = math.ceil(busy_projected / conc)

    low_since: float | None = None
    last_down: float | None = None
    if base == 0:
        if obs.pending > 0 or in_flight > 0:
            new_base = max(need_ahead, need_now, in_flight_floor, 1)
            reason = Reason.ACTIVATE
            detail = f"{obs.pending} pending at zero replicas: activate with {new_base}"
        else:
            new_base = 0
            reason = Reason.IDLE
            detail = "nothing pending at zero replicas"
    elif obs.pending / base > up:
        new_base = max(need_now, need_ahead, need_busy)
        reason = Reason.SCALE_UP
        detail = (
            f"{obs.pending} pending on {base} replicas ({warming} still warming up) = "
            f"{obs.pending / base:.1f}/replica > {up:g}: scale up to {new_base}"
        )
        if need_ahead > need_now:
            detail += f" (backlog projected {projected:.0f} in {config.lookahead_s:g}s)"
    elif projected / base > up:
        new_base = max(need_ahead, need_busy)  # busy replicas may need more than the backlog
        reason = Reason.SCALE_UP_LOOKAHEAD
        detail = (
            f"{obs.pending} pending growing {rate:.2f}/s: projected {projected:.0f} in "
            f"{config.lookahead_s:g}s on {base} replicas > {up:g}/replica: scale up to {new_base}"
        )
    elif need_busy > base:
        new_base = max(need_busy, need_ahead)
        reason = Reason.SCALE_UP_IN_FLIGHT
        detail = (
            f"{in_flight} in flight on {base} replicas of {conc} slots ({warming} still warming "
            "up), "
            f"projected {busy_projected:.0f} in {config.lookahead_s:g}s: scale up to {new_base}"
        )
    elif obs.pending / base < down or obs.pending == 0:
        low_since = at if state.low_since_s is None else state.low_since_s
        last_down = state.last_down_s if state.low_since_s is not None else None
        window = config.stabilization_window_s
        waited = min(at - low_since, at - first_seen)
        since_step = math.inf if last_down is None else at - last_down
        target = max(base - config.scale_down_step, in_flight_floor, 0)
        last_stays = target == 0 and not (idle_since is not None and at - idle_since >= window)
        if last_stays:
            target = 1
        min_base = max(config.min_replicas - buffer, 0)
        if waited < window:
            new_base = base
            reason = Reason.HOLD_STABILIZING
            detail = (
                f"{obs.pending} pending on {base} replicas < {down:g}/replica for {waited:.0f}s "
                f"of a {window:g}s window: hold"
            )
        elif since_step < config.step_period_s(busy_known):
            new_base = base
            reason = Reason.HOLD_STABILIZING
            detail = (
                f"{obs.pending} pending on {base} replicas, still low; last step down "
                f"{since_step:.0f}s ago, next after {config.step_period_s(busy_known):g}s: hold"
            )
        elif target >= base and last_stays and in_flight_floor < 1:
            new_base = base
            reason = Reason.HOLD_STABILIZING
            idle_for = 0.0 if idle_since is None else at - idle_since
            detail = (
                f"{obs.pending} pending on the last replica: it goes only after {window:g}s "
                f"with nothing pending or in flight (idle for {idle_for:.0f}s): hold"
            )
        elif target >= base:
            new_base = base
            reason = Reason.HOLD_IN_FLIGHT
            detail = (
                f"{obs.pending} pending but {in_flight} in flight need {max(in_flight_floor, 1)} "
                f"replicas: hold {base}"
            )
        elif target < min_base and base <= min_base:
            new_base = base
            reason = Reason.HOLD_MIN
            detail = f"low load but already at minReplicas {config.min_replicas}: hold"
        else:
            new_base = max(target, min_base)
            reason = Reason.SCALE_TO_ZERO if new_base == 0 else Reason.SCALE_DOWN
            detail = (
                f"{obs.pending} pending on {base} replicas < {down:g}/replica for {waited:.0f}s "
                f"(window {window:g}s): scale down to {new_base}"
            )
            last_down = at  # the next step waits scale_down_period_s (seed: a whole window)
    else:
        new_base = base
        reason = Reason.HOLD
        detail = f"{obs.pending} pending on {base} replicas is within [{down:g}, {up:g}]/replica"

    if reason is Reason.HOLD and warming and obs.pending / max(base - warming, 1) > up:
        reason = Reason.HOLD_WARMING
        detail = (
            f"{obs.pending} pending on {base} replicas, {warming} of them still warming up: "
            "they cover the backlog once serving, so none more for now"
        )

    growing = (
        Reason.ACTIVATE,
        Reason.SCALE_UP,
        Reason.SCALE_UP_LOOKAHEAD,
        Reason.SCALE_UP_IN_FLIGHT,
    )
    if config.scale_up_factor is not None and reason in growing:
        limit, why = scale_up_limit(config.scale_up_factor, base, warming)
        if new_base > limit:
            new_base = limit
            detail += f"; {why}"

    desired = new_base + (config.buffer_replicas if new_base > 0 else 0)
    if desired > config.max_replicas:
        detail += f"; capped at maxReplicas {config.max_replicas}"
        reason = Reason.CAPPED_MAX if reason in (Reason.SCALE_UP, Reason.ACTIVATE) else reason
    desired = _clamp(config, desired)
    if config.min_replicas > 0 and desired == config.min_replicas and reason is Reason.IDLE:
        reason = Reason.HOLD_MIN
        detail = f"nothing pending; holding minReplicas {config.min_replicas}"

    if desired > state.desired:
        last_increase_s: float | None = at
        warming_from = state.desired if requested_warming == 0 else state.warming_from
    else:
        last_increase_s, warming_from = state.last_increase_s, state.warming_from
        warming_from = min(warming_from, desired)
    if desired > state.desired:
        low_since, last_down = None, None

    new_state = QueueDepthState(
        desired=desired,
        last_increase_s=last_increase_s,
        warming_from=warming_from,
        low_since_s=low_since,
        last_down_s=last_down,
        idle_since_s=idle_since,
        first_seen_s=first_seen,
        last_at_s=at,
        samples=samples,
    )
    return Decision(desired, reason, detail, float(desired)), new_state
