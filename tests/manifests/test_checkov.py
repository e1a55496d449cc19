"""checkov (Kubernetes framework) over each built overlay: every finding on any object it builds
is fixed or skipped beside the object (``checkov.io/skipN: CKV_K8S_xx=reason``), and no skip is
stale.

checkov pins its own dependencies below ours (packaging < 24 against pytest's >= 24), so
scripts/bootstrap.sh installs it in its own virtualenv, ``.venv-checkov``.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_binary
from tests.manifests.conftest import OVERLAYS, ROOT, built
from tests.manifests.kustomize import Obj

CHECKOV_VENV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_KEY = re.compile(r"checkov\.io/skip\d+")
SKIP_VALUE = re.compile(r"(CKV2?_K8S_\d+)=(\S.*)")


def _checkov() -> str:
    return str(CHECKOV_VENV) if CHECKOV_VENV.is_file() else require_binary("checkov")


def _ours(overlay: str) -> set[tuple[str, str]]:
    """(kind, name) of every object the overlay builds: each is held to zero unexplained
    findings, the base's own (scaler, gateway, monitoring) as much as what render writes."""
    return {(o["kind"], o["metadata"]["name"]) for o in built(overlay)}


def _run(objects: list[Obj], workdir: Path) -> list[dict[str, str]]:
    """checkov's failed checks for ``objects``: check id and resource id."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "built.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    result = subprocess.run(
        [
            _checkov(),
            "--file",
            str(path),
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",  # no network: the bundled checks only
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [
        {"check": f["check_id"], "resource": f["resource"]}
        for report in reports
        for f in report.get("results", {}).get("failed_checks", [])
    ]


def _owner(resource: str) -> tuple[str, str]:
    """(kind, name) of the object a checkov resource id names; a graph check's ``Pod.ns.name.
    labels...`` stands for the workload of that name."""
    kind, _namespace, rest = resource.split(".", 2)
    name = rest.split(".", 1)[0]
    return ("Deployment" if kind == "Pod" else kind, name)


@cache
def _findings(overlay: str, strip_skips: bool, workdir: Path) -> list[dict[str, str]]:
    objects = copy.deepcopy(built(overlay))
    if strip_skips:
        for obj in objects:
            annotations = obj["metadata"].get("annotations", {})
            for key in [k for k in annotations if SKIP_KEY.fullmatch(k)]:
                del annotations[key]
    return _run(objects, workdir)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkov")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_nothing_unexplained_in_our_objects(overlay: str, workdir: Path) -> None:
    ours = _ours(overlay)
    unexplained = [
        f"{f['check']} {f['resource']}"
        for f in _findings(overlay, False, workdir / overlay)
        if _owner(f["resource"]) in ours
    ]
    assert not unexplained, "fix these or skip them with a reason:\n" + "\n".join(unexplained)


def test_every_skip_has_a_reason_and_is_still_needed(workdir: Path) -> None:
    # Without its annotations, each object fails exactly the checks it skips (a fixed finding
    # leaves no stale skip behind).
    objects = built("eks-karpenter")
    skipped: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        for key, value in obj["metadata"].get("annotations", {}).items():
            if not SKIP_KEY.fullmatch(key):
                continue
            match = SKIP_VALUE.fullmatch(value)
            assert match, f"{obj['metadata']['name']}: {key} needs CKV_K8S_xx=reason, got {value!r}"
            assert "\n" not in value
            skipped.setdefault((obj["kind"], obj["metadata"]["name"]), set()).add(match[1])
    assert skipped, "the rendered objects explain their exceptions"
    bare = _findings("eks-karpenter", True, workdir / "bare")
    for owner, checks in skipped.items():
        failing = {f["check"] for f in bare if _owner(f["resource"]) == owner}
        assert checks <= failing, f"{owner}: stale skips {sorted(checks - failing)}"
