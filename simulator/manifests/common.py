"""What every rendered object shares: labels, names, the GPU toleration, Pod Security settings,
the errors and options of a render, and the YAML writer (plain, no anchors, literal blocks)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

Obj = dict[str, Any]
PART_OF = "depthscale"
POOL_LABEL = "depthscale.io/node-pool"
MODEL_LABEL = "depthscale.io/model"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
VLLM_PORT = 8000
SERVING_PRIORITY_CLASS = "depthscale-model-serving"
BUFFER_PRIORITY_CLASS = "depthscale-gpu-buffer"
# The label the NVIDIA device plugin's default node affinity admits a GPU node by when NFD does
# not label it (NVIDIA/k8s-device-plugin, deployments/helm/nvidia-device-plugin/values.yaml).
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
# The Celery worker's image (the Dockerfile's `worker` target); the overlays' kustomize `images:`
# entry named `depthscale-worker`, beside the scaler's `depthscale`, points it at your registry,
# tag or digest (docs/deploy.md, "The images").
WORKER_IMAGE = "depthscale-worker:0.1.0"
# Loaded replicas are never moved by either autoscaler: Karpenter (EKS) and the cluster
# autoscaler behind GKE's node auto-provisioning each read their own annotation.
DO_NOT_DISRUPT = {
    "karpenter.sh/do-not-disrupt": "true",
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
}


class RenderError(ValueError):
    """The scenario cannot become manifests. ``path`` names the models-file key at fault."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


DEFAULT_NAMESPACE = "depthscale"
DEFAULT_BROKER = "celery"
DEFAULT_SCALER_ADDRESS = "depthscale-scaler.depthscale.svc.cluster.local:9090"
# kube-prometheus-stack's Prometheus, as the Prometheus Operator exposes it (the Service
# `prometheus-operated`) in the namespace `monitoring` (docs/monitoring.md).
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc.cluster.local:9090"


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Deployment-specific values the models file does not hold.

    namespace:       namespace of the model objects (the gateway's and the scaler's too).
    broker:          broker name the ScaledObjects ask the scaler for (``serve --broker NAME=URL``).
    scaler_address:  host:port of the scaler's gRPC Service, as KEDA dials it.
    fallback_failures: failed KEDA polls before the ScaledObject's fallback applies, >= 1.
    prometheus_address: URL of the Prometheus the online trigger queries (``serverAddress``).
    trigger_authentication: TriggerAuthentication KEDA dials the scaler with (mutual TLS,
                     docs/tls.md); None for a scaler without TLS.
    """

    namespace: str = DEFAULT_NAMESPACE
    broker: str = DEFAULT_BROKER
    scaler_address: str = DEFAULT_SCALER_ADDRESS
    fallback_failures: int = 4
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS
    trigger_authentication: str | None = "depthscale-scaler-tls"


def labels(name: str, component: str, **extra: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        **extra,
    }


def gpu_toleration() -> Obj:
    # Exists matches both Karpenter's nvidia.com/gpu=true and GKE's nvidia.com/gpu=present.
    return {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def restricted_pod_security() -> Obj:
    # A UID above 10000 never collides with a host account (the depthscale image's own user).
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> Obj:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def checkov_skips(**reasons: str) -> dict[str, str]:
    """checkov skip annotations (``checkov.io/skipN: CKV_K8S_xx=reason``), one per check, each
    with the one-line reason the check does not apply to this object."""
    return {
        f"checkov.io/skip{i}": f"{check}={reason}"
        for i, (check, reason) in enumerate(sorted(reasons.items()), start=1)
    }


def duration(seconds: float) -> str:
    """A Go duration string for whole seconds: ``15m``, ``2h``, ``90s``."""
    whole = math.ceil(seconds)
    if whole % 3600 == 0 and whole:
        return f"{whole // 3600}h"
    if whole % 60 == 0 and whole:
        return f"{whole // 60}m"
    return f"{whole}s"


class _Dumper(yaml.SafeDumper):
    """Plain YAML for people: no anchors/aliases, multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)


def dump_documents(objects: Iterable[Obj], header: str) -> str:
    """Objects as one multi-document YAML text, keys in insertion order."""
    return header + "---\n".join(dump_yaml(o) for o in objects)
