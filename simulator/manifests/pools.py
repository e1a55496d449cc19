"""GPU node pools per cloud, and the warm GPU buffer that keeps spare nodes in them.

Karpenter (karpenter.sh v1 NodePool API, karpenter.sh/docs/concepts/nodepools): ``karpenter.sh/v1``
NodePools with the ``nvidia.com/gpu=true:NoSchedule`` taint, the ``nvidia.com/gpu.present`` label
the NVIDIA device plugin's default affinity admits, a GPU limit, ``WhenEmpty`` consolidation, a
disruption budget, ``expireAfter`` and a ``terminationGracePeriod`` above the serving pods' own.
GKE (cloud.google.com/kubernetes-engine/docs/concepts/about-custom-compute-classes):
``cloud.google.com/v1`` ComputeClasses whose priorities follow the pool's ``capacity_type`` (a
reservation first when the pool names one, then on-demand, or spot then on-demand for spot pools),
with a boot disk sized for the image and the weights, selected through a kustomize patch.
"""

from __future__ import annotations

import math

from simulator.manifests.common import (
    BUFFER_PRIORITY_CLASS,
    GPU_PRESENT_LABEL,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    PART_OF,
    POOL_LABEL,
    Obj,
    RenderError,
    checkov_skips,
    dump_yaml,
    duration,
    gpu_toleration,
    labels,
    restricted_container_security,
    restricted_pod_security,
)
from simulator.manifests.models import ephemeral_gib, grace_period_s
from simulator.scenario import ModelSpec, NodePoolSpec, Scenario

EC2_NODE_CLASS = "gpu"
# Karpenter replaces every GPU node after 30 days (fresh AMI, no long-lived drift); a loaded node
# then waits for its replicas up to terminationGracePeriod.
EXPIRE_AFTER = "720h"
# Margin of the node's terminationGracePeriod over its slowest pod's own grace period.
NODE_GRACE_MARGIN_S = 300
# GKE boot disk: the OS and the kubelet's own use, plus the vLLM image, compressed layers and
# unpacked (9-12 GB compressed: DESIGN of the simulator's start-up model).
BOOT_DISK_SYSTEM_GB = 50
BOOT_DISK_IMAGE_GB = 40


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


