"""The scaler Deployment's container, run for real: its args and env, a brokers file in the
Secret's format and a private Redis for state, then the image's health check and /metrics.

Only the ports change (the test takes free ones); everything else is the manifest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from scaler.healthcheck import main as healthcheck
from tests.conftest import RedisServer, free_port
from tests.manifests.conftest import MANIFESTS
from tests.manifests.kustomize import load_documents

pytestmark = pytest.mark.redis


def test_deployment_container_serves_health_and_metrics(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    [deployment] = load_documents(MANIFESTS / "base" / "scaler" / "deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    grpc_port, metrics_port = free_port(), free_port()
    args = [
        a.replace(f"={ports['grpc']}", f"={grpc_port}").replace(
            f"={ports['metrics']}", f"={metrics_port}"
        )
        for a in container["args"]
    ]
    assert args != container["args"], "the ports to replace were not found"
    # The Secret's `brokers` key, mounted where the Deployment mounts it.
    [brokers_arg] = [a for a in args if a.startswith("--brokers-file=")]
    mounted = Path(brokers_arg.split("=", 1)[1])
    brokers = tmp_path / mounted.name
    brokers.write_text(f"celery={redis_server.url}\n")
    args = [a if a != brokers_arg else f"--brokers-file={brokers}" for a in args]
    env = {**os.environ, "DEPTHSCALE_STATE": f"redis://127.0.0.1:{redis_server.port}/1"}
    assert {e["name"] for e in container["env"]} == {"DEPTHSCALE_STATE"}

    process = subprocess.Popen(
        # The console script the image's ENTRYPOINT runs.
        [str(Path(sys.executable).with_name("depthscale")), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while healthcheck(["--port", str(grpc_port), "--timeout", "0.5"]) != 0:
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail(f"scaler exited: {process.stderr.read().decode()}")
            assert time.monotonic() < deadline, "the scaler never reported SERVING"
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert b"depthscale_" in r.read()
    finally:
        process.terminate()
        process.wait(timeout=15)
