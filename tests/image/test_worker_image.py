"""The worker image as shipped, built and run: ``depthscale worker`` in it, as the model pods run
it (read-only root with nothing writable, UID 10001, no capabilities), takes a real request from
a private Redis, has it answered by the stand-in OpenAI-compatible server playing vLLM on the
host, stores the answer, and exits 0 on SIGTERM inside the pod's grace period.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import RedisServer, free_port
from tests.image.conftest import KUBERNETES_GRACE_S, RUN_AS_DEPLOYED, logs, podman, state
from worker.client import Client

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]

MODEL = "m1"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def standin() -> Iterator[str]:
    """The stand-in vLLM (``worker.standin``) on a free loopback port; its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.standin", "--port", str(port), "--model", MODEL],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None, "the stand-in exited"
            assert time.monotonic() < deadline, "the stand-in did not listen within 30 s"
            time.sleep(0.05)  # polling interval; the deadline bounds the wait
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_worker_image_answers_a_request_and_stops_on_sigterm(
    worker_image: str, redis_server: RedisServer, standin: str
) -> None:
    broker = redis_server.url
    backend = f"redis://127.0.0.1:{redis_server.port}/1"
    name = f"depthscale-worker-test-{uuid.uuid4().hex[:12]}"
    podman(
        "run", "--detach", "--name", name, *RUN_AS_DEPLOYED,
        "--env", f"DEPTHSCALE_BROKER_URL={broker}",
        "--env", f"DEPTHSCALE_RESULT_BACKEND={backend}",
        worker_image, "--model", MODEL, "--vllm-url", standin, "--concurrency", "2",
    )  # fmt: skip
    client = Client(broker, backend)
    try:
        request = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        task_id = client.submit(MODEL, request)
        try:
            answer = client.wait(task_id, timeout_s=60)
        except TimeoutError:
            pytest.fail(f"no answer within 60 s; container {state(name)}:\n{logs(name)}")
        assert answer["usage"]["completion_tokens"] == 4

        # Scale-down: SIGTERM, then SIGKILL (exit 137) only after the grace period.
        started = time.monotonic()
        podman("stop", "--time", str(KUBERNETES_GRACE_S), name, timeout=KUBERNETES_GRACE_S + 30)
        assert state(name) == ("exited", 0), logs(name)
        assert time.monotonic() - started < KUBERNETES_GRACE_S
    finally:
        client.close()
        podman("rm", "--force", "--time", "0", name, check=False)
