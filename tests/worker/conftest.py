"""Real processes for the worker's tests: a stand-in replica, Celery workers, and a broker of
each kind (a private redis-server; RabbitMQ on 127.0.0.1:5672 in a vhost made for the test).

Waiting is always on an observable event (a port answering, a log line, a result, a gauge)
with a deadline, never a bare sleep standing in for one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from celery import Celery

from tests.conftest import IN_CI, RedisServer, free_port, require_binary
from worker.settings import BROKER_URL_ENV, RESULT_BACKEND_ENV

RABBITMQ = ("127.0.0.1", 5672)


def wait_until(what: str, check: Callable[[], bool], deadline_s: float = 30.0) -> None:
    """Poll ``check`` every 50 ms until it holds; fail naming ``what`` after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Broker:
    """One broker for a test: its URL, a result backend, and kombu's own view of a queue."""

    kind: str
    url: str
    backend: str

    def pending(self, queue: str) -> int:
        """Messages waiting in ``queue`` as kombu counts them (Redis: every priority list;
        RabbitMQ: the ready messages of a passive declare)."""
        app = Celery("depthscale-tests", broker=self.url, set_as_current=False)
        with app.connection_for_read() as conn:
            channel = conn.default_channel
            if self.kind == "redis":
                return int(channel._size(queue))
            return int(channel.queue_declare(queue, passive=True).message_count)


def _rabbitmq_vhost() -> Iterator[str]:
    if not port_open(RABBITMQ[1]):
        message = "RabbitMQ is not listening on 127.0.0.1:5672"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    ctl = require_binary("rabbitmqctl")
    vhost = f"depthscale-test-{uuid.uuid4().hex[:10]}"

    def run(*args: str) -> None:
        subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)

    run("add_vhost", vhost)
    try:
        run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        run("delete_vhost", vhost)


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Broker]:
    """Each test runs on both brokers; results always go to the private Redis (database 1)."""
    backend = f"redis://127.0.0.1:{redis_server.port}/1"
    if request.param == "redis":
        yield Broker("redis", redis_server.url, backend)
        return
    for vhost in _rabbitmq_vhost():
        yield Broker("rabbitmq", f"amqp://guest:guest@127.0.0.1:5672/{vhost}", backend)


@pytest.fixture
def redis_broker(redis_server: RedisServer) -> Broker:
    return Broker("redis", redis_server.url, f"redis://127.0.0.1:{redis_server.port}/1")


@dataclass
class Standin:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            body: bytes = response.read()
            return body

    def log(self) -> list[dict[str, object]]:
        """Every request the stand-in finished, in order."""
        records: list[dict[str, object]] = json.loads(self.get("/standin/log"))
        return records

    def gauge(self, name: str) -> float:
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, deadline_s: float = 30.0) -> None:
        wait_until(
            f"the worker to be ready (log: {self.log_path})",
            lambda: " ready." in self.log() or self.process.poll() is not None,
            deadline_s,
        )
        assert self.process.poll() is None, self.log()


@dataclass
class Processes:
    """Starts stand-ins and workers; whatever is still running at the end is killed."""

    tmp_path: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def standin(self, port: int | None = None, **options: object) -> Standin:
        port = port if port is not None else free_port()
        args = [sys.executable, "-m", "worker.standin", "--port", str(port), "--model", "m1"]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        log = (self.tmp_path / f"standin-{port}.log").open("wb")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.started.append(process)
        wait_until(f"the stand-in on port {port}", lambda: port_open(port) or bool(process.poll()))
        assert process.poll() is None, (self.tmp_path / f"standin-{port}.log").read_text()
        return Standin(port, process)

    def worker(self, broker: Broker, *args: str, vllm_url: str, ready: bool = True) -> Worker:
        index = len(self.started)
        log_path = self.tmp_path / f"worker-{index}.log"
        env = {**os.environ, BROKER_URL_ENV: broker.url, RESULT_BACKEND_ENV: broker.backend}
        command = [
            sys.executable, "-c", "from scaler.cli import main; main()", "worker",
            "--model", "m1", "--vllm-url", vllm_url, "--hostname", f"w{index}@%h", *args,
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.started.append(process)
        started = Worker(process, log_path)
        if ready:
            started.wait_ready()
        return started

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
