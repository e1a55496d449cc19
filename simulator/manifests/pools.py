"""GPU node pools per cloud, and the warm GPU buffer that keeps spare nodes in them.

Karpenter (karpenter.sh v1 NodePool API): ``karpenter.sh/v1`` NodePools with the ``nvidia.com/gpu=true:NoSchedule``
taint, a GPU limit and ``WhenEmpty`` consolidation. GKE: ``cloud.google.com/v1`` ComputeClasses
(GPU priorities, spot first, node pool auto-creation) selected through a kustomize patch.
"""

from __future__ import annotations

import math

from simulator.manifests.common import (
    BUFFER_PRIORITY_CLASS,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    PART_OF,
    POOL_LABEL,
    Obj,
    RenderError,
    dump_yaml,
    gpu_toleration,
    labels,
    restricted_container_security,
    restricted_pod_security,
)
from simulator.scenario import ModelSpec, NodePoolSpec, Scenario

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
EC2_NODE_CLASS = "gpu"


# GKE accelerator and machine family per GPU type of the price table.
GKE_GPUS: dict[str, tuple[str, str]] = {
    "T4": ("nvidia-tesla-t4", "n1"),
    "L4": ("nvidia-l4", "g2"),
    "A100-40GB": ("nvidia-tesla-a100", "a2"),
    "A100-80GB": ("nvidia-a100-80gb", "a2"),
    "H100": ("nvidia-h100-80gb", "a3"),
}


def _pool_models(scenario: Scenario, pool: NodePoolSpec) -> list[ModelSpec]:
    return [m for m in scenario.models.values() if m.node_pool == pool.name]


def pool_peak_nodes(scenario: Scenario, pool: NodePoolSpec) -> int:
    """Nodes the pool needs with every model on it at maxReplicas (capped by max_nodes)."""
    gpus = sum(
        m.gpus_per_replica * m.policy.to_policy_config().max_replicas
        for m in _pool_models(scenario, pool)
    )
    nodes = math.ceil(gpus / pool.gpus_per_node)
    return min(nodes, pool.max_nodes) if pool.max_nodes is not None else nodes


def buffer_nodes(scenario: Scenario, pool: NodePoolSpec) -> int:
    """Spare nodes the placeholders hold: ``nodes`` as given, or for ``target_utilization`` u the
    static equivalent ceil((1 - u) x peak nodes) (the simulator adjusts it live)."""
    buffer = pool.warm_buffer
    if buffer is None:
        return 0
    if buffer.nodes is not None:
        return buffer.nodes
    assert buffer.target_utilization is not None  # exactly one is set (validated)
    return math.ceil(round((1 - buffer.target_utilization) * pool_peak_nodes(scenario, pool), 9))


def buffer_deployment(pool: NodePoolSpec, replicas: int) -> Obj:
    name = f"gpu-buffer-{pool.name}"
    pod_labels = labels(name, "gpu-buffer", **{POOL_LABEL: pool.name})
    gpu = {"cpu": "10m", "memory": "16Mi", GPU_RESOURCE: str(pool.gpus_per_node)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": pod_labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "priorityClassName": BUFFER_PRIORITY_CLASS,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {POOL_LABEL: pool.name},
                    "tolerations": [gpu_toleration()],
                    "securityContext": restricted_pod_security(),
                    "containers": [
                        {
                            "name": "pause",
                            "image": PAUSE_IMAGE,
                            "resources": {"requests": gpu, "limits": dict(gpu)},
                            "securityContext": {
                                **restricted_container_security(),
                                "readOnlyRootFilesystem": True,
                            },
                        }
                    ],
                },
            },
        },
    }


def _duration(seconds: float) -> str:
    whole = math.ceil(seconds)
    if whole % 3600 == 0 and whole:
        return f"{whole // 3600}h"
    if whole % 60 == 0 and whole:
        return f"{whole // 60}m"
    return f"{whole}s"


def pool_gpu_limit(scenario: Scenario, pool: NodePoolSpec) -> int:
    """GPUs the pool may hold: max_nodes whole nodes, else peak plus buffer nodes."""
    nodes = (
        pool.max_nodes
        if pool.max_nodes is not None
        else pool_peak_nodes(scenario, pool) + buffer_nodes(scenario, pool)
    )
    return max(nodes, 1) * pool.gpus_per_node


def karpenter_nodepool(scenario: Scenario, pool: NodePoolSpec) -> Obj:
    capacity = ["spot", "on-demand"] if pool.capacity_type == "spot" else ["on-demand"]
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": f"gpu-{pool.name}", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {
            "template": {
                "metadata": {"labels": {POOL_LABEL: pool.name}},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": EC2_NODE_CLASS,
                    },
                    "requirements": [
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": [pool.instance_type],
                        },
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    ],
                    "taints": [{"key": GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
                    "expireAfter": "720h",
                },
            },
            "limits": {GPU_RESOURCE: str(pool_gpu_limit(scenario, pool))},
            # Only empty nodes go, after the models file's consolidation delay (default 15 min):
            # a GPU node with a loaded model is never repacked.
            "disruption": {
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": _duration(pool.consolidate_after_s),
            },
        },
    }


def gke_compute_class(pool: NodePoolSpec) -> Obj:
    known = GKE_GPUS.get(pool.gpu_type)
    if known is None:
        raise RenderError(
            f"node_pools.{pool.name}.gpu_type",
            f"{pool.gpu_type!r} has no GKE accelerator mapping (known: {', '.join(sorted(GKE_GPUS))})",
        )
    accelerator, family = known
    priority = {"machineFamily": family, "gpu": {"type": accelerator, "count": pool.gpus_per_node}}
    return {
        "apiVersion": "cloud.google.com/v1",
        "kind": "ComputeClass",
        "metadata": {"name": f"gpu-{pool.name}", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {
            # Spot first, on-demand when spot has no capacity.
            "priorities": [{**priority, "spot": True}, {**priority, "spot": False}],
            "nodePoolAutoCreation": {"enabled": True},
            "nodePoolConfig": {"nodeLabels": {POOL_LABEL: pool.name}},
            "whenUnsatisfiable": "DoNotScaleUp",
        },
    }


def gke_patch(pool: NodePoolSpec) -> Obj:
    """Kustomize patch: pods of this pool also select its ComputeClass."""
    op = {
        "op": "add",
        "path": "/spec/template/spec/nodeSelector/cloud.google.com~1compute-class",
        "value": f"gpu-{pool.name}",
    }
    return {
        "target": {"kind": "Deployment", "labelSelector": f"{POOL_LABEL}={pool.name}"},
        "patch": dump_yaml([op]),
    }
