"""Broker readers: how many Celery tasks wait in each model's queues.

``open_broker(url)`` picks the reader for a URL's scheme. Only Redis is implemented; RabbitMQ is
out of scope for now and is refused with a clear error.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from scaler.brokers.redact import redact_text, redact_url
from scaler.brokers.redis import RedisBrokerReader
from scaler.ports import BrokerReader

__all__ = ["RedisBrokerReader", "open_broker", "redact_text", "redact_url"]

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def open_broker(url: str, timeout_s: float = 1.0) -> BrokerReader:
    """A reader for ``url`` (``redis://``, ``rediss://``, ``unix://``); ValueError otherwise,
    naming the scheme, never the password."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in REDIS_SCHEMES:
        return RedisBrokerReader(url, timeout_s)
    raise ValueError(
        f"unsupported broker URL scheme {scheme!r} in {redact_url(url)} "
        f"(supported: {', '.join(sorted(REDIS_SCHEMES))})"
    )
