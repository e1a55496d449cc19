"""Broker readers: how many Celery tasks wait in each model's queues.

``open_broker(url)`` picks the reader for a URL's scheme: Redis (``redis://``, ``rediss://``,
``unix://``) or RabbitMQ (``amqp://``, ``amqps://``, Celery's ``pyamqp://``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit as _urlsplit

from scaler.brokers.redact import redact_text, redact_url
from scaler.brokers.redis import RedisBrokerReader

if TYPE_CHECKING:
    from scaler.ports import BrokerReader

__all__ = [
    "AMQP_SCHEMES",
    "REDIS_SCHEMES",
    "RedisBrokerReader",
    "check_broker_url",
    "open_broker",
    "redact_text",
    "redact_url",
]

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})


def check_broker_url(url: str) -> None:
    """ValueError unless a reader exists for ``url``'s scheme and, for RabbitMQ, the URL's options
    parse; names the scheme or the bad part, never the password. Connects to nothing."""
    scheme = _urlsplit(url).scheme.lower()
    if scheme in AMQP_SCHEMES:
        from scaler.brokers.rabbitmq import endpoint_from_url

        try:
            endpoint_from_url(url)
        except ValueError as exc:
            raise ValueError(
                f"bad broker URL {redact_url(url)}: {redact_text(str(exc), url)}"
            ) from None
        return
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"unsupported broker URL scheme {scheme!r} in {redact_url(url)} "
            f"(supported: {', '.join(sorted(REDIS_SCHEMES | AMQP_SCHEMES))})"
        )


def open_broker(url: str, timeout_s: float = 1.0) -> BrokerReader:
    """A reader for ``url`` (``redis://``, ``rediss://``, ``unix://``, ``amqp://``, ``amqps://``,
    ``pyamqp://``); ValueError otherwise, naming the scheme, never the password."""
    check_broker_url(url)
    if _urlsplit(url).scheme.lower() in AMQP_SCHEMES:
        # Imported here: aiormq and httpx are needed only by a scaler with a RabbitMQ broker.
        from scaler.brokers.rabbitmq import RabbitMQBrokerReader

        return RabbitMQBrokerReader(url, timeout_s)
    return RedisBrokerReader(url, timeout_s)
