"""``python -m scaler.healthcheck``: ask a scaler's gRPC health service whether it serves.

The container image's HEALTHCHECK (Kubernetes uses its native gRPC probes instead). Exit status
0 when the service answers SERVING, 1 otherwise, with one line on stderr saying why. Standard
library and grpcio only, so it starts fast and needs nothing writable.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, service: str, timeout_s: float) -> str | None:
    """None when ``service`` at ``target`` (host:port) is SERVING, else the reason."""
    with grpc.insecure_channel(target) as channel:
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
    args = parser.parse_args(argv)
    problem = check(f"{args.host}:{args.port}", args.service, args.timeout)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
