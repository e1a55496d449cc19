"""The scaler Deployment's container, run for real: its args and env, a brokers file in the
Secret's format, certificates in the layout cert-manager writes (tls.crt, tls.key, ca.crt; for the
serving certificate's DNS names) and a private Redis for state, then the Deployment's own probe
command and /metrics.

Only the ports and the mounted files' directories change; everything else is the manifest's.
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
from tests.scaler.certs import Ca

pytestmark = pytest.mark.redis


def test_deployment_container_serves_health_and_metrics(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    [deployment] = load_documents(MANIFESTS / "base" / "scaler" / "deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    certificates = load_documents(MANIFESTS / "base" / "scaler" / "certificates.yaml")
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
    # The Secret cert-manager issues from the serving Certificate, mounted where the Deployment
    # mounts it: a certificate for the Certificate's DNS names and the CA that signed it.
    [tls_mount] = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "tls"]
    [serving] = [
        c for c in certificates if c["kind"] == "Certificate" and c["spec"].get("dnsNames")
    ]
    ca = Ca()
    issued = ca.issue("depthscale-scaler", server=True, names=serving["spec"]["dnsNames"])
    tls = tmp_path / "tls"
    tls.mkdir()
    issued.write(tls, "tls")
    ca.write(tls)
    args = [a.replace(tls_mount, str(tls)) for a in args]
    [probe] = {tuple(container[p]["exec"]["command"]) for p in ("readinessProbe", "livenessProbe")}
    assert probe[:3] == ("python", "-m", "scaler.healthcheck")
    probe_args = [
        a.replace(tls_mount, str(tls)).replace(f"={ports['grpc']}", f"={grpc_port}")
        for a in probe[3:]
    ]
    assert f"--port={grpc_port}" in probe_args
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
        while healthcheck([*probe_args, "--timeout", "0.5"]) != 0:
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
