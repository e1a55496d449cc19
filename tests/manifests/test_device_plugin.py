"""The NVIDIA device plugin's helm values (manifests/helm/nvidia-device-plugin/values.yaml) admit
every GPU node the EKS overlay's NodePools launch, and no CPU node: its node affinity matches the
labels a NodePool puts on its nodes, its tolerations the taints (Kubernetes' node affinity and
taint semantics, kubernetes.io "Assigning Pods to Nodes", "Taints and Tolerations")."""

from __future__ import annotations

import yaml

from tests.manifests.conftest import MANIFESTS, built
from tests.manifests.kustomize import Obj

VALUES = MANIFESTS / "helm" / "nvidia-device-plugin" / "values.yaml"
GPU = "nvidia.com/gpu"


def _values() -> Obj:
    data: Obj = yaml.safe_load(VALUES.read_text())
    return data


def _expression_holds(expression: Obj, labels: dict[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = expression.get("values", [])
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise AssertionError(f"operator {operator} not modelled")


def _admits(affinity: Obj, labels: dict[str, str]) -> bool:
    """requiredDuringScheduling node affinity: terms ORed, a term's expressions ANDed."""
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    return any(
        all(_expression_holds(e, labels) for e in term["matchExpressions"]) for term in terms
    )


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") not in (None, taint["effect"]):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if toleration.get("key") in (None, taint["key"]):
                return True
        elif toleration.get("key") == taint["key"] and toleration.get("value") == taint.get(
            "value"
        ):
            return True
    return False


def _node_pools() -> list[Obj]:
    return [o for o in built("eks-karpenter") if o["kind"] == "NodePool"]


def _is_gpu_pool(pool: Obj) -> bool:
    return any(t["key"] == GPU for t in pool["spec"]["template"]["spec"].get("taints", []))


def test_the_plugin_runs_on_every_gpu_node_pool() -> None:
    values = _values()
    gpu_pools = [p for p in _node_pools() if _is_gpu_pool(p)]
    assert gpu_pools
    for pool in gpu_pools:
        template = pool["spec"]["template"]
        labels = dict(template["metadata"]["labels"])
        assert _admits(values["affinity"], labels), pool["metadata"]["name"]
        for taint in template["spec"]["taints"]:
            assert _tolerates(values["tolerations"], taint), (pool["metadata"]["name"], taint)


def test_the_plugin_stays_off_cpu_nodes() -> None:
    cpu_pools = [p for p in _node_pools() if not _is_gpu_pool(p)]
    assert cpu_pools
    for pool in cpu_pools:
        labels = dict(pool["spec"]["template"].get("metadata", {}).get("labels", {}))
        assert not _admits(_values()["affinity"], labels), pool["metadata"]["name"]


def test_a_gpu_node_without_the_label_is_not_admitted() -> None:
    # The label is what admits a GPU node here (no Node Feature Discovery): drop it and the plugin
    # would never run there.
    for pool in (p for p in _node_pools() if _is_gpu_pool(p)):
        labels = dict(pool["spec"]["template"]["metadata"]["labels"])
        del labels["nvidia.com/gpu.present"]
        assert not _admits(_values()["affinity"], labels)


def test_the_plugin_outranks_workloads() -> None:
    assert _values()["priorityClassName"] == "system-node-critical"


def test_dcgm_exporter_runs_on_every_gpu_node_pool_too() -> None:
    # The GPU metrics the alerts read come from dcgm-exporter on the same nodes.
    objects = built("eks-karpenter")
    [exporter] = [
        o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "dcgm-exporter"
    ]
    spec = exporter["spec"]["template"]["spec"]
    for pool in (p for p in _node_pools() if _is_gpu_pool(p)):
        template = pool["spec"]["template"]
        assert _admits(spec["affinity"], dict(template["metadata"]["labels"]))
        for taint in template["spec"]["taints"]:
            assert _tolerates(spec["tolerations"], taint)
