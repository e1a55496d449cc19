"""The worker's settings: one typed record, every field with its unit and invariant, parsed from
flags and environment variables at the edge, checked in one place.

Everything the Celery configuration needs follows from these fields (``worker/celeryconf.py``);
the derived numbers (the Redis visibility timeout above all) are properties here, so the rule
that ties them to the longest generation has one home.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

# Environment variables (the container's contract; both URLs may come from a Secret).
BROKER_URL_ENV = "DEPTHSCALE_BROKER_URL"
RESULT_BACKEND_ENV = "DEPTHSCALE_RESULT_BACKEND"

# A Celery queue name as the scaler's ``queues`` metadata lists it: no commas or whitespace
# (the metadata is comma-separated), printable, at most 200 characters (RabbitMQ allows 255 bytes).
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}")

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+socket"})
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})


class SettingsError(ValueError):
    """A setting is missing or out of range; the message names it and holds no password."""


class Transport(Enum):
    """The broker family, which decides how priorities and redelivery work."""

    REDIS = "redis"
    AMQP = "amqp"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (error text and logs never carry one). A value
    that is not a URL is hidden whole: it may be a secret pasted into the wrong place."""
    if "://" not in url:
        return "***"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def transport_of(url: str, field: str = BROKER_URL_ENV) -> Transport:
    """The transport a Celery broker URL selects: Redis or AMQP (RabbitMQ)."""
    if not url:
        raise SettingsError(f"{field}: required (a redis:// or amqp:// broker URL)")
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        return Transport.REDIS
    if scheme in AMQP_SCHEMES:
        return Transport.AMQP
    raise SettingsError(
        f"{field}: unsupported broker URL {redact(url)!r} (expected redis://, rediss:// or amqp://)"
    )


