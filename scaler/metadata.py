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
        if len(key) > MAX_KEY_CHARS:
            key = f"{key[:_SHOWN_CHARS]}…"
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


# --- limits: every request's work is bounded by these, whatever a ScaledObject author writes -----

MAX_KEYS = 64
"""Keys per metadata map (KEDA's own keys and ``<key>FromEnv`` forms included)."""
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 1024
MAX_METADATA_CHARS = 16 * 1024
"""Characters of all keys and values of one map together."""
MAX_QUEUES = 32
MAX_QUEUE_NAME_BYTES = 255
"""AMQP's shortstr limit on a queue name (UTF-8 bytes); Redis keys follow the same bound here."""
MAX_PRIORITY_LEVELS = 32
MAX_PRIORITY = 255
"""kombu's Redis transport takes any ``priority_steps``; RabbitMQ's ``x-max-priority`` stops at
255. Each level is one LLEN per queue per read, hence the count bound."""
MAX_REPLICAS = 2**31 - 1
"""Kubernetes replica counts are int32 (``ScaleSpec.Replicas``)."""
MIN_QUANTITY = 0.001
"""KEDA hands metric values to the HPA as milli-quantities: a positive value below this is 0."""
MAX_TASKS = 1e9
MAX_SECONDS = 7 * 86400.0
"""Windows, warm-ups and periods: at most a week."""
MAX_SEASON_SLOTS = 2048
"""Slots of all seasonal periods together: one integer each in the policy state."""

_SHOWN_CHARS = 40


