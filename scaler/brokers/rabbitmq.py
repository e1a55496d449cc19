"""Celery queue depth on a RabbitMQ broker (AMQP 0-9-1), counted as RabbitMQ and KEDA count it.

What is read (docs/rabbitmq.md has the sources):

- **pending**: each queue's ready messages, from a passive ``queue.declare`` (its ``DeclareOk``
  ``message_count``), summed over the spec's queues. That is kombu's ``queue_declare(passive=True)``
  and KEDA's rabbitmq scaler in AMQP mode (``QueueDeclarePassive``). Priorities are native in
  RabbitMQ: one queue declared with ``x-max-priority`` holds every priority, so the one count covers
  them all (kombu's Redis emulation needs a list per step; RabbitMQ does not).
- **in flight** (only when ``spec.include_unacked``): each queue's ``messages_unacknowledged`` from
  the management HTTP API, ``GET /api/queues/<vhost>/<queue>``, as KEDA's HTTP mode reads it. The
  management API refreshes these statistics every ``collect_statistics_interval`` (5 s by default),
  so the count lags the live ready count by up to that. Without a management URL an in-flight read
  is a configuration error, never a made-up 0.
- **a queue that does not exist** is an error (``QueueNotFound``, UNAVAILABLE to KEDA), as in both of
  KEDA's modes: the passive declare fails with 404 NOT_FOUND, the HTTP API answers 404. Celery
  declares a queue when it first publishes to it and when a worker starts consuming it, so a missing
  queue means a wrong name or vhost, or a model that never had a task.

The URL (kombu's conventions, ``kombu/utils/url.py``):
``amqp[s]://USER:PASSWORD@HOST[:PORT]/VHOST?management=http[s]://HOST:15672&ssl_ca_certs=...``

- scheme ``amqp`` (port 5672) or ``amqps`` (TLS, port 5671); ``pyamqp`` as Celery spells it too;
- user and password percent-decoded, ``guest``/``guest`` when absent (kombu's defaults);
- the vhost is the percent-decoded path after the first ``/``; an empty path is ``/``, and so are
  ``amqp://host//`` and ``amqp://host/%2F``;
- ``management``: the management API's base URL (``http`` or ``https``, an optional path prefix),
  without credentials: the API is called with the AMQP URL's user and password, so there is one
  secret to keep and redact;
- TLS for ``amqps`` and an ``https`` management URL alike: ``ssl_ca_certs`` (CA file; otherwise the
  system's trust, or ``SSL_CERT_FILE``), ``ssl_certfile`` and ``ssl_keyfile`` (a client
  certificate), ``ssl_cert_reqs`` (``required``, the default, or ``none``), ``ssl_check_hostname``
  (``false`` to skip the name check only), kombu's names for the same settings.

One AMQP connection per reader, reused by every read; each read takes channels from a small pool
(a channel stays open between reads; one the server closed, after a 404, is replaced). The queues
of a read are declared concurrently on separate channels, so a read costs one round trip, and the
management GETs run alongside on kept-alive HTTP connections. A failed or timed-out read drops the
connection and the next read connects afresh. Nothing is ever written or declared for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import aiormq
import httpx
from aiormq.abc import AbstractChannel
from yarl import URL

from scaler.brokers.redact import redact_text, redact_url
from scaler.metadata import MetadataError
from scaler.ports import BrokerTimeout, BrokerUnavailable, Depth, QueueSpec

SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
DEFAULT_PORTS = {"amqp": 5672, "pyamqp": 5672, "amqps": 5671}
_OPTIONS = frozenset(
    {
        "management",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "ssl_check_hostname",
    }
)
# kombu.utils.url.parse_ssl_cert_reqs's spellings; for a client, CERT_OPTIONAL verifies like
# CERT_REQUIRED (Python's ssl module), so it is accepted as "required".
_CERT_REQS = {
    "required": True, "cert_required": True, "optional": True, "cert_optional": True,
    "none": False, "cert_none": False,
}  # fmt: skip

# aiormq logs every failed connection attempt and every dropped connection at ERROR/WARNING; each
# of those is raised to this reader and reported once by the service (UNAVAILABLE, the
# broker-errors metric), so aiormq's own lines would only repeat it on every read of an outage.
logging.getLogger("aiormq").setLevel(logging.CRITICAL)


class QueueNotFound(BrokerUnavailable):
    """A queue of the spec does not exist in the vhost (404 NOT_FOUND), as KEDA reports it."""


class BrokerResponseError(BrokerUnavailable):
    """RabbitMQ answered, but not with a count (refused the read, or an unexpected reply)."""


@dataclass(frozen=True, slots=True)
class AmqpEndpoint:
    """Where and how to reach one RabbitMQ vhost.

    port: TCP port of the AMQP listener. vhost: the virtual host, decoded (``/`` by default).
    management: the management API's base URL without credentials (no trailing ``/``), or None.
    verify: check the server's certificate chain; check_hostname: also its name (needs verify).
    """

    host: str
    port: int
    username: str
    password: str
    vhost: str
    tls: bool
    management: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        """Some connection of the reader is TLS: AMQP (``amqps``) or the management API."""
        return self.tls or (self.management or "").startswith("https:")

    def ssl_context(self) -> ssl.SSLContext:
        """One client context for the AMQP and management connections alike."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif not self.check_hostname:
            context.check_hostname = False
        return context


