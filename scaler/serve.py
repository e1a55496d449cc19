"""``depthscale serve``: run the KEDA external scaler.

Brokers are the scaler's own configuration, never ScaledObject metadata (kedacore/keda v2.20: externalscaler.proto and the metrics adapter: KEDA does
not forward TriggerAuthentication secrets to external scalers). Three sources, merged, a name
defined twice being an error:

- ``--broker NAME=URL`` (repeatable);
- ``DEPTHSCALE_BROKERS``: ``NAME=URL`` entries separated by whitespace or newlines (for a Secret
  exposed as an environment variable);
- ``--brokers-file PATH``: one ``NAME=URL`` per line, ``#`` comments (for a Secret mounted as a
  file).

Every error is one line on stderr and a non-zero exit; a URL in an error has its password hidden.

``--replicas-from`` says where the policy learns how many replicas run: ``decisions`` (its own
past decisions, kept with its state) or ``kubernetes`` (each ScaledObject's target read from the
API server with the pod's service account, ``scaler/kube.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from policies.observe import REPLICA_SOURCES
from scaler.access import BrokerOptions, split_options
from scaler.brokers import check_broker_url, open_broker
from scaler.brokers.redact import redact_text, redact_url, secrets_of
from scaler.brokers.resp import endpoint_from_url
from scaler.ports import BrokerReader, StateStore

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from scaler.kube import ReplicaSource

log = logging.getLogger("depthscale.serve")

BROKERS_ENV = "DEPTHSCALE_BROKERS"
STATE_ENV = "DEPTHSCALE_STATE"
REPLICAS_FROM_ENV = "DEPTHSCALE_REPLICAS_FROM"
_BROKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_STATE_SCHEMES = frozenset({"redis", "rediss", "unix"})


class StartupError(click.ClickException):
    """A bad flag, environment value or file line; shown as one ``Error: ...`` line, exit 1."""


_NOT_SHOWN = "(the value is not shown: it may hold a password)"


def parse_broker_entry(entry: str, where: str) -> tuple[str, str]:
    """``NAME=URL`` → (name, url); ``where`` names the source in the error. An entry that does
    not parse is never echoed: it may be a URL whose password broke its shape."""
    name, sep, url = entry.partition("=")
    name, url = name.strip(), url.strip()
    if not sep or not url or "://" in name:
        raise StartupError(f"{where}: expected NAME=URL {_NOT_SHOWN}")
    if not _BROKER_NAME.match(name):
        # A name is shown only when it cannot be a piece of a URL (a password may hold '=').
        quoted = repr(name) if len(name) <= 63 and not set(name) & set(":/@%") else "(not shown)"
        raise StartupError(
            f"{where}: broker name {quoted} must be letters, digits, '.', '_', '-' (<= 63)"
        )
    if "://" not in url:
        raise StartupError(f"{where}: broker {name!r}: not a URL (scheme://…) {_NOT_SHOWN}")
    return name, url


def collect_brokers(
    flags: Iterable[str], env_value: str | None, file: Path | None
) -> dict[str, str]:
    """Merge the three sources into name → URL; a name defined twice is an error."""
    found: dict[str, tuple[str, str]] = {}

    def add(entry: str, where: str) -> None:
        name, url = parse_broker_entry(entry, where)
        if name in found:
            raise StartupError(f"{where}: broker {name!r} is already defined by {found[name][1]}")
        found[name] = (url, where)

    for flag in flags:
        add(flag, "--broker")
    if env_value:
        for entry in env_value.split():
            add(entry, BROKERS_ENV)
    if file is not None:
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise StartupError(f"--brokers-file {file}: {exc.strerror}") from None
        for number, line in enumerate(lines, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                add(line, f"--brokers-file {file} line {number}")
    if not found:
        raise StartupError(
            f"no brokers configured: give --broker NAME=URL, {BROKERS_ENV} or --brokers-file"
        )
    return {name: url for name, (url, _) in found.items()}


def check_state(value: str) -> str:
    """``memory`` or a Redis URL that parses (checked without connecting)."""
    if value == "memory":
        return value
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme not in _STATE_SCHEMES:
        raise StartupError(f"--state: expected 'memory' or a redis:// URL {_NOT_SHOWN}")
    with _url_errors("--state", value):
        endpoint_from_url(value)
    return value


@contextlib.contextmanager
def _url_errors(where: str, url: str) -> Iterator[None]:
    """Turn a URL's ValueError into one StartupError line that cannot carry its password: the
    URL shown is redacted on its text, and the parser's message is dropped altogether when the
    URL holds a secret (a parser quoting a fragment of a malformed URL may quote part of it)."""
    try:
        yield
    except ValueError as exc:
        detail = redact_text(str(exc), url)
        if any(_shares_a_piece(secret, detail) for secret in secrets_of(url)):
            detail = "check the port, the database number and the password's percent-encoding"
        raise StartupError(f"{where}: {redact_url(url)}: {detail}") from None


def _shares_a_piece(secret: str, text: str, piece: int = 4) -> bool:
    """Whether ``text`` holds any ``piece`` characters in a row of ``secret`` (all of it when
    shorter): a parser may quote part of a malformed URL, and so part of its password."""
    if len(secret) <= piece:
        return secret in text
    return any(secret[i : i + piece] in text for i in range(len(secret) - piece + 1))


def split_broker_options(
    urls: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, BrokerOptions]]:
    """The brokers' URLs without depthscale's parameters, and the options those set; every URL
    is checked to parse for its reader, without connecting."""
    clean: dict[str, str] = {}
    options: dict[str, BrokerOptions] = {}
    for name, url in urls.items():
        with _url_errors(f"broker {name!r}", url):
            clean[name], options[name] = split_options(url)
            check_broker_url(clean[name])
    return clean, options


def check_port_free(host: str, port: int, flag: str) -> None:
    """Fail early, in one line, when ``port`` is taken (gRPC's own bind error is noisier)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"{flag} {port}: cannot listen on {host}: {exc.strerror}") from None


def open_brokers(urls: Mapping[str, str], timeout_s: float) -> dict[str, BrokerReader]:
    readers: dict[str, BrokerReader] = {}
    for name, url in urls.items():
        with _url_errors(f"broker {name!r}", url):
            readers[name] = open_broker(url, timeout_s)
    return readers


def open_state(value: str, timeout_s: float) -> StateStore:
    from scaler.state_store import MemoryStateStore, RedisStateStore

    if value == "memory":
        return MemoryStateStore()
    with _url_errors("--state", value):
        return RedisStateStore(value, timeout_s=timeout_s)


def open_replicas(
    source: str, *, cache_s: float, timeout_s: float, registry: CollectorRegistry
) -> ReplicaSource | None:
    """``decisions`` → None (the policy counts on its own decisions); ``kubernetes`` → the pod's
    in-cluster API access, answered from watches (``cache_s`` is not needed: a count is as fresh
    as the last event), waiting at most ``timeout_s`` for a namespace's first list."""
    if source == "decisions":
        return None
    from scaler.kube import KubeReplicaSource

    return KubeReplicaSource.in_cluster(timeout_s=timeout_s, registry=registry)


class _OneLineErrors(click.Command):
    """Bad flags are reported as one ``Error:`` line (click would add usage lines)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if isinstance(exc, click.exceptions.NoArgsIsHelpError):
                raise
            raise StartupError(exc.format_message()) from None


@click.command(cls=_OneLineErrors)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9090,
    show_default=True,
    help="gRPC port KEDA dials (the trigger's scalerAddress).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9100,
    show_default=True,
    help="Prometheus /metrics port; 0 turns the endpoint off.",
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--broker",
    "brokers",
    multiple=True,
    metavar="NAME=URL",
    help=f"A broker the metadata may name (repeatable). Also {BROKERS_ENV}.",
)
@click.option(
    "--brokers-file",
    type=click.Path(path_type=Path),
    default=None,
    help="File of NAME=URL lines (a mounted Secret).",
)
@click.option(
    "--state",
    default="memory",
    show_default=True,
    envvar=STATE_ENV,
    help="Policy state: 'memory' (one replica) or a redis:// URL (shared, survives "
    f"restarts). Also {STATE_ENV}.",
)
@click.option(
    "--replicas-from",
    type=click.Choice(REPLICA_SOURCES),
    default="decisions",
    show_default=True,
    envvar=REPLICAS_FROM_ENV,
    help="Where the policy learns how many replicas run: its own past 'decisions', or each "
    "ScaledObject's target read from the 'kubernetes' API (needs get on scaledobjects.keda.sh "
    f"and deployments/statefulsets.apps). Also {REPLICAS_FROM_ENV}.",
)
@click.option(
    "--cache-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds one evaluation answers all RPCs of a trigger.",
)
@click.option(
    "--broker-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds a broker read may take before UNAVAILABLE (and a Kubernetes API read before "
    "its counts are ignored).",
)
@click.option(
    "--stream-poll-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Seconds between broker reads of each StreamIsActive.",
)
@click.option(
    "--trigger-idle-seconds",
    type=click.FloatRange(min=60),
    default=900.0,
    show_default=True,
    help="Seconds after which a trigger KEDA no longer asks about is forgotten: its cached "
    "answer and its Prometheus series go.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="DEPTHSCALE_TLS_CERT",
    help="PEM certificate chain: the gRPC port (health included) speaks only TLS, reloaded when "
    "the file changes (docs/tls.md). Needs --tls-key. Also DEPTHSCALE_TLS_CERT.",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="DEPTHSCALE_TLS_KEY",
    help="PEM private key of --tls-cert. Also DEPTHSCALE_TLS_KEY.",
)
@click.option(
    "--tls-client-ca",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="DEPTHSCALE_TLS_CLIENT_CA",
    help="PEM CA certificates: clients must present a certificate they issued (mutual TLS, "
    "KEDA's tlsClientCert). Also DEPTHSCALE_TLS_CLIENT_CA.",
)
def serve(**options: Any) -> None:  # fmt: skip
    """Run the KEDA external scaler (gRPC) for Celery queues on Redis."""
    from scaler import logs

    urls = collect_brokers(options["brokers"], os.environ.get(BROKERS_ENV), options["brokers_file"])
    # every broker URL is checked before any port is bound
    urls, access = split_broker_options(urls)
    state = check_state(options["state"])
    check_port_free(options["host"], options["port"], "--port")
    if options["metrics_port"]:
        check_port_free(options["host"], options["metrics_port"], "--metrics-port")
    logs.configure(options["log_level"])
    for name, broker_options in sorted(access.items()):
        if broker_options.namespaces is None:
            log.warning(
                "broker %r is open to every namespace's ScaledObjects; add namespaces=… to its "
                "URL to restrict it (docs/security.md)",
                name,
                extra={"fields": {"event": "open-broker", "broker": name}},
            )
    try:
        asyncio.run(_run(urls, access, state, options))
    except OSError as exc:
        raise StartupError(str(exc)) from None
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C during shutdown
        pass


async def _run(
    urls: Mapping[str, str],
    access: Mapping[str, BrokerOptions],
    state: str,
    options: Mapping[str, Any],
) -> None:
    from scaler.metrics import ScalerMetrics
    from scaler.server import serve_forever
    from scaler.service import ScalerService
    from scaler.tls import TlsFiles

    metrics = ScalerMetrics()
    service = ScalerService(
        open_brokers(urls, options["broker_timeout"]),
        open_state(state, options["broker_timeout"]),
        cache_s=options["cache_seconds"],
        broker_timeout_s=options["broker_timeout"],
        stream_poll_s=options["stream_poll_seconds"],
        metrics=metrics,
        access=access,
        idle_s=options["trigger_idle_seconds"],
        replicas=open_replicas(
            options["replicas_from"],
            cache_s=options["cache_seconds"],
            timeout_s=options["broker_timeout"],
            registry=metrics.registry,
        ),
    )
    metrics_port = options["metrics_port"] or None
    await serve_forever(
        service,
        port=options["port"],
        metrics_port=metrics_port,
        host=options["host"],
        tls=TlsFiles.from_flags(options["tls_cert"], options["tls_key"], options["tls_client_ca"]),
    )
