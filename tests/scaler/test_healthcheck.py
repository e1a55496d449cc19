"""``python -m scaler.healthcheck`` against a real gRPC health service on a loopback socket."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from scaler.healthcheck import main
from tests.conftest import free_port


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None)


def test_serving_exits_zero(health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert main(["--port", str(port)]) == 0


def test_not_serving_exits_one_saying_so(
    health_server: tuple[int, health.HealthServicer], capsys: pytest.CaptureFixture[str]
) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert main(["--port", str(port)]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_unknown_service_exits_one(
    health_server: tuple[int, health.HealthServicer], capsys: pytest.CaptureFixture[str]
) -> None:
    port, _ = health_server
    assert main(["--port", str(port), "--service", "nope"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_nothing_listening_exits_one_on_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scaler.healthcheck", "--port", str(free_port()), "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "UNAVAILABLE" in lines[0] or "DEADLINE_EXCEEDED" in lines[0]


def test_bad_arguments_are_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scaler.healthcheck", "--port", "nine"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--port" in lines[0]
