"""Configuration of the queue-depth policy: units and invariants on every field.

Config is separate from state (Knative's lesson). Validation here is plain and raises
``ConfigError`` naming the field; richer parsing (KEDA metadata, YAML) happens at the edges and
maps its own key names onto these fields.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields


class ConfigError(ValueError):
    """A config value breaks its invariant. ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Rule(enum.StrEnum):
    """target: size replicas to the work in the system (``policies.target``, the default).
    threshold: scale on pending per replica against the up/down thresholds (the seed's rule).
    """

    TARGET = "target"
    THRESHOLD = "threshold"


class Mode(enum.StrEnum):
    """replicas: the metric is the desired replica count (target 1) and the policy decides.
    pending: KEDA-native passthrough, the metric is the raw pending count (target scaleUpPending).
    """

    REPLICAS = "replicas"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class QueueDepthConfig:
    """The queue-depth policy's knobs. Thresholds are per replica, like KEDA's ``listLength``.

    scale_up_pending:       tasks per replica (ready + warming) above which we scale up, > 0.
    scale_down_pending:     tasks per replica below which a model counts as under-used,
                            0 <= scale_down_pending < scale_up_pending.
    stabilization_window_s: seconds the low condition must hold before each scale-down step, >= 0.
    warmup_s:               seconds a newly requested replica takes to serve (GPU node launch +
                            image pull + weight load); replicas requested within this time count
                            as capacity on its way, >= 0.
    lookahead_s:            seconds ahead to project the pending backlog from its recent growth
                            rate when sizing a scale-up; 0 disables the look-ahead, >= 0.
    growth_window_s:        seconds of pending history used to estimate the growth rate; the
                            samples must span at least half of it, and a trend must show in both
                            halves, before it counts, > 0.
    min_replicas:           floor, >= 0. 0 allows scale to zero after an idle window.
    max_replicas:           ceiling, >= max(min_replicas, 1).
    scale_down_step:        replicas removed per scale-down step, >= 1.
    scale_down_period_s:    seconds between two scale-down steps of one unbroken low run, > 0,
                            used only when the in-flight floor is known (in-flight counts and
                            ``replica_concurrency``): then every step is bounded by the work
                            the policy can see. Without that floor each step is a probe and
                            waits a whole stabilization window again, as does None (the seed).
                            Never longer than the window.
    scale_up_on_in_flight:  with in-flight counts and ``replica_concurrency``, also scale up when
                            the work in flight (projected ``lookahead_s`` ahead from the load's
                            growth) needs more replicas than there are: a continuous-batching
                            replica queues nothing until its slots are full, so the queue alone
                            shows load only at saturation, minutes too late for a GPU warm-up.
    scale_up_factor:        a scale-up asks for at most this many times the replicas already
                            serving (not warming), or 4 more, whichever is larger; the next
                            step comes once capacity on its way is ready. None: no limit, the
                            whole backlog at once (the seed). >= 1.
    replica_concurrency:    tasks one replica should carry at once: the Celery worker slots per
                            vLLM replica, or fewer for headroom (e.g. 200 of 256); with in-flight
                            counts it sets a floor and a scale-up signal, >= 1 or None.
    buffer_replicas:        warm spare replicas kept on top of what the thresholds need while the
                            model is active, >= 0.
    mode:                   replicas (policy decides) or pending (KEDA-native passthrough).
    rule:                   how replicas mode decides: ``target`` (size to the work in the
                            system, stabilised over the window) or ``threshold`` (the seed's
                            pending-per-replica thresholds).
    headroom:               target rule: spare capacity for ramps while GPUs warm up, as a share of
                            the load, counted in whole replicas (a fraction of a replica rounds
                            away: small fleets already have the slack of whole replicas), >= 0.
    react_to_recent:        target rule: size on the higher of the load's mean over the growth
                            window and its mean over the window's last quarter, so a step up
                            counts before it moves the whole window's mean.
    seasonal_fraction:      target rule: keep capacity for this share of the load the same slots
                            of earlier periods carried, from now to ``warmup_s`` ahead (the
                            seasonal floor, ``policies.season``); 0 turns it off, 0..1.
    seasonal_periods_s:     the season's periods, seconds (an hour and a day), each > 0 and a
                            multiple of the slot; empty turns the floor off.
    seasonal_slot_s:        the season's slot, seconds, > 0.
    seasonal_decay:         how much of a slot's remembered load survives a period in which the
                            slot carried less, 0..1.
    """

    scale_up_pending: float = 50.0
    scale_down_pending: float = 5.0
    stabilization_window_s: float = 600.0
    warmup_s: float = 300.0
    lookahead_s: float = 300.0
    growth_window_s: float = 120.0
    min_replicas: int = 0
    max_replicas: int = 100
    scale_down_step: int = 1
    scale_down_period_s: float | None = 60.0
    scale_up_on_in_flight: bool = True
    scale_up_factor: float | None = 2.0
    replica_concurrency: int | None = None
    buffer_replicas: int = 0
    mode: Mode = Mode.REPLICAS
    rule: Rule = Rule.THRESHOLD
    headroom: float = 0.0
    react_to_recent: bool = False
    seasonal_fraction: float = 0.0
    seasonal_periods_s: tuple[float, ...] = (3600.0, 86400.0)
    seasonal_slot_s: float = 600.0
    seasonal_decay: float = 0.7

    def __post_init__(self) -> None:
        if not self.scale_up_pending > 0:
            raise ConfigError("scale_up_pending", f"must be > 0, got {self.scale_up_pending}")
        if not 0 <= self.scale_down_pending < self.scale_up_pending:
            raise ConfigError(
                "scale_down_pending",
                f"must be >= 0 and < scale_up_pending ({self.scale_up_pending}), "
                f"got {self.scale_down_pending}",
            )
        for name in ("stabilization_window_s", "warmup_s", "lookahead_s", "headroom"):
            if not getattr(self, name) >= 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        if not self.growth_window_s > 0:
            raise ConfigError("growth_window_s", f"must be > 0, got {self.growth_window_s}")
        if self.min_replicas < 0:
            raise ConfigError("min_replicas", f"must be >= 0, got {self.min_replicas}")
        if self.max_replicas < max(self.min_replicas, 1):
            raise ConfigError(
                "max_replicas",
                f"must be >= max(min_replicas, 1) = {max(self.min_replicas, 1)}, "
                f"got {self.max_replicas}",
            )
        for name in ("seasonal_fraction", "seasonal_decay"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(name, f"must be within [0, 1], got {getattr(self, name)}")
        if not self.seasonal_slot_s > 0:
            raise ConfigError("seasonal_slot_s", f"must be > 0, got {self.seasonal_slot_s}")
        for period in self.seasonal_periods_s:
            if not period >= self.seasonal_slot_s:
                raise ConfigError(
                    "seasonal_periods_s",
                    f"each period must be >= seasonal_slot_s ({self.seasonal_slot_s}), got {period}",
                )
        if self.scale_down_step < 1:
            raise ConfigError("scale_down_step", f"must be >= 1, got {self.scale_down_step}")
        if self.scale_down_period_s is not None and not self.scale_down_period_s > 0:
            raise ConfigError(
                "scale_down_period_s", f"must be > 0 or unset, got {self.scale_down_period_s}"
            )
        if self.scale_up_factor is not None and not self.scale_up_factor >= 1:
            raise ConfigError(
                "scale_up_factor", f"must be >= 1 or unset, got {self.scale_up_factor}"
            )
        if self.replica_concurrency is not None and self.replica_concurrency < 1:
            raise ConfigError(
                "replica_concurrency", f"must be >= 1 or unset, got {self.replica_concurrency}"
            )
        if self.buffer_replicas < 0:
            raise ConfigError("buffer_replicas", f"must be >= 0, got {self.buffer_replicas}")
        if self.buffer_replicas + max(self.min_replicas, 1) > self.max_replicas:
            raise ConfigError(
                "buffer_replicas",
                f"buffer_replicas ({self.buffer_replicas}) + max(min_replicas, 1) exceeds "
                f"max_replicas ({self.max_replicas})",
            )

    def step_period_s(self, floor_known: bool) -> float:
        """Seconds between scale-down steps of one low run: ``scale_down_period_s`` when the
        in-flight floor bounds each step, else a whole stabilization window."""
        if self.scale_down_period_s is None or not floor_known:
            return self.stabilization_window_s
        return min(self.scale_down_period_s, self.stabilization_window_s)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# depthscale's rule (the default): the seed's thresholds and window, plus the in-flight signals
# when the edge counts in-flight work and knows the per-replica concurrency (docs/policy.md).
DEPTHSCALE = QueueDepthConfig(
    rule=Rule.TARGET, react_to_recent=True, seasonal_fraction=1.0, headroom=0.25
)

# The seed's rule as first stated: up above 50 pending per replica, down below 5 after a
# 10-minute window, 5-minute GPU warm-up, one replica per window, in-flight work only as a floor.
SEED = QueueDepthConfig(scale_down_period_s=None, scale_up_on_in_flight=False, scale_up_factor=None)

PRESETS: dict[str, QueueDepthConfig] = {"depthscale": DEPTHSCALE, "seed": SEED}
