"""Broker readers: how many Celery tasks wait in each model's queues.

``open_broker(url)`` picks the reader for a URL's scheme. Only Redis is implemented; RabbitMQ is
out of scope for now and is refused with a clear error.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from scaler.brokers.redact import redact_text, redact_url
from scaler.brokers.redis import RedisBrokerReader
from scaler.ports import BrokerReader

__all__ = ["RedisBrokerReader", "check_broker_url", "open_broker", "redact_text", "redact_url"]

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def check_broker_url(url: str) -> None:
    """ValueError unless a reader exists for ``url``'s scheme; names the scheme, never the
    password. Connects to nothing."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"unsupported broker URL scheme {scheme!r} in {redact_url(url)} "
            f"(supported: {', '.join(sorted(REDIS_SCHEMES))})"
        )


def open_broker(url: str, timeout_s: float = 1.0) -> BrokerReader:
    """A reader for ``url`` (``redis://``, ``rediss://``, ``unix://``); ValueError otherwise,
    naming the scheme, never the password."""
    check_broker_url(url)
    return RedisBrokerReader(url, timeout_s)
