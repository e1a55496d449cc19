"""Build and run the scaler: a grpc.aio server (ExternalScaler + gRPC health) and ``/metrics``.

``start`` returns a ``RunningServer`` bound to real ports (0 picks a free one, which tests use);
``serve_forever`` is what ``depthscale serve`` runs until SIGTERM/SIGINT.

With ``tls`` the gRPC port (ExternalScaler and health alike) speaks only TLS, mutual TLS when
``tls.client_ca`` is set, its certificate reloaded on change (``scaler/tls.py``); ``/metrics``
stays plain HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from proto import externalscaler_pb2, externalscaler_pb2_grpc
from scaler.service import ScalerService
from scaler.servicer import ExternalScalerServicer
from scaler.tls import CertificateReloader, TlsFiles, server_credentials

log = logging.getLogger("depthscale.server")

SERVICE_NAME = externalscaler_pb2.DESCRIPTOR.services_by_name["ExternalScaler"].full_name
MAX_REQUEST_BYTES = 80 * 1024
"""Largest gRPC request accepted: above any metadata map within the scaler's limits
(``scaler.metadata``: 16 KiB of characters, at most 4 bytes each in UTF-8, plus the names), so
anything larger is refused by gRPC's core and never costs the event loop a parse."""
GRACE_S = 5.0
"""Seconds in-flight RPCs get to finish on shutdown."""


@dataclass
class RunningServer:
    """A started scaler. ``port``/``metrics_port`` are the bound ports (None: no metrics);
    ``tls`` the certificate reloader when the port speaks TLS."""

    grpc_server: grpc.aio.Server
    service: ScalerService
    health: health.aio.HealthServicer
    port: int
    metrics_port: int | None
    _metrics_http: tuple[WSGIServer, threading.Thread] | None = None
    tls: CertificateReloader | None = None

    async def stop(self, grace_s: float = GRACE_S) -> None:
        """Report NOT_SERVING, let RPCs finish for ``grace_s`` seconds, close brokers/store."""
        await self.health.enter_graceful_shutdown()
        await self.grpc_server.stop(grace_s)
        if self._metrics_http is not None:
            http, thread = self._metrics_http
            http.shutdown()
            http.server_close()
            thread.join(timeout=5)
        await self.service.close()


async def start(
    service: ScalerService,
    *,
    port: int,
    metrics_port: int | None = None,
    host: str = "0.0.0.0",
    tls: TlsFiles | None = None,
) -> RunningServer:
    """Bind the gRPC server on ``host:port`` and, unless None, ``/metrics`` on ``metrics_port``.
    Raises ``OSError`` naming the port when one cannot be bound, ``TlsError`` (an ``OSError``)
    naming the flag when a TLS file cannot be used."""
    credentials, reloader = server_credentials(tls) if tls is not None else (None, None)
    # No SO_REUSEPORT: a port already in use is an error, not a silent second listener.
    # KEDA's requests are a few hundred bytes; a message beyond MAX_REQUEST_BYTES is refused by
    # gRPC's core (RESOURCE_EXHAUSTED naming the limit) before any Python sees it.
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
        ]
    )
    externalscaler_pb2_grpc.add_ExternalScalerServicer_to_server(
        ExternalScalerServicer(service), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"[::]:{port}" if host in ("0.0.0.0", "::") else f"{host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    metrics_http = None
    bound_metrics: int | None = None
    if metrics_port is not None:
        try:
            metrics_http = start_http_server(
                metrics_port, addr=host, registry=service.metrics.registry
            )
        except OSError as exc:
            raise OSError(
                f"cannot serve /metrics on {host}:{metrics_port}: {exc.strerror}"
            ) from None
        bound_metrics = int(metrics_http[0].server_port)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving gRPC (%s) on %s, metrics on %s",
        _transport(tls),
        address.replace(f":{port}", f":{bound}"),
        bound_metrics if bound_metrics is not None else "off",
        extra={
            "fields": {
                "event": "start",
                "port": bound,
                "metrics_port": bound_metrics,
                "transport": _transport(tls),
                **({"sha256": reloader.current.fingerprint} if reloader is not None else {}),
            }
        },
    )
    return RunningServer(
        server, service, health_servicer, bound, bound_metrics, metrics_http, reloader
    )


def _transport(tls: TlsFiles | None) -> str:
    if tls is None:
        return "plaintext"
    return "mtls" if tls.client_ca is not None else "tls"


SWITCH_INTERVAL_S = 0.0005
"""How long a thread may hold the GIL before another runs (Python's default is 5 ms). The
/metrics thread renders thousands of series in pure Python; handing the GIL back to the event
loop every half millisecond keeps a scrape from delaying gRPC answers by more than a few ms."""


def tune_process() -> None:
    """Settings for a process that serves the scaler (``serve_forever`` applies them): a short
    GIL switch interval, and no ``_created`` series, which would double every counter's lines
    in ``/metrics`` and its rendering time (prometheus_client's own switch)."""
    import sys

    from prometheus_client import disable_created_metrics

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    disable_created_metrics()  # type: ignore[no-untyped-call]


async def serve_forever(
    service: ScalerService,
    *,
    port: int,
    metrics_port: int | None,
    host: str = "0.0.0.0",
    tls: TlsFiles | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    tune_process()
    running = await start(service, port=port, metrics_port=metrics_port, host=host, tls=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down", extra={"fields": {"event": "stop"}})
        await running.stop()