def endpoint_from_url(url: str) -> AmqpEndpoint:
    """Parse an ``amqp://``/``amqps://`` URL; ValueError naming the bad part, never a secret."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not one of {', '.join(sorted(SCHEMES))}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError("port is not a number in 1-65535") from None
    if not parts.hostname:
        raise ValueError("no host")
    if parts.fragment:
        raise ValueError("a fragment ('#...') has no meaning in a broker URL")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(sorted(_OPTIONS))})")
        if key in query:
            raise ValueError(f"option {key!r} given twice")
        query[key] = value
    management = _management_url(query["management"]) if "management" in query else None
    cert_reqs = query.get("ssl_cert_reqs", "required")
    if cert_reqs.lower() not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs {cert_reqs!r} is not 'required' or 'none'")
    endpoint = AmqpEndpoint(
        host=parts.hostname,
        port=port,
        # kombu: an empty user or password is no user or password, and those default to guest.
        username=unquote(parts.username or "") or "guest",
        password=unquote(parts.password or "") or "guest",
        vhost=unquote(parts.path[1:]) or "/",
        tls=scheme == "amqps",
        management=management,
        ca_file=query.get("ssl_ca_certs") or None,
        cert_file=query.get("ssl_certfile") or None,
        key_file=query.get("ssl_keyfile") or None,
        verify=_CERT_REQS[cert_reqs.lower()],
        check_hostname=query.get("ssl_check_hostname", "true").lower() != "false",
    )
    tls_options = sorted(k for k in query if k.startswith("ssl_"))
    if tls_options and not endpoint.uses_tls:
        raise ValueError(
            f"{', '.join(tls_options)} need TLS: an amqps:// URL or an https management URL"
        )
    if endpoint.key_file and not endpoint.cert_file:
        raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate)")
    return endpoint


def _management_url(value: str) -> str:
    """The management API's base URL: http(s), a host, no credentials, query or fragment."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("management must be an http:// or https:// URL with a host")
    if "@" in parts.netloc:
        raise ValueError(
            "management URL must not carry credentials: the API is called with the "
            "amqp URL's user and password"
        )
    if parts.query or parts.fragment:
        raise ValueError("management URL takes no query or fragment")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError("management port is not a number in 1-65535") from None
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"


