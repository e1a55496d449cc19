"""The scaler image as shipped, built and run: ``scripts/build_image.sh`` builds it offline with
podman (cached, so only the first run pays for the base and the wheels), and podman runs it as the
Deployment does: ``depthscale serve`` on a read-only root filesystem with nothing writable, as
UID 10001, every capability dropped, no privilege escalation. On the host network it reads a
private redis-server holding real Celery tasks, answers KEDA's calls and serves ``/metrics``, and
SIGTERM stops it with exit status 0 inside the pod's grace period.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from packaging.markers import default_environment
from packaging.requirements import Requirement
from prometheus_client.parser import text_string_to_metric_families

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, celery_app, free_port, publish
from tests.image.conftest import (
    KUBERNETES_GRACE_S,
    ROOT,
    RUN_AS_DEPLOYED,
    VERSION,
    logs,
    podman,
    state,
)
from tests.manifests.kustomize import load_documents

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]

DEPLOYMENT = ROOT / "manifests" / "base" / "scaler" / "deployment.yaml"
KEDA_DEADLINE_S = 3.0
START_DEADLINE_S = 30.0
QUEUES = ("llama-8b", "llama-8b-batch")
META = {
    "scalerAddress": "depthscale-scaler:9090",
    "broker": "main",
    "queues": ",".join(QUEUES),
    "preset": "seed",
}


@dataclass
class Scaler:
    """A running scaler container: its name and the host ports it listens on."""

    name: str
    port: int
    metrics_port: int

    def state(self) -> tuple[str, int]:
        return state(self.name)

    def logs(self) -> str:
        return logs(self.name)


def health(port: int, timeout_s: float) -> int:
    """The server's health status; waits up to ``timeout_s`` for the port to accept."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        return int(stub.Check(request, timeout=timeout_s, wait_for_ready=True).status)