def parse_queues(text: str, field: str = "--queues") -> tuple[str, ...]:
    """Comma-separated queue names, in order, duplicates refused."""
    names = tuple(part.strip() for part in text.split(","))
    if not text.strip():
        raise SettingsError(f"{field}: at least one queue name is required")
    seen: set[str] = set()
    for name in names:
        if not _QUEUE_NAME.fullmatch(name):
            raise SettingsError(
                f"{field}: {name!r} is not a queue name (letters, digits and ._:@/-, "
                "starting with a letter or digit, at most 200 characters)"
            )
        if name in seen:
            raise SettingsError(f"{field}: {name!r} is listed twice")
        seen.add(name)
    return names


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How one worker beside one vLLM replica runs.

    broker_url:              Celery broker (``redis://``/``rediss://`` or ``amqp://``).
    result_backend:          Celery result backend URL (e.g. ``redis://…/1``); required, since the
                             caller reads its answer there.
    model:                   the model name vLLM serves (``--served-model-name``); requests naming
                             another model are refused without calling the replica.
    queues:                  the Celery queues consumed, in order; by convention the first is the
                             model's name. Non-empty, no duplicates.
    concurrency:             tasks held at once, threads (>= 1): the trigger's ``replicaConcurrency``,
                             normally vLLM's ``--max-num-seqs``.
    vllm_url:                base URL of the replica's OpenAI-compatible server (http or https).
    max_generation_seconds:  longest one request may take on the replica, seconds (> 0): the HTTP
                             read timeout, and the base of the Redis visibility timeout.
    connect_timeout_seconds: TCP connect timeout to the replica, seconds (> 0).
    retry_base_seconds:      first retry delay, seconds (> 0); doubles on every retry.
    retry_max_seconds:       ceiling of one retry delay, seconds (>= retry_base_seconds).
    max_retries:             retries after the first attempt before the task fails (>= 0).
    visibility_timeout_override: seconds a Redis broker waits for an ack before redelivering;
                             None derives it (``visibility_timeout_seconds``). When set it must
                             exceed ``minimum_visibility_seconds``.
    key_prefix:              Redis only: kombu's ``global_keyprefix``, put before every key the
                             broker uses (the trigger's ``keyPrefix``); "" for none.
    """

    broker_url: str
    result_backend: str
    model: str
    queues: tuple[str, ...]
    concurrency: int = 256
    vllm_url: str = "http://127.0.0.1:8000"
    max_generation_seconds: float = 600.0
    connect_timeout_seconds: float = 5.0
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    max_retries: int = 10
    visibility_timeout_override: float | None = None
    key_prefix: str = ""

    # Margin on top of the longest hold of a message, seconds: the result write, the ack's round
    # trip and clock skew between the worker that reserved a message and the one that restores it
    # (kombu compares its own ``time()`` with the reserving worker's timestamp).
    VISIBILITY_MARGIN_SECONDS = 120.0

    def __post_init__(self) -> None:
        transport_of(self.broker_url)
        if not self.result_backend:
            raise SettingsError(f"{RESULT_BACKEND_ENV}: required (e.g. redis://host:6379/1)")
        if "://" not in self.result_backend:
            raise SettingsError(
                f"{RESULT_BACKEND_ENV}: {redact(self.result_backend)!r} is not a URL"
            )
        if not self.model.strip():
            raise SettingsError("--model: required (the model name vLLM serves)")
        if not self.queues:
            raise SettingsError("--queues: at least one queue name is required")
        parse_queues(",".join(self.queues))
        if not 1 <= self.concurrency <= 4096:
            raise SettingsError(f"--concurrency: must be 1 to 4096 tasks, got {self.concurrency}")
        url = urlsplit(self.vllm_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SettingsError(f"--vllm-url: {self.vllm_url!r} is not an http(s) URL")
        for flag, value in (
            ("--max-generation-seconds", self.max_generation_seconds),
            ("--connect-timeout-seconds", self.connect_timeout_seconds),
            ("--retry-base-seconds", self.retry_base_seconds),
        ):
            if not 0 < value < float("inf"):
                raise SettingsError(f"{flag}: must be a positive number of seconds, got {value}")
        if not self.retry_base_seconds <= self.retry_max_seconds < float("inf"):
            raise SettingsError(
                f"--retry-max-seconds: must be at least --retry-base-seconds "
                f"({self.retry_base_seconds}), got {self.retry_max_seconds}"
            )
        if not 0 <= self.max_retries <= 1000:
            raise SettingsError(f"--max-retries: must be 0 to 1000, got {self.max_retries}")
        if self.key_prefix and self.transport is not Transport.REDIS:
            raise SettingsError("--key-prefix: only a Redis broker has key prefixes")
        if any(ch.isspace() or ch == "," for ch in self.key_prefix) or len(self.key_prefix) > 100:
            raise SettingsError("--key-prefix: at most 100 characters, no whitespace or commas")
        override = self.visibility_timeout_override
        if override is not None and not self.minimum_visibility_seconds < override < float("inf"):
            raise SettingsError(
                f"--visibility-timeout: must exceed --max-generation-seconds + "
                f"--connect-timeout-seconds + --retry-max-seconds "
                f"({self.minimum_visibility_seconds:g} s), got {override:g}"
            )

    @property
    def transport(self) -> Transport:
        return transport_of(self.broker_url)

    @property
    def minimum_visibility_seconds(self) -> float:
        """The longest a worker holds one message before acking it, seconds: a retry's countdown
        (at most ``retry_max_seconds``), then connecting and the whole generation."""
        return self.retry_max_seconds + self.connect_timeout_seconds + self.max_generation_seconds

    @property
    def visibility_timeout_seconds(self) -> float:
        """Seconds a Redis broker waits for an ack before handing a message to another worker:
        the longest hold plus a margin, unless overridden. Shorter would run a long generation
        twice; longer only delays the redelivery of a dead worker's tasks."""
        if self.visibility_timeout_override is not None:
            return self.visibility_timeout_override
        return self.minimum_visibility_seconds + self.VISIBILITY_MARGIN_SECONDS

    @property
    def restore_interval_seconds(self) -> float:
        """Seconds between a Redis worker's sweeps for messages past their visibility timeout
        (kombu ``unacked_restore_interval``, with the throttle set to 1): a tenth of the
        visibility timeout, between 1 and 10 s, so redelivery comes within 10% of it."""
        return min(10.0, max(1.0, self.visibility_timeout_seconds / 10))

    def redacted(self) -> dict[str, object]:
        """The settings as a log record, URLs without passwords."""
        return {
            "broker": redact(self.broker_url),
            "result_backend": redact(self.result_backend),
            "model": self.model,
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "vllm_url": self.vllm_url,
            "max_generation_seconds": self.max_generation_seconds,
            "visibility_timeout_seconds": self.visibility_timeout_seconds,
            "max_retries": self.max_retries,
            "key_prefix": self.key_prefix,
        }


# Every setting's environment variable, for ``celery -A worker.app worker`` and as the fallback
# of each ``depthscale worker`` flag (a flag wins). Unset variables take the defaults above.
ENV_VARS: dict[str, str] = {
    "broker_url": BROKER_URL_ENV,
    "result_backend": RESULT_BACKEND_ENV,
    "model": "DEPTHSCALE_MODEL",
    "queues": "DEPTHSCALE_QUEUES",
    "concurrency": "DEPTHSCALE_CONCURRENCY",
    "vllm_url": "DEPTHSCALE_VLLM_URL",
    "max_generation_seconds": "DEPTHSCALE_MAX_GENERATION_SECONDS",
    "connect_timeout_seconds": "DEPTHSCALE_CONNECT_TIMEOUT_SECONDS",
    "retry_base_seconds": "DEPTHSCALE_RETRY_BASE_SECONDS",
    "retry_max_seconds": "DEPTHSCALE_RETRY_MAX_SECONDS",
    "max_retries": "DEPTHSCALE_MAX_RETRIES",
    "visibility_timeout_override": "DEPTHSCALE_VISIBILITY_TIMEOUT",
    "key_prefix": "DEPTHSCALE_KEY_PREFIX",
}


def _number(name: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name}: must be {noun}, got {text!r}") from None


def settings_from_env(env: Mapping[str, str]) -> WorkerSettings:
    """Settings from environment variables (``ENV_VARS``); the model's queue defaults to the
    model's name. Errors name the variable."""
    values: dict[str, object] = {}
    for field, var in ENV_VARS.items():
        text = env.get(var, "").strip()
        if not text:
            continue
        if field == "queues":
            values[field] = parse_queues(text, var)
        elif field in ("concurrency", "max_retries"):
            values[field] = _number(var, text, int)
        elif field in ("broker_url", "result_backend", "model", "vllm_url", "key_prefix"):
            values[field] = text
        else:
            values[field] = _number(var, text, float)
    for field in ("broker_url", "result_backend", "model"):
        if field not in values:
            raise SettingsError(f"{ENV_VARS[field]}: required")
    values.setdefault("queues", (values["model"],))
    return WorkerSettings(**values)  # type: ignore[arg-type]