class RabbitMQBrokerReader:
    """``ports.BrokerReader`` for a Celery RabbitMQ broker.

    url:          ``amqp://``, ``amqps://`` URL (module docstring); its password never appears in
                  errors.
    timeout_s:    whole-read deadline, seconds (> 0), connecting and waiting for a channel
                  included: a read not finished by then raises ``BrokerTimeout``; a refused or
                  dropped connection raises ``BrokerUnavailable``. Nothing is retried.
    max_channels: channels open at once on the connection (reads beyond it wait), and HTTP
                  connections to the management API.
    """

    def __init__(self, url: str, timeout_s: float = 1.0, *, max_channels: int = 64) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        self._url = url
        self._timeout_s = timeout_s
        self.safe_url = redact_url(url)
        try:
            self.endpoint = endpoint_from_url(url)
        except ValueError as exc:
            raise ValueError(
                f"bad broker URL {self.safe_url}: {redact_text(str(exc), url)}"
            ) from None
        ep = self.endpoint
        # Whether ``include_unacked`` reads can be answered: a caller may check it up front and
        # refuse the trigger, naming the broker, instead of waiting for the read's config error.
        self.counts_in_flight = ep.management is not None
        self._ssl = ep.ssl_context() if ep.uses_tls else None
        # aiormq reads host, port, user and password from this URL; the vhost is set apart
        # (Connection.vhost) so that no path encoding rule stands between it and RabbitMQ.
        self._amqp_url = URL.build(
            scheme="amqps" if ep.tls else "amqp",
            host=ep.host,
            port=ep.port,
            user=ep.username,
            password=ep.password,
            query={"name": "depthscale-scaler"},
        )
        self._conn: aiormq.Connection | None = None
        self._connect_lock = asyncio.Lock()
        self._idle: list[AbstractChannel] = []
        self._slots = asyncio.Semaphore(max_channels)
        self._closing: set[asyncio.Task[None]] = set()
        self._max_channels = max_channels
        self._http: httpx.AsyncClient | None = None

    # ---- the read --------------------------------------------------------------------------

    async def read(self, spec: QueueSpec) -> Depth:
        """Ready (and, if asked, unacked) messages of ``spec``'s queues, summed."""
        # These two reach KEDA as INVALID_ARGUMENT: they say what is wrong without the broker's
        # location (its host and user stay in the scaler's own configuration and logs).
        if spec.key_prefix:
            raise MetadataError(
                "keyPrefix", "is kombu's Redis-only global_keyprefix; this broker is RabbitMQ"
            )
        if spec.include_unacked and not self.counts_in_flight:
            raise MetadataError(
                "includeUnacked",
                "this RabbitMQ broker has no management API configured, so unacked messages "
                "cannot be counted: the scaler's operator adds ?management=http://HOST:15672 to "
                "the broker's URL",
            )
        queues = spec.queues
        try:
            async with asyncio.timeout(self._timeout_s):
                jobs = [self._ready(q) for q in queues]
                if spec.include_unacked:
                    jobs += [self._unacked(q) for q in queues]
                results = await asyncio.gather(*jobs, return_exceptions=True)
        except TimeoutError:
            raise BrokerTimeout(
                f"rabbitmq broker {self.safe_url} did not answer within {self._timeout_s:g} s"
            ) from None
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise self._error(failures[0]) from None
        counts = [r for r in results if isinstance(r, int)]
        pending = sum(counts[: len(queues)])
        if spec.include_unacked:
            return Depth(pending=pending, in_flight=sum(counts[len(queues) :]))
        return Depth(pending=pending)

    async def _ready(self, queue: str) -> int:
        """The queue's ready messages: one passive declare on a pooled channel."""
        async with self._slots:
            conn = await self._connection()
            channel = self._idle.pop() if self._idle else None
            if channel is None or channel.is_closed:
                channel = await conn.channel(publisher_confirms=False)
            healthy = False
            try:
                ok = await channel.queue_declare(queue, passive=True)
                healthy = True
            except aiormq.exceptions.ChannelClosed as exc:
                healthy = True  # the server closed the channel, not the connection
                if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
                    raise QueueNotFound(self._not_found(queue, "404 NOT_FOUND")) from None
                raise
            finally:
                if not healthy:  # timed out or the connection failed: start afresh next time
                    self._drop(conn)
                elif not channel.is_closed and conn is self._conn:
                    self._idle.append(channel)
        count = ok.message_count
        if not isinstance(count, int) or count < 0:
            raise BrokerResponseError(
                f"rabbitmq broker {self.safe_url}: queue {queue!r} reported {count!r} messages"
            )
        return count

    async def _unacked(self, queue: str) -> int:
        """The queue's ``messages_unacknowledged`` from the management API."""
        client = self._client()
        vhost = quote(self.endpoint.vhost, safe="")
        response = await client.get(f"/api/queues/{vhost}/{quote(queue, safe='')}")
        if response.status_code == 404:
            raise QueueNotFound(self._not_found(queue, "the management API answered 404"))
        if response.status_code in (401, 403):
            raise BrokerUnavailable(
                f"rabbitmq management API of {self.safe_url} refused the user "
                f"({response.status_code}): it needs the 'management' (or 'monitoring') tag and "
                f"access to vhost {self.endpoint.vhost!r}"
            )
        if response.status_code != 200:
            raise BrokerUnavailable(
                f"rabbitmq management API of {self.safe_url} answered {response.status_code}"
            )
        try:
            count = response.json().get("messages_unacknowledged")
        except (ValueError, AttributeError):
            count = None
        if count is None:
            # A queue whose statistics the API has not collected yet (just declared) has no
            # counters; that is not a 0 the server stated, so it is an error like any other.
            raise BrokerResponseError(
                f"rabbitmq management API of {self.safe_url}: no messages_unacknowledged for "
                f"queue {queue!r} yet"
            )
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BrokerResponseError(
                f"rabbitmq management API of {self.safe_url}: messages_unacknowledged of queue "
                f"{queue!r} is {count!r}"
            )
        return count

    # ---- connections -----------------------------------------------------------------------

    async def _connection(self) -> aiormq.Connection:
        """The open AMQP connection, connecting once for every reader waiting on it."""
        conn = self._conn
        if conn is not None and not conn.is_closed:
            return conn
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and not conn.is_closed:
                return conn
            self._idle.clear()
            conn = aiormq.Connection(
                self._amqp_url,
                context=self._ssl,
                client_properties={"connection_name": "depthscale-scaler"},
            )
            conn.vhost = self.endpoint.vhost
            await conn.connect()
            self._conn = conn
            return conn

    def _drop(self, conn: aiormq.Connection) -> None:
        """Forget ``conn`` (the next read connects afresh) and close it in the background, within
        the read deadline: a hung server must not hold anyone."""
        if self._conn is conn:
            self._conn = None
            self._idle.clear()
        if not conn.is_closed:
            task = asyncio.get_running_loop().create_task(self._close_quietly(conn))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close_quietly(self, conn: aiormq.Connection) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection: nothing to report
            await asyncio.wait_for(conn.close(), self._timeout_s)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            ep = self.endpoint
            assert ep.management is not None
            self._http = httpx.AsyncClient(
                base_url=ep.management,
                auth=httpx.BasicAuth(ep.username, ep.password),
                verify=self._ssl if self._ssl is not None else True,
                timeout=httpx.Timeout(self._timeout_s),
                limits=httpx.Limits(
                    max_connections=self._max_channels, max_keepalive_connections=8
                ),
                trust_env=False,  # no proxy from the environment between the scaler and its broker
                follow_redirects=False,
            )
        return self._http

    # ---- errors ----------------------------------------------------------------------------

    def _not_found(self, queue: str, how: str) -> str:
        return (
            f"rabbitmq broker {self.safe_url}: queue {queue!r} does not exist in vhost "
            f"{self.endpoint.vhost!r} ({how}); Celery declares it on the first task sent to it or "
            "when a worker starts: check the queue name and the vhost"
        )

    def _error(self, exc: BaseException) -> BrokerUnavailable:
        """One ``BrokerUnavailable`` for any failure of a read, its text free of the password."""
        if isinstance(exc, BrokerUnavailable):
            return exc
        if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
            reason = redact_text(str(exc), self._url)
            return BrokerResponseError(
                f"rabbitmq broker {self.safe_url} refused the read: {reason} (the user needs a "
                "permission on the queue: read is enough)"
            )
        if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
            return BrokerTimeout(
                f"rabbitmq broker {self.safe_url} did not answer within {self._timeout_s:g} s"
            )
        if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
            return BrokerUnavailable(
                f"rabbitmq broker {self.safe_url} refused the login: "
                f"{redact_text(str(exc), self._url)}"
            )
        text = redact_text(_describe(exc), self._url)
        where = "management API of " if isinstance(exc, httpx.HTTPError) else ""
        return BrokerUnavailable(f"rabbitmq {where}broker {self.safe_url} unavailable: {text}")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._idle.clear()
        if conn is not None and not conn.is_closed:
            await self._close_quietly(conn)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _describe(exc: BaseException) -> str:
    """A short reason: the exception's text, or its type when it has none."""
    text = str(exc)
    args: Any = getattr(exc, "args", ())
    if not text and args:
        text = " ".join(str(a) for a in args)
    return text or type(exc).__name__
