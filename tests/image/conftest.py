"""The images built by ``scripts/build_image.sh`` (offline, cached: a minute or two the first
time, seconds after) and podman run with this project's settings for it."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# podman's settings for this host (runc, no raised ulimits), as scripts/build_image.sh uses them.
ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "scripts" / "containers.conf")}
# Kubernetes' default terminationGracePeriodSeconds, kept by a pod that sets none.
KUBERNETES_GRACE_S = 30
# How the Deployments run both images: a read-only root with nothing writable (podman would
# otherwise mount tmpfs on /tmp, /var/tmp and /run), their numeric user, no capabilities, no
# privilege escalation; the host network, to reach the test's private servers on loopback.
# podman's health check timer needs systemd: tests run the image's check themselves.
RUN_AS_DEPLOYED = (
    "--network=host", "--read-only", "--read-only-tmpfs=false", "--user", "10001:10001",
    "--cap-drop=ALL", "--security-opt=no-new-privileges", "--no-healthcheck",
)  # fmt: skip


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run podman; a failure (when ``check``) is an assertion naming the command."""
    result = subprocess.run(
        [require_binary("podman"), *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result


def build(target: str, tag: str) -> str:
    """``scripts/build_image.sh --target TARGET --tag TAG``; the tag."""
    for tool in ("podman", "runc", "mmdebstrap"):
        require_binary(tool)
    built = subprocess.run(
        [str(ROOT / "scripts" / "build_image.sh"), "--target", target, "--tag", tag],
        capture_output=True, text=True, timeout=560, env=ENV,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    return tag


def state(container: str) -> tuple[str, int]:
    """(podman's status of ``container``, its exit code)."""
    out = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container)
    status, code = out.stdout.split()
    return status, int(code)


def logs(container: str) -> str:
    out = podman("logs", container, check=False)
    return out.stdout + out.stderr


@pytest.fixture(scope="session")
def scaler_image() -> str:
    return build("scaler", f"depthscale:{VERSION}")


@pytest.fixture(scope="session")
def worker_image() -> str:
    return build("worker", f"depthscale-worker:{VERSION}")