def shown(text: str) -> str:
    """``text`` quoted for an error message, cut to a few dozen characters: an error never
    repeats what made the request too large."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}… ({len(text)} characters)"


# --- value parsers: str -> typed value, ValueError with a short problem ---------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool, as KEDA parses bools
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
# ASCII decimal only, as Go's strconv parses them for KEDA: no Unicode digits (``١٢``, ``５０``),
# no ``1_0``, no hex, no ``inf``/``nan``. re.ASCII keeps ``\d`` off other scripts' digits.
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{shown(value)} is not a name (letters, digits, '.', '_', '-'; at most 63 characters)"
        )
    return value


def check_queue_name(name: str, sep: str | None = None) -> None:
    """ValueError unless kombu can name a queue ``name``: non-empty, at most 255 UTF-8 bytes,
    printable (no control or format characters), and free of the priority separator ``sep``
    (kombu's ``queue + sep + step`` would make it another queue's priority list)."""
    if len(name.encode("utf-8", "surrogatepass")) > MAX_QUEUE_NAME_BYTES:
        raise ValueError(f"queue name {shown(name)} is longer than {MAX_QUEUE_NAME_BYTES} bytes")
    if not name.isprintable():
        raise ValueError(f"queue name {shown(name)} holds a control or non-printable character")
    if sep and sep in name:
        raise ValueError(f"queue name {shown(name)} contains the priority separator {sep!r}")


def _queues(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",", MAX_QUEUES))
    if len(names) > MAX_QUEUES:
        raise ValueError(f"more than {MAX_QUEUES} queues")
    if any(not name for name in names):
        raise ValueError(f"{shown(value)} has an empty queue name (comma-separated list expected)")
    for name in names:
        check_queue_name(name)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"queue {shown(duplicates[0])} is listed twice")
    return names


def _decimal(value: str) -> float:
    if not _DECIMAL.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a number (ASCII decimal)")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{shown(value)} is out of range")
    return number


def _integer(value: str) -> int:
    if not _INTEGER.fullmatch(value) or len(value) > 12:
        raise ValueError(f"{shown(value)} is not a whole number")
    return int(value)


def _number_in(low: float, high: float, *, positive: bool = False) -> Callable[[str], float]:
    """A decimal within [low, high]; ``positive``: 0 refused. Non-zero values below
    ``MIN_QUANTITY`` are refused: KEDA would round them to 0."""

    def parse(value: str) -> float:
        number = _decimal(value)
        if not low <= number <= high:
            raise ValueError(f"must be within [{low:g}, {high:g}], got {shown(value)}")
        if (positive or number != 0) and abs(number) < MIN_QUANTITY:
            smallest = "> 0 and " if positive else "0 or "
            raise ValueError(f"must be {smallest}>= {MIN_QUANTITY:g}, got {shown(value)}")
        return number

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = _integer(value)
        if not low <= number <= high:
            raise ValueError(f"must be a whole number within [{low}, {high}], got {shown(value)}")
        return number

    return parse


def _bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{shown(value)} is not a boolean (true or false)")


def _mode(value: str) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ValueError(f"{shown(value)} is not one of: {choices}") from None


def _rule(value: str) -> Rule:
    try:
        return Rule(value)
    except ValueError:
        choices = ", ".join(r.value for r in Rule)
        raise ValueError(f"{shown(value)} is not one of: {choices}") from None


_period = _number_in(0, MAX_SECONDS, positive=True)


def _periods(value: str) -> tuple[float, ...]:
    """Comma-separated seconds, e.g. ``3600,86400``; empty for none."""
    parts = [p.strip() for p in value.split(",", 4) if p.strip()]
    if len(parts) > 4:
        raise ValueError("at most 4 periods")
    return tuple(_period(p) for p in parts)


_priority = _int_in(0, MAX_PRIORITY)


def _priority_levels(value: str) -> tuple[int, ...]:
    parts = value.split(",", MAX_PRIORITY_LEVELS)
    if len(parts) > MAX_PRIORITY_LEVELS:
        raise ValueError(f"more than {MAX_PRIORITY_LEVELS} priority levels")
    levels = [_priority(part.strip()) for part in parts]
    if len(set(levels)) != len(levels):
        raise ValueError(f"{shown(value)} lists a priority level twice")
    return tuple(sorted(levels))


def _preset(value: str) -> QueueDepthConfig:
    try:
        return PRESETS[value]
    except KeyError:
        raise ValueError(f"{shown(value)} is not one of: {', '.join(sorted(PRESETS))}") from None


def _key_prefix(value: str) -> str:
    if len(value) > MAX_QUEUE_NAME_BYTES or not value.isprintable():
        raise ValueError(f"must be printable and at most {MAX_QUEUE_NAME_BYTES} characters")
    return value


_tasks = _number_in(0, MAX_TASKS)
_seconds = _number_in(0, MAX_SECONDS)
_replicas = _int_in(0, MAX_REPLICAS)


@dataclass(frozen=True, slots=True)
class MetadataKey:
    """One metadata key: where its parsed value goes and what it means (for docs/scaler.md)."""

    name: str
    target: str  # "broker", "model", "spec.<field>" or "config.<field>"
    parse: Callable[[str], Any]
    required: bool = False
    allow_empty: bool = False


# The declarative table. Defaults come from QueueSpec / QueueDepthConfig (the seed's rule).
KEYS: tuple[MetadataKey, ...] = (
    MetadataKey("broker", "broker", _name, required=True),
    MetadataKey("queues", "spec.queues", _queues, required=True),
    MetadataKey("model", "model", _name),
    MetadataKey(
        "scaleUpPending", "config.scale_up_pending", _number_in(0, MAX_TASKS, positive=True)
    ),
    MetadataKey("scaleDownPending", "config.scale_down_pending", _tasks),
    MetadataKey("stabilizationWindowSeconds", "config.stabilization_window_s", _seconds),
    MetadataKey("warmupSeconds", "config.warmup_s", _seconds),
    MetadataKey("lookaheadSeconds", "config.lookahead_s", _seconds),
    MetadataKey("growthWindowSeconds", "config.growth_window_s", _period),
    MetadataKey("minReplicas", "config.min_replicas", _replicas),
    MetadataKey("maxReplicas", "config.max_replicas", _replicas),
    MetadataKey("scaleDownStep", "config.scale_down_step", _int_in(1, MAX_REPLICAS)),
    MetadataKey("scaleDownPeriodSeconds", "config.scale_down_period_s", _period),
    MetadataKey("scaleUpOnInFlight", "config.scale_up_on_in_flight", _bool),
    MetadataKey("scaleUpFactor", "config.scale_up_factor", _number_in(1, 1000)),
    MetadataKey("preset", "preset", _preset),
    MetadataKey("replicaConcurrency", "config.replica_concurrency", _int_in(1, 1_000_000)),
    MetadataKey("bufferReplicas", "config.buffer_replicas", _replicas),
    MetadataKey("mode", "config.mode", _mode),
    MetadataKey("rule", "config.rule", _rule),
    MetadataKey("headroom", "config.headroom", _number_in(0, 100)),
    MetadataKey("reactToRecent", "config.react_to_recent", _bool),
    MetadataKey("seasonalFraction", "config.seasonal_fraction", _number_in(0, 1)),
    MetadataKey("seasonalPeriodsSeconds", "config.seasonal_periods_s", _periods),
    MetadataKey("seasonalSlotSeconds", "config.seasonal_slot_s", _number_in(60, 86400)),
    MetadataKey("seasonalDecay", "config.seasonal_decay", _number_in(0, 1)),
    MetadataKey("includeUnacked", "spec.include_unacked", _bool),
    MetadataKey("priorityLevels", "spec.priority_steps", _priority_levels),
    MetadataKey("keyPrefix", "spec.key_prefix", _key_prefix, allow_empty=True),
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


def check_size(metadata: Mapping[str, str]) -> None:
    """MetadataError unless the map is within every size limit; costs O(size), runs first, and
    never quotes the oversize input whole."""
    if len(metadata) > MAX_KEYS:
        raise MetadataError("scalerMetadata", f"more than {MAX_KEYS} keys ({len(metadata)})")
    total = 0
    for key, value in metadata.items():
        if len(key) > MAX_KEY_CHARS:
            raise MetadataError(key, f"key longer than {MAX_KEY_CHARS} characters ({len(key)})")
        if len(value) > MAX_VALUE_CHARS:
            raise MetadataError(
                key, f"value longer than {MAX_VALUE_CHARS} characters ({len(value)})"
            )
        total += len(key) + len(value)
    if total > MAX_METADATA_CHARS:
        raise MetadataError(
            "scalerMetadata", f"keys and values longer than {MAX_METADATA_CHARS} characters"
        )


def _check_key(key: str, value: str) -> None:
    if key in _BY_NAME or key in KEDA_KEYS:
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
    check_size(metadata)
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
    slots = sum(max(round(p / config.seasonal_slot_s), 1) for p in config.seasonal_periods_s)
    if slots > MAX_SEASON_SLOTS:
        raise MetadataError(
            "seasonalPeriodsSeconds",
            f"{slots} slots of seasonalSlotSeconds ({config.seasonal_slot_s:g} s) in all periods; "
            f"at most {MAX_SEASON_SLOTS}",
        )
    spec_args.setdefault("priority_steps", DEFAULT_PRIORITY_STEPS)
    return ScalerMetadata(
        broker=parsed["broker"],
        model=parsed.get("model"),
        spec=QueueSpec(**spec_args),
        config=config,
    )
