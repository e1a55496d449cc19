"""ScaledObject ``scalerMetadata`` → a typed struct: which broker, which queues, which policy knobs.

KEDA forwards the external trigger's ``metadata`` map verbatim (kedacore/keda v2.20: externalscaler.proto and the metrics adapter), so every value is a
string and anything a user types arrives here. Parsing is declarative, in the style of KEDA's own
scalers: one table row per key with its parser, default and meaning; rules spanning keys are
``QueueDepthConfig``'s invariants, reported under the metadata key that broke them. Any problem
raises ``MetadataError`` naming the key; nothing is half-parsed.

Credentials never live here: ``broker`` is a *name* the scaler's own configuration maps to a URL
(TriggerAuthentication secrets are not forwarded to external scalers, keda#2571), and a URL or a
password-like key in metadata is refused, so no ScaledObject can make the scaler dial a host.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from policies.config import DEPTHSCALE, PRESETS, ConfigError, Mode, QueueDepthConfig, Rule
from scaler.ports import DEFAULT_PRIORITY_STEPS, QueueSpec


class MetadataError(ValueError):
    """Bad ``scalerMetadata``. ``key`` names the offending metadata key, ``problem`` says why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ScalerMetadata:
    """One trigger's parsed metadata.

    broker: name of a broker defined in the scaler's configuration (``serve --broker NAME=URL``).
    model:  label for metric names, logs and Prometheus series; None → the ScaledObject's name.
    spec:   where the model's tasks wait (queues, priority lists, key prefix, unacked counting).
    config: the queue-depth policy's knobs for this model.
    """

    broker: str
    model: str | None
    spec: QueueSpec
    config: QueueDepthConfig


# --- value parsers: str -> typed value, ValueError with a short problem ---------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool, as KEDA parses bools
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
MAX_VALUE_CHARS = 1024


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a name (letters, digits, '.', '_', '-'; at most 63 characters)"
        )
    return value


