"""The demo's broker and result backend, private to one run.

- ``redis``: a private ``redis-server`` (``demo.local_redis``): database 0 the Celery broker,
  database 1 the result backend.
- ``rabbitmq``: the node at ``rabbitmq_url``. When that URL names the default vhost (``/``), a
  private vhost ``depthscale-demo-…`` is made for the run with ``rabbitmqctl`` and deleted after
  (its queues with it); a URL naming a vhost of its own is used as it is. Results go to a
  private ``redis-server``. The URL's ``?management=`` option (the management API, for in-flight
  counts) goes to the scaler only; Celery gets the URL without it.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from demo.local_redis import LocalRedis
from demo.settings import ReplaySettings
from scaler.brokers.rabbitmq import RabbitMQBrokerReader
from scaler.brokers.redis import RedisBrokerReader
from scaler.ports import BrokerReader
from worker.queues import declared_queue

RABBITMQCTL_TIMEOUT_S = 60.0


class DemoBrokerError(RuntimeError):
    """The broker could not be set up; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Brokers:
    """broker_url: Celery's broker. scaler_url: the scaler's (with ``?management=``).
    result_backend: Celery's result backend. kind: ``redis`` or ``rabbitmq``."""

    kind: str
    broker_url: str
    scaler_url: str
    result_backend: str

    def reader(self) -> BrokerReader:
        if self.kind == "redis":
            return RedisBrokerReader(self.scaler_url, timeout_s=1.0)
        return RabbitMQBrokerReader(self.scaler_url, timeout_s=1.0)

    def declare(self, queues: Sequence[str]) -> None:
        """Declare the queues as the workers will (RabbitMQ counts only declared queues; kombu's
        Redis lists need nothing)."""
        if self.kind != "rabbitmq":
            return
        from celery import Celery

        app = Celery("depthscale-demo", broker=self.broker_url, set_as_current=False)
        try:
            with app.connection_for_write() as connection:
                for name in queues:
                    declared_queue(name)(connection.default_channel).declare()  # type: ignore[no-untyped-call]
        finally:
            app.close()


@contextmanager
def open_brokers(settings: ReplaySettings) -> Iterator[Brokers]:
    """The run's broker and result backend, removed when the block ends."""
    with LocalRedis() as results:
        backend = f"redis://127.0.0.1:{results.port}/1"
        if settings.broker == "redis":
            yield Brokers("redis", results.url, results.url, backend)
            return
        parts = urlsplit(settings.rabbitmq_url)
        vhost = parts.path[1:] if parts.path.startswith("/") else parts.path
        if vhost not in ("", "/", "%2F", "%2f"):
            yield Brokers("rabbitmq", _without_query(parts), settings.rabbitmq_url, backend)
            return
        private = f"depthscale-demo-{uuid.uuid4().hex[:10]}"
        ctl = _rabbitmqctl()
        _ctl(ctl, "add_vhost", private)
        try:
            _ctl(ctl, "set_permissions", "-p", private, parts.username or "guest", ".*", ".*", ".*")
            scoped = parts._replace(path="/" + quote(private, safe=""))
            yield Brokers("rabbitmq", _without_query(scoped), urlunsplit(scoped), backend)
        finally:
            _ctl(ctl, "delete_vhost", private)


def _without_query(parts: SplitResult) -> str:
    return urlunsplit(parts._replace(query=""))


def _rabbitmqctl() -> str:
    found = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin")
    if found is None:
        raise DemoBrokerError(
            "rabbitmqctl not found: it makes the run's private vhost; install RabbitMQ, or pass "
            "--rabbitmq-url naming a vhost of your own (amqp://user:password@host:5672/VHOST)"
        )
    return found


def _ctl(ctl: str, *args: str) -> None:
    try:
        subprocess.run([ctl, *args], check=True, capture_output=True, timeout=RABBITMQCTL_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        raise DemoBrokerError(
            f"rabbitmqctl {' '.join(args)} failed: {output.decode(errors='replace').strip()}"
        ) from None