@pytest.fixture
def scaler(scaler_image: str, redis_server: RedisServer) -> Iterator[Scaler]:
    """The image running ``depthscale serve`` as the Deployment's securityContext has it run,
    once it answers SERVING."""
    running = Scaler(f"depthscale-test-{uuid.uuid4().hex[:12]}", free_port(), free_port())
    podman(
        "run", "--detach", "--name", running.name, *RUN_AS_DEPLOYED, scaler_image,
        "serve", "--host", "127.0.0.1",
        "--port", str(running.port), "--metrics-port", str(running.metrics_port),
        "--broker", f"main={redis_server.url}",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            status, code = running.state()
            assert status == "running", f"exited {code}:\n{running.logs()}"
            try:
                if health(running.port, timeout_s=1.0) == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass  # not listening within the second: look at the container again
            assert time.monotonic() < deadline, f"not SERVING in {START_DEADLINE_S} s"
        yield running
    finally:
        podman("rm", "--force", "--time", "0", running.name, check=False)


def ref(name: str, **extra: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace="prod", scalerMetadata={**META, **extra})


def canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def kombu_pending(url: str) -> int:
    """kombu's own count of the tasks waiting in the model's queues, every priority."""
    app = celery_app(url)
    with app.connection() as conn:
        return sum(int(conn.default_channel._size(q)) for q in QUEUES)


def test_the_image_serves_keda_read_only_as_non_root(
    scaler_image: str, scaler: Scaler, redis_server: RedisServer
) -> None:
    jobs = [(queue, priority) for queue in QUEUES for priority in (0, 3, 9) for _ in range(20)]
    publish(celery_app(redis_server.url), jobs)
    pending = kombu_pending(redis_server.url)
    assert pending == 2 * 3 * 20

    # The server (the container's process 1) is the Deployment's user, not root, as the
    # container sees it (rootless podman maps it to another UID on the host).
    read = "print(open('/proc/1/status').read())"
    status = podman("exec", scaler.name, "python", "-c", read).stdout.splitlines()
    [uids] = [line.split()[1:] for line in status if line.startswith("Uid:")]
    assert uids == ["10001"] * 4  # real, effective, saved, filesystem

    # KEDA's sequence on both of the scaler's metric modes.
    with grpc.insecure_channel(f"127.0.0.1:{scaler.port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        for request, expected in (
            (ref("llama-8b", mode="pending"), pending),
            (ref("llama-8b-replicas"), math.ceil(pending / 50)),
        ):
            spec = stub.GetMetricSpec(request, timeout=KEDA_DEADLINE_S)
            [metric] = spec.metricSpecs
            values = stub.GetMetrics(
                pb.GetMetricsRequest(scaledObjectRef=request, metricName=metric.metricName),
                timeout=KEDA_DEADLINE_S,
            )
            [value] = values.metricValues
            assert value.metricValueFloat == expected
            assert stub.IsActive(request, timeout=KEDA_DEADLINE_S).result

    url = f"http://127.0.0.1:{scaler.metrics_port}/metrics"
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    samples = {
        (sample.name, sample.labels.get("scaled_object")): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    assert samples[("depthscale_pending_tasks", "llama-8b")] == pending
    assert samples[("depthscale_desired_replicas", "llama-8b-replicas")] == math.ceil(pending / 50)

    # The image's own HEALTHCHECK command, run inside the read-only container on the port this
    # scaler listens on (tests/manifests/test_dockerfile.py checks it names the CMD's port).
    [inspected] = json.loads(podman("image", "inspect", scaler_image).stdout)
    kind, *command = inspected["Healthcheck"]["Test"]
    assert kind == "CMD"
    port_at = command.index("--port") + 1
    command[port_at] = str(scaler.port)
    assert podman("exec", scaler.name, *command, check=False).returncode == 0
    command[port_at] = str(free_port())
    assert podman("exec", scaler.name, *command, check=False).returncode == 1, "no scaler there"


def test_sigterm_stops_it_cleanly_within_the_pods_grace_period(scaler: Scaler) -> None:
    [deployment] = load_documents(DEPLOYMENT)
    grace_s = deployment["spec"]["template"]["spec"].get(
        "terminationGracePeriodSeconds", KUBERNETES_GRACE_S
    )
    # podman stop sends SIGTERM, and SIGKILL (exit status 137) only once grace_s have passed.
    started = time.monotonic()
    podman("stop", "--time", str(grace_s), scaler.name, timeout=grace_s + 30)
    elapsed = time.monotonic() - started
    status, code = scaler.state()
    assert (status, code) == ("exited", 0), scaler.logs()
    assert elapsed < grace_s
    assert '"event": "stop"' in scaler.logs()


def test_the_image_holds_its_lock_file_and_no_build_tools(scaler_image: str) -> None:
    script = (
        "import importlib.metadata as m, importlib.util as u, platform\n"
        "print(platform.python_version())\n"
        "for d in m.distributions(): print(d.metadata['Name'], d.version)\n"
        "for tool in ('pip', 'setuptools', 'wheel'):\n"
        "    print('tool', tool, u.find_spec(tool) is not None)"
    )
    out = podman(
        "run", "--rm", "--network=none", "--read-only", "--user", "10001:10001",
        "--entrypoint", "python", scaler_image, "-c", script,
    ).stdout.splitlines()  # fmt: skip
    python, rows = out[0], [line.split() for line in out[1:]]
    assert [
        tool for kind, tool, found in (r for r in rows if r[0] == "tool") if found == "True"
    ] == []
    installed = {canonical(name): version for name, version in (r for r in rows if r[0] != "tool")}

    # What the lock file pins for the image's interpreter (markers such as python_full_version).
    environment = {key: str(value) for key, value in default_environment().items()}
    environment |= {"python_full_version": python, "python_version": python.rsplit(".", 1)[0]}
    locked = {}
    for line in (ROOT / "requirements" / "serve.txt").read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            req = Requirement(line.rstrip(" \\"))
            if req.marker is None or req.marker.evaluate(environment):
                [pin] = req.specifier
                locked[canonical(req.name)] = pin.version
    assert installed == {**locked, "depthscale": VERSION}