def buffer_deployment(pool: NodePoolSpec, replicas: int, image: str) -> Obj:
    """Placeholders holding ``replicas`` spare nodes of ``pool``. They run the vLLM image asleep
    (``sleep infinity``), so the image is already on the node when a replica preempts one."""
    name = f"gpu-buffer-{pool.name}"
    pod_labels = labels(name, "gpu-buffer", **{POOL_LABEL: pool.name})
    gpu = {"cpu": "10m", "memory": "16Mi", GPU_RESOURCE: str(pool.gpus_per_node)}
    skips = checkov_skips(
        CKV_K8S_8="a placeholder sleeps and serves nothing: there is no liveness to probe",
        CKV_K8S_9="a placeholder sleeps and serves nothing: no traffic is routed to it",
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": pod_labels, "annotations": skips},
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
                            "name": "placeholder",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            # The image's entrypoint would start vLLM: sleep instead, holding the
                            # GPUs and the pulled image and nothing else.
                            "command": ["sleep", "infinity"],
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


def buffer_network_policy(pool: NodePoolSpec) -> Obj:
    """The placeholders talk to nothing and nothing talks to them: deny all, both ways."""
    name = f"gpu-buffer-{pool.name}"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": labels(name, "gpu-buffer")},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def pool_gpu_limit(scenario: Scenario, pool: NodePoolSpec) -> int:
    """GPUs the pool may hold: max_nodes whole nodes, else peak plus buffer nodes."""
    nodes = (
        pool.max_nodes
        if pool.max_nodes is not None
        else pool_peak_nodes(scenario, pool) + buffer_nodes(scenario, pool)
    )
    return max(nodes, 1) * pool.gpus_per_node


def _replicas_per_node(model: ModelSpec, pool: NodePoolSpec) -> int:
    return pool.gpus_per_node // model.gpus_per_replica


def node_grace_s(scenario: Scenario, pool: NodePoolSpec) -> int:
    """Karpenter's ``terminationGracePeriod``: the slowest serving pod's own grace plus margin,
    so an expiring or drifted node drains its replicas before anything is forced."""
    graces = [grace_period_s(m) for m in _pool_models(scenario, pool)] or [0]
    return max(graces) + NODE_GRACE_MARGIN_S


def boot_disk_gb(scenario: Scenario, pool: NodePoolSpec) -> int:
    """GKE boot disk: system and image, plus the node-local disk of as many replicas of the
    pool's hungriest model as fit on one node (weights download into emptyDirs there)."""
    per_node = [
        _replicas_per_node(m, pool) * ephemeral_gib(m) for m in _pool_models(scenario, pool)
    ] or [0]
    # GiB -> GB, rounded up to a 10 GB step.
    gb = BOOT_DISK_SYSTEM_GB + BOOT_DISK_IMAGE_GB + math.ceil(max(per_node) * 1.074)
    return math.ceil(gb / 10) * 10


def karpenter_nodepool(scenario: Scenario, pool: NodePoolSpec) -> Obj:
    capacity = ["spot", "on-demand"] if pool.capacity_type == "spot" else ["on-demand"]
    if pool.reservation is not None:
        # Karpenter's ReservedCapacity feature (v1.3+): the GPU EC2NodeClass selects the ODCR
        # (capacityReservationSelectorTerms) and reserved offerings are tried first.
        capacity = ["reserved", *capacity]
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": f"gpu-{pool.name}", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {
                        POOL_LABEL: pool.name,
                        # The NVIDIA device plugin's default affinity admits this node.
                        GPU_PRESENT_LABEL: "true",
                    }
                },
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
                    "expireAfter": EXPIRE_AFTER,
                    "terminationGracePeriod": duration(node_grace_s(scenario, pool)),
                },
            },
            "limits": {GPU_RESOURCE: str(pool_gpu_limit(scenario, pool))},
            "disruption": {
                # Only empty nodes go, after the models file's consolidation delay (default
                # 15 min): a GPU node with a loaded model is never repacked.
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": duration(pool.consolidate_after_s),
                # One GPU node at a time, whatever the reason (empty, drifted): a new AMI or
                # a mass expiry never takes a pool's capacity down at once.
                "budgets": [{"nodes": "1"}],
            },
        },
    }


def _gke_priorities(pool: NodePoolSpec, base: Obj) -> list[Obj]:
    """The pool's capacity in order: its reservation, then what the models file priced."""
    priorities: list[Obj] = []
    if pool.reservation is not None:
        priorities.append(
            {
                **base,
                "reservations": {"affinity": "Specific", "specific": [{"name": pool.reservation}]},
            }
        )
    if pool.capacity_type == "spot":
        priorities.append({**base, "spot": True})
    priorities.append({**base, "spot": False})
    return priorities


def gke_compute_class(scenario: Scenario, pool: NodePoolSpec) -> Obj:
    known = GKE_GPUS.get(pool.gpu_type)
    if known is None:
        raise RenderError(
            f"node_pools.{pool.name}.gpu_type",
            f"{pool.gpu_type!r} has no GKE accelerator mapping (known: {', '.join(sorted(GKE_GPUS))})",
        )
    accelerator, family = known
    base = {
        "machineFamily": family,
        "gpu": {"type": accelerator, "count": pool.gpus_per_node},
        # Image and weights land on the boot disk: sized so a full node never fills it.
        "storage": {"bootDiskSize": boot_disk_gb(scenario, pool)},
    }
    return {
        "apiVersion": "cloud.google.com/v1",
        "kind": "ComputeClass",
        "metadata": {"name": f"gpu-{pool.name}", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {
            "priorities": _gke_priorities(pool, base),
            "nodePoolAutoCreation": {"enabled": True},
            "nodePoolConfig": {"nodeLabels": {POOL_LABEL: pool.name}},
            # Never fall back to capacity the models file did not price.
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
