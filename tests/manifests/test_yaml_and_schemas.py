"""Every manifest parses; core kinds pass kubernetes-validate (strict) for each Kubernetes
version docs/deploy.md claims; custom resources pass their vendored CRD schemas."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import require_binary
from tests.manifests.conftest import MANIFESTS, OVERLAYS
from tests.manifests.kustomize import Obj, build, load_documents

# The range docs/deploy.md states ("Kubernetes 1.33 to 1.37").
KUBERNETES_VERSIONS = ("1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0")

SCHEMAS = MANIFESTS / "schemas"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh/scaledobject_v1alpha1.json",
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh/nodepool_v1.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws/ec2nodeclass_v1.json",
    ("cloud.google.com/v1", "ComputeClass"): "cloud.google.com/computeclass_v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com/servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com/podmonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com/prometheusrule_v1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh/triggerauthentication_v1alpha1.json",
    ("cert-manager.io/v1", "Issuer"): "cert-manager.io/issuer_v1.json",
    ("cert-manager.io/v1", "Certificate"): "cert-manager.io/certificate_v1.json",
}

# Kubernetes objects only: helm values files (manifests/helm) have their own tests.
YAML_FILES = sorted(
    p
    for p in MANIFESTS.rglob("*.yaml")
    if SCHEMAS not in p.parents and MANIFESTS / "helm" not in p.parents
)


def _all_objects() -> list[Obj]:
    seen: dict[tuple[str, str, str], Obj] = {}
    for name in OVERLAYS:
        for obj in build(MANIFESTS / "overlays" / name):
            key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            seen.setdefault(key, obj)
    return list(seen.values())


def _id(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


ALL = _all_objects()
CORE = [o for o in ALL if (o["apiVersion"], o["kind"]) not in CRD_SCHEMAS]
CUSTOM = [o for o in ALL if (o["apiVersion"], o["kind"]) in CRD_SCHEMAS]


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_every_yaml_file_parses(path: Path) -> None:
    if path.name == "kustomization.yaml":
        assert isinstance(yaml.safe_load(path.read_text()), dict)
    else:
        assert load_documents(path), f"{path} holds no objects"


def test_every_vendored_schema_is_used_and_listed_in_provenance() -> None:
    provenance = (SCHEMAS / "PROVENANCE.txt").read_text()
    vendored = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*.json")}
    assert vendored == set(CRD_SCHEMAS.values())
    for path in vendored:
        assert path in provenance
    assert (SCHEMAS / "LICENSE.CRDs-catalog").is_file()
    used = {(o["apiVersion"], o["kind"]) for o in CUSTOM}
    assert used == set(CRD_SCHEMAS), "a vendored schema validates nothing, or a CR has no schema"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_pass_kubernetes_validate_strict(version: str) -> None:
    failures = []
    for obj in CORE:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except (
            kubernetes_validate.ValidationError,
            kubernetes_validate.SchemaNotFoundError,
        ) as exc:
            failures.append(f"{_id(obj)}: {getattr(exc, 'message', exc)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("obj", CUSTOM, ids=_id)
def test_custom_resources_pass_their_crd_schema(obj: Obj) -> None:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[(obj["apiVersion"], obj["kind"])]).read_text())
    # No meta-schema check: the CRDs carry Go regexes such as '^(?i)(abort|warn)?$' (prometheus-
    # operator) that Python's re rejects; those properties are not used here.
    validator = jsonschema.validators.validator_for(schema)(schema)
    validator.validate(obj)


def test_crd_schemas_reject_an_unknown_field() -> None:
    # The vendored schemas forbid unknown properties: a misspelt ScaledObject key fails.
    scaled = json.loads(json.dumps(next(o for o in CUSTOM if o["kind"] == "ScaledObject")))
    scaled["spec"]["maxReplicas"] = 3
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")]).read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(scaled)


def test_strict_validation_rejects_an_unknown_field() -> None:
    # The validator really is strict: a typo in a Deployment fails.
    deployment = next(o for o in CORE if o["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", OVERLAYS)
def test_builder_agrees_with_kubectl_kustomize(name: str) -> None:
    # The checks read the overlays through tests/manifests/kustomize.py; where kubectl is
    # installed (it is not part of the set-up script), its kustomize must build the same objects.
    # kubectl comes with the machine image (not the set-up script): skip without it locally,
    # fail in CI.
    kubectl = require_binary("kubectl")
    out = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / "overlays" / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    def key(o: Obj) -> tuple[str, str, str]:
        return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])

    theirs = {key(o): o for o in yaml.safe_load_all(out) if o}
    ours = {key(o): o for o in build(MANIFESTS / "overlays" / name)}
    assert ours == theirs
