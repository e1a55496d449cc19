"""``python -m scaler.healthcheck``: ask a scaler's gRPC health service whether it serves.

The container image's HEALTHCHECK, and the Kubernetes probe when the port speaks TLS (the
kubelet's native gRPC probe dials plaintext only). Exit status 0 when the service answers
SERVING, 1 otherwise, with one line on stderr saying why. Standard library and grpcio only, so it
starts fast and needs nothing writable.

With ``--tls-ca`` it dials TLS, verifying the server against that CA and ``--server-name`` (a DNS
name in the certificate: the probe dials 127.0.0.1); ``--tls-cert``/``--tls-key`` add a client
certificate for a server that requires one (``serve --tls-client-ca``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(
    target: str,
    service: str,
    timeout_s: float,
    credentials: grpc.ChannelCredentials | None = None,
    server_name: str | None = None,
) -> str | None:
    """None when ``service`` at ``target`` (host:port) is SERVING, else the reason; over TLS
    with ``credentials``, the certificate checked for ``server_name`` (default: the host)."""
    if credentials is None:
        channel = grpc.insecure_channel(target)
    else:
        options = [] if server_name is None else [("grpc.ssl_target_name_override", server_name)]
        channel = grpc.secure_channel(target, credentials, options=options)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            name = code.name if code is not None else "ERROR"
            return f"{target}: {name}"
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return f"{target}: service {service!r} is {status}"
    return None


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one ``error:`` line and exit status 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(prog="python -m scaler.healthcheck", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090, help="the scaler's gRPC port")
    parser.add_argument("--service", default="", help="health service name ('' = the server)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA file: dial TLS, trusting it")
    parser.add_argument("--tls-cert", type=Path, help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", type=Path, help="PEM key of --tls-cert")
    parser.add_argument("--server-name", help="name the server certificate must carry")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_ca is None and (args.tls_cert is not None or args.server_name is not None):
        parser.error("--tls-cert, --tls-key and --server-name need --tls-ca")
    credentials = None
    if args.tls_ca is not None:
        try:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=args.tls_ca.read_bytes(),
                private_key=args.tls_key.read_bytes() if args.tls_key else None,
                certificate_chain=args.tls_cert.read_bytes() if args.tls_cert else None,
            )
        except OSError as exc:
            print(f"unhealthy: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 1
    problem = check(
        f"{args.host}:{args.port}", args.service, args.timeout, credentials, args.server_name
    )
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
