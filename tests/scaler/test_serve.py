"""``depthscale serve``: flags, broker sources, one-line errors, and a real run answering KEDA."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.cli import main
from scaler.serve import BROKERS_ENV, StartupError, collect_brokers
from tests.conftest import RedisServer, free_port


def test_brokers_merge_from_flags_env_and_file(tmp_path: Path) -> None:
    file = tmp_path / "brokers"
    file.write_text("# mounted Secret\n\nbatch = redis://:pw@batch:6379/1\n")
    brokers = collect_brokers(
        ["main=redis://main:6379/0"], "east=redis://east:6379/0\nwest=rediss://west:6380/0", file
    )
    assert brokers == {
        "main": "redis://main:6379/0",
        "east": "redis://east:6379/0",
        "west": "rediss://west:6380/0",
        "batch": "redis://:pw@batch:6379/1",
    }


def test_file_errors_name_the_line(tmp_path: Path) -> None:
    file = tmp_path / "brokers"
    file.write_text("main=redis://a:6379/0\n\nnot a pair\n")
    with pytest.raises(StartupError, match=r"line 3: expected NAME=URL"):
        collect_brokers([], None, file)


def test_a_name_defined_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"'main' is already defined by --broker"):
        collect_brokers(["main=redis://a/0"], "main=redis://b/0", None)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "no brokers configured"),
        (["--broker", "main"], {}, "--broker: expected NAME=URL"),
        (["--broker", "bad name=redis://x/0"], {}, "broker name 'bad name'"),
        (["--broker", "main=localhost:6379"], {}, "not a URL"),
        (["--broker", "main=kafka://u:hunter2@kafka:9092"], {}, "unsupported broker URL scheme"),
        (["--broker", "m=redis://x/0", "--state", "postgres://u:hunter2@db/x"], {}, "--state"),
        (["--broker", "m=redis://x/0", "--port", "http"], {}, "'--port'"),
        (["--broker", "m=redis://x/0", "--port", "70000"], {}, "'--port'"),
        (["--broker", "m=redis://x/0", "--cache-seconds", "0"], {}, "'--cache-seconds'"),
        (["--broker", "m=redis://x/0", "--log-level", "loud"], {}, "'--log-level'"),
        (["--broker", "m=redis://x/0", "--no-such-flag"], {}, "--no-such-flag"),
        ([], {BROKERS_ENV: "main=redis://:hunter2@a/0 main=redis://b/0"}, "already defined"),
        (["--brokers-file", "/nonexistent/brokers"], {}, "--brokers-file"),
    ],
)
def test_bad_flags_fail_with_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", *args], env={BROKERS_ENV: "", **env})
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
    assert "hunter2" not in result.output


@pytest.mark.parametrize("flag", ["--port", "--metrics-port"])
def test_a_port_in_use_fails_with_one_line(flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": str(free_port()), "--metrics-port": str(free_port()), flag: str(port)}
        args = ["serve", "--host", "127.0.0.1", "--broker", "m=redis://127.0.0.1:1/0"]
        args += [item for pair in ports.items() for item in pair]
        result = CliRunner().invoke(main, args, env={BROKERS_ENV: ""})
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        f"Error: {flag} {port}: cannot listen on 127.0.0.1: Address already in use"
    ]


@pytest.mark.redis
def test_serve_answers_keda_and_stops_on_sigterm(redis_server: RedisServer, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    secret = tmp_path / "brokers"
    secret.write_text(f"main={redis_server.url}\n")
    process = subprocess.Popen(
        [
            sys.executable, "-c", "from scaler.cli import main; main()", "serve",
            "--port", str(port), "--metrics-port", str(metrics_port), "--host", "127.0.0.1",
            "--brokers-file", str(secret), "--state", redis_server.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, BROKERS_ENV: ""},
    )  # fmt: skip
    try:
        request = pb.ScaledObjectRef(
            name="llama-8b", namespace="prod", scalerMetadata={"broker": "main", "queues": "q"}
        )

        async def ask() -> bool:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.ExternalScalerStub(channel)
                # wait_for_ready: the process may still be starting; 20 s covers a loaded machine.
                answer = await stub.IsActive(request, timeout=20, wait_for_ready=True)
                return bool(answer.result)

        assert asyncio.run(ask()) is False
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr.decode()
    log_lines = stderr.decode().strip().splitlines()
    assert any('"event": "decision"' in line and '"reason": "idle"' in line for line in log_lines)
    assert any('"event": "stop"' in line for line in log_lines)