def _queues(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(","))
    if any(not name for name in names):
        raise ValueError(f"{value!r} has an empty queue name (comma-separated list expected)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"queue {duplicates[0]!r} is listed twice")
    return names


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _integer(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


def _positive_int(value: str) -> int:
    number = _integer(value)
    if number < 1:
        raise ValueError(f"must be >= 1, got {number}")
    return number


def _bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (true or false)")


def _mode(value: str) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ValueError(f"{value!r} is not one of: {choices}") from None


def _rule(value: str) -> Rule:
    try:
        return Rule(value)
    except ValueError:
        choices = ", ".join(r.value for r in Rule)
        raise ValueError(f"{value!r} is not one of: {choices}") from None


def _periods(value: str) -> tuple[float, ...]:
    """Comma-separated seconds, e.g. ``3600,86400``; empty for none."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if len(parts) > 4:
        raise ValueError(f"at most 4 periods, got {len(parts)}")
    return tuple(_number(p) for p in parts)


def _priority_levels(value: str) -> tuple[int, ...]:
    levels = []
    for part in value.split(","):
        level = _integer(part)
        if level < 0:
            raise ValueError(f"priority level {level} is negative")
        levels.append(level)
    if len(set(levels)) != len(levels):
        raise ValueError(f"{value!r} lists a priority level twice")
    return tuple(sorted(levels))


def _preset(value: str) -> QueueDepthConfig:
    try:
        return PRESETS[value]
    except KeyError:
        raise ValueError(f"{value!r} is not one of: {', '.join(sorted(PRESETS))}") from None


def _key_prefix(value: str) -> str:
    return value


@dataclass(frozen=True, slots=True)
class _Key:
    """One metadata key: where its parsed value goes and what it means (for docs/scaler.md)."""

    name: str
    target: str  # "broker", "model", "spec.<field>" or "config.<field>"
    parse: Callable[[str], Any]
    required: bool = False
    allow_empty: bool = False


# The declarative table. Defaults come from QueueSpec / QueueDepthConfig (the seed's rule).
KEYS: tuple[_Key, ...] = (
    _Key("broker", "broker", _name, required=True),
    _Key("queues", "spec.queues", _queues, required=True),
    _Key("model", "model", _name),
    _Key("scaleUpPending", "config.scale_up_pending", _number),
    _Key("scaleDownPending", "config.scale_down_pending", _number),
    _Key("stabilizationWindowSeconds", "config.stabilization_window_s", _number),
    _Key("warmupSeconds", "config.warmup_s", _number),
    _Key("lookaheadSeconds", "config.lookahead_s", _number),
    _Key("growthWindowSeconds", "config.growth_window_s", _number),
    _Key("minReplicas", "config.min_replicas", _integer),
    _Key("maxReplicas", "config.max_replicas", _integer),
    _Key("scaleDownStep", "config.scale_down_step", _integer),
    _Key("scaleDownPeriodSeconds", "config.scale_down_period_s", _number),
    _Key("scaleUpOnInFlight", "config.scale_up_on_in_flight", _bool),
    _Key("scaleUpFactor", "config.scale_up_factor", _number),
    _Key("preset", "preset", _preset),
    _Key("replicaConcurrency", "config.replica_concurrency", _positive_int),
    _Key("bufferReplicas", "config.buffer_replicas", _integer),
    _Key("mode", "config.mode", _mode),
    _Key("rule", "config.rule", _rule),
    _Key("headroom", "config.headroom", _number),
    _Key("reactToRecent", "config.react_to_recent", _bool),
    _Key("seasonalFraction", "config.seasonal_fraction", _number),
    _Key("seasonalPeriodsSeconds", "config.seasonal_periods_s", _periods),
    _Key("seasonalSlotSeconds", "config.seasonal_slot_s", _number),
    _Key("seasonalDecay", "config.seasonal_decay", _number),
    _Key("includeUnacked", "spec.include_unacked", _bool),
    _Key("priorityLevels", "spec.priority_steps", _priority_levels),
    _Key("keyPrefix", "spec.key_prefix", _key_prefix, allow_empty=True),
)
_BY_NAME = {k.name: k for k in KEYS}
_BY_FIELD = {k.target.split(".", 1)[1]: k.name for k in KEYS if "." in k.target}

# Keys KEDA reads itself and forwards to us untouched (kedacore/keda pkg/scalers/external_scaler.go:
# scalerAddress is required by KEDA, enableTLS/unsafeSsl optional). Accepted and ignored.
KEDA_KEYS = frozenset({"scalerAddress", "enableTLS", "unsafeSsl"})

# Keys that would put a broker location or a credential into a ScaledObject.
_SECRET_LIKE = re.compile(
    r"(url|uri|host|address|password|passwd|secret|token|user|auth|dsn)", re.I
)
_CREDENTIALS_HINT = (
    "broker locations and credentials are refused in ScaledObject metadata; define the broker "
    "in the scaler's configuration (depthscale serve --broker NAME=URL) and name it with 'broker'"
)


def _resolve_from_env(metadata: Mapping[str, str]) -> dict[str, str]:
    """Fold KEDA's ``<key>FromEnv`` keys (already resolved by KEDA to the env value) onto <key>."""
    resolved: dict[str, str] = {}
    for key, value in metadata.items():
        base = key[: -len("FromEnv")] if key.endswith("FromEnv") else key
        if base != key and base in _BY_NAME:
            if base in metadata:
                raise MetadataError(key, f"both {base!r} and {key!r} are set; use one")
            resolved[base] = value
        else:
            resolved[key] = value
    return resolved


def _check_key(key: str, value: str) -> None:
    if key in _BY_NAME or key in KEDA_KEYS:
        if len(value) > MAX_VALUE_CHARS:
            raise MetadataError(key, f"value longer than {MAX_VALUE_CHARS} characters")
        if key not in KEDA_KEYS and "://" in value:
            raise MetadataError(key, f"looks like a URL; {_CREDENTIALS_HINT}")
        return
    if _SECRET_LIKE.search(key):
        raise MetadataError(key, _CREDENTIALS_HINT)
    known = sorted(_BY_NAME)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise MetadataError(key, f"unknown key{hint}; known keys: {', '.join(known)}")


def _in_key_names(problem: str) -> str:
    """Speak the user's language: config field names in a problem become metadata keys."""
    return re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", lambda m: _BY_FIELD.get(m[0], m[0]), problem)


def parse_metadata(metadata: Mapping[str, str]) -> ScalerMetadata:
    """Parse a trigger's ``scalerMetadata``; raises ``MetadataError`` naming the key at fault."""
    values = _resolve_from_env(metadata)
    for key in sorted(values):
        _check_key(key, values[key])
    for spec in KEYS:
        if spec.required and not values.get(spec.name, "").strip():
            raise MetadataError(spec.name, "required key is missing")

    parsed: dict[str, Any] = {}
    for spec in KEYS:
        if spec.name not in values:
            continue
        raw = values[spec.name]
        if not raw.strip() and not spec.allow_empty:
            raise MetadataError(spec.name, "empty value")
        try:
            parsed[spec.target] = spec.parse(raw.strip() if not spec.allow_empty else raw)
        except ValueError as exc:
            raise MetadataError(spec.name, str(exc)) from None

    config_args = {t.split(".", 1)[1]: v for t, v in parsed.items() if t.startswith("config.")}
    spec_args = {t.split(".", 1)[1]: v for t, v in parsed.items() if t.startswith("spec.")}
    try:
        config = replace(parsed.get("preset", DEPTHSCALE), **config_args)
    except ConfigError as exc:
        raise MetadataError(
            _BY_FIELD.get(exc.field, exc.field), _in_key_names(exc.problem)
        ) from None
    spec_args.setdefault("priority_steps", DEFAULT_PRIORITY_STEPS)
    return ScalerMetadata(
        broker=parsed["broker"],
        model=parsed.get("model"),
        spec=QueueSpec(**spec_args),
        config=config,
    )
