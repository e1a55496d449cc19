"""Per-model Kubernetes objects from the models file: pure functions, no I/O.

What one scenario becomes (``render_tree`` returns it as relative path -> file text):

- per model: a vLLM Deployment, a ClusterIP Service and a KEDA ScaledObject whose ``external``
  trigger addresses the depthscale scaler with the model's policy thresholds as metadata;
- per node pool with a warm buffer: a placeholder Deployment (pause container, whole-node GPU
  request, lowest priority) that vLLM pods preempt;
- the gateway's routing table (ConfigMap ``gateway-routes``: ``routes.map`` and ``upstreams.conf``);
- per cloud, a kustomize Component with the GPU node pools: Karpenter NodePools
  (``pools/eks-karpenter``) or GKE ComputeClasses plus the nodeSelector patches that pick them
  (``pools/gke``).

Facts relied on (DESIGN.md §3, §7): the HPA's scale-down window and tolerance come from the models
file's ``control_plane.hpa`` (the policy owns the 10-minute window, so scaleDown's window is 0 and
the tolerance 0 keeps a ±1 replica step from being swallowed); vLLM needs a Memory ``/dev/shm``
and a startupProbe long enough for weight download; serving pods carry
``karpenter.sh/do-not-disrupt``; GPU nodes carry the ``nvidia.com/gpu`` NoSchedule taint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from simulator.scenario import ModelSpec, NodePoolSpec, ScalingBehavior, Scenario

Obj = dict[str, Any]

PART_OF = "depthscale"
POOL_LABEL = "depthscale.io/node-pool"
MODEL_LABEL = "depthscale.io/model"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
VLLM_PORT = 8000
SERVING_PRIORITY_CLASS = "depthscale-model-serving"
BUFFER_PRIORITY_CLASS = "depthscale-gpu-buffer"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
EC2_NODE_CLASS = "gpu"

# Host resources per GPU of a vLLM replica (CPU cores, GiB): enough for the API server, the
# tokenizer and loading weights through the page cache; fits every GPU instance in the price
# table (the smallest, g5.xlarge, has 4 vCPU / 16 GiB per GPU).
CPU_PER_GPU = 3
MEMORY_GIB_PER_GPU = 12
SHM_GIB_PER_GPU = 2

# startupProbe: period 10 s, at least 60 failures (10 minutes), else twice the slowest start-up
# the models file expects, so a cold weight download never gets the pod killed.
STARTUP_PERIOD_S = 10
STARTUP_MIN_FAILURES = 60

# GKE accelerator and machine family per GPU type of the price table.
GKE_GPUS: dict[str, tuple[str, str]] = {
    "T4": ("nvidia-tesla-t4", "n1"),
    "L4": ("nvidia-l4", "g2"),
    "A100-40GB": ("nvidia-tesla-a100", "a2"),
    "A100-80GB": ("nvidia-a100-80gb", "a2"),
    "H100": ("nvidia-h100-80gb", "a3"),
}

_NGINX_UNSAFE = re.compile(r"[\s\"'\\;{}$#]")


class RenderError(ValueError):
    """The scenario cannot become manifests. ``path`` names the models-file key at fault."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


DEFAULT_NAMESPACE = "depthscale"
DEFAULT_BROKER = "celery"
DEFAULT_SCALER_ADDRESS = "depthscale-scaler.depthscale.svc.cluster.local:9090"


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Deployment-specific values the models file does not hold.

    namespace:       namespace of the model objects (the gateway's and the scaler's too).
    broker:          broker name the ScaledObjects ask the scaler for (``serve --broker NAME=URL``).
    scaler_address:  host:port of the scaler's gRPC Service, as KEDA dials it.
    fallback_failures: failed KEDA polls before the ScaledObject's fallback applies, >= 1.
    """

    namespace: str = DEFAULT_NAMESPACE
    broker: str = DEFAULT_BROKER
    scaler_address: str = DEFAULT_SCALER_ADDRESS
    fallback_failures: int = 4


def _labels(name: str, component: str, **extra: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        **extra,
    }


def _gpu_toleration() -> Obj:
    # Exists matches both Karpenter's nvidia.com/gpu=true and GKE's nvidia.com/gpu=present.
    return {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def _restricted_pod_security() -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _restricted_container_security() -> Obj:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _vllm_args(model: ModelSpec) -> list[str]:
    extra = list(model.extra_args)
    args = [
        "--model",
        model.served_model,
        "--served-model-name",
        *([model.served_model, model.name] if model.served_model != model.name else [model.name]),
        "--host",
        "0.0.0.0",
        "--port",
        str(VLLM_PORT),
        "--max-num-seqs",
        str(model.max_concurrency),
    ]
    if "--tensor-parallel-size" in extra:
        i = extra.index("--tensor-parallel-size")
        given = extra[i + 1] if i + 1 < len(extra) else ""
        if given != str(model.gpus_per_replica):
            raise RenderError(
                f"models.{model.name}.extra_args",
                f"--tensor-parallel-size {given or '(missing)'} disagrees with gpus_per_replica "
                f"{model.gpus_per_replica}",
            )
    elif model.gpus_per_replica > 1:
        args += ["--tensor-parallel-size", str(model.gpus_per_replica)]
    return args + extra


def vllm_deployment(model: ModelSpec, pool: NodePoolSpec) -> Obj:
    """The model's vLLM Deployment. No ``replicas``: KEDA's HPA owns the count."""
    gpus = model.gpus_per_replica
    startup_failures = max(
        STARTUP_MIN_FAILURES, math.ceil(2 * model.startup_s.high / STARTUP_PERIOD_S)
    )
    resources = {
        "cpu": str(CPU_PER_GPU * gpus),
        "memory": f"{MEMORY_GIB_PER_GPU * gpus}Gi",
        GPU_RESOURCE: str(gpus),
    }
    labels = _labels(model.name, "model-server", **{MODEL_LABEL: model.name, POOL_LABEL: pool.name})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": model.name, "labels": labels},
        "spec": {
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": model.name}},
            # A surge pod needs a free GPU (the warm buffer's); never drop below the count.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    # Karpenter must not consolidate a node from under a loaded model.
                    "annotations": {"karpenter.sh/do-not-disrupt": "true"},
                },
                "spec": {
                    "priorityClassName": SERVING_PRIORITY_CLASS,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 120,
                    "nodeSelector": {POOL_LABEL: pool.name},
                    "tolerations": [_gpu_toleration()],
                    "securityContext": _restricted_pod_security(),
                    "containers": [
                        {
                            "name": "vllm",
                            "image": model.image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": _vllm_args(model),
                            "env": [
                                {"name": "HOME", "value": "/tmp"},
                                {"name": "HF_HOME", "value": "/models/huggingface"},
                                {
                                    "name": "HF_TOKEN",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": "huggingface",
                                            "key": "token",
                                            "optional": True,
                                        }
                                    },
                                },
                            ],
                            "ports": [
                                {"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}
                            ],
                            # Weight download and load take minutes: the startupProbe holds the
                            # other probes off instead of a liveness delay that kills loading pods.
                            "startupProbe": {
                                "httpGet": {"path": "/health", "port": "http"},
                                "periodSeconds": STARTUP_PERIOD_S,
                                "failureThreshold": startup_failures,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/health", "port": "http"},
                                "periodSeconds": 5,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/health", "port": "http"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 5,
                                "failureThreshold": 6,
                            },
                            "resources": {"requests": resources, "limits": dict(resources)},
                            "securityContext": _restricted_container_security(),
                            "volumeMounts": [
                                {"name": "shm", "mountPath": "/dev/shm"},
                                {"name": "model-cache", "mountPath": "/models"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        # The runtime's 64 MB /dev/shm breaks tensor-parallel NCCL.
                        {
                            "name": "shm",
                            "emptyDir": {
                                "medium": "Memory",
                                "sizeLimit": f"{SHM_GIB_PER_GPU * gpus}Gi",
                            },
                        },
                        # Weights downloaded once per pod; swap for a ReadOnlyMany PVC holding
                        # the weights to skip the download (docs/deploy.md).
                        {"name": "model-cache", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def vllm_service(model: ModelSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": model.name,
            "labels": _labels(model.name, "model-server", **{MODEL_LABEL: model.name}),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": model.name},
            "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _behavior(rules: ScalingBehavior) -> Obj:
    return {
        "stabilizationWindowSeconds": rules.stabilization_window_s,
        "policies": [
            {"type": p.type, "value": p.value, "periodSeconds": p.period_s} for p in rules.policies
        ],
        "selectPolicy": rules.select_policy,
        # A resource.Quantity in the API: a string keeps fractions exact.
        "tolerance": f"{rules.tolerance:g}",
    }


def scaled_object(model: ModelSpec, scenario: Scenario, options: RenderOptions) -> Obj:
    """KEDA ScaledObject: external trigger to the scaler, fallback, HPA behavior from the file."""
    config = model.policy.to_policy_config()
    keda = scenario.control_plane.keda
    hpa = scenario.control_plane.hpa
    metadata = {
        "scalerAddress": options.scaler_address,
        "broker": options.broker,
        "queues": ",".join(model.queues),
        "model": model.name,
        **model.policy.to_metadata(),
    }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": model.name,
            "labels": _labels(model.name, "autoscaling", **{MODEL_LABEL: model.name}),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name},
            "pollingInterval": math.ceil(keda.polling_interval_s),
            "cooldownPeriod": math.ceil(keda.cooldown_period_s),
            "minReplicaCount": config.min_replicas,
            "maxReplicaCount": config.max_replicas,
            # Scaler unreachable or broker down for this many polls: keep what runs (never less
            # than one replica), rather than a made-up 0 (DESIGN.md §2).
            "fallback": {
                "failureThreshold": options.fallback_failures,
                "replicas": max(config.min_replicas, 1),
                "behavior": "currentReplicasIfHigher",
            },
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": _behavior(hpa.scale_up),
                        "scaleDown": _behavior(hpa.scale_down),
                    }
                }
            },
            "triggers": [{"type": "external", "metricType": "AverageValue", "metadata": metadata}],
        },
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
    labels = _labels(name, "gpu-buffer", **{POOL_LABEL: pool.name})
    gpu = {"cpu": "10m", "memory": "16Mi", GPU_RESOURCE: str(pool.gpus_per_node)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": BUFFER_PRIORITY_CLASS,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {POOL_LABEL: pool.name},
                    "tolerations": [_gpu_toleration()],
                    "securityContext": _restricted_pod_security(),
                    "containers": [
                        {
                            "name": "pause",
                            "image": PAUSE_IMAGE,
                            "resources": {"requests": gpu, "limits": dict(gpu)},
                            "securityContext": {
                                **_restricted_container_security(),
                                "readOnlyRootFilesystem": True,
                            },
                        }
                    ],
                },
            },
        },
    }


def _nginx_name(path: str, value: str) -> str:
    if not value or value.startswith("~") or _NGINX_UNSAFE.search(value) or len(value) > 256:
        raise RenderError(
            path,
            f"{value!r} cannot be a gateway route (no whitespace, quotes, backslashes, ';', "
            "'{', '}', '$', '#', no leading '~', at most 256 characters)",
        )
    return value


def gateway_routes(scenario: Scenario) -> Obj:
    """ConfigMap ``gateway-routes``: model names -> upstreams, one upstream per model Service."""
    routes: dict[str, str] = {}
    for model in scenario.models.values():
        for key, path in ((model.name, "name"), (model.served_model, "served_model")):
            _nginx_name(f"models.{model.name}.{path}", key)
            owner = routes.setdefault(key, model.name)
            if owner != model.name:
                raise RenderError(
                    f"models.{model.name}.{path}", f"{key!r} already routes to model {owner}"
                )
    route_lines = [f'"{key}" {routes[key]};' for key in sorted(routes)]
    upstream_lines = [
        f"upstream {m.name} {{ server {m.name}:{VLLM_PORT}; keepalive 16; }}"
        for m in sorted(scenario.models.values(), key=lambda m: m.name)
    ]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "gateway-routes", "labels": _labels("depthscale-gateway", "gateway")},
        "data": {
            "routes.map": "\n".join(route_lines) + "\n",
            "upstreams.conf": "\n".join(upstream_lines) + "\n",
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


def render_tree(scenario: Scenario, source_name: str, options: RenderOptions) -> dict[str, str]:
    """Every rendered file: relative path -> text. Deterministic for a given scenario."""
    header = f"# Generated by `depthscale render` from {source_name}. Do not edit: edit the models file and render again.\n"
    files: dict[str, str] = {}
    resources: list[str] = []
    for model in scenario.models.values():
        pool = scenario.node_pools[model.node_pool]
        objects = [
            vllm_deployment(model, pool),
            vllm_service(model),
            scaled_object(model, scenario, options),
        ]
        files[f"{model.name}.yaml"] = dump_documents(objects, header)
        resources.append(f"{model.name}.yaml")
    for pool in scenario.node_pools.values():
        spare = buffer_nodes(scenario, pool)
        if spare > 0:
            path = f"buffer-{pool.name}.yaml"
            files[path] = dump_documents([buffer_deployment(pool, spare)], header)
            resources.append(path)
    files["gateway-routes.yaml"] = dump_documents([gateway_routes(scenario)], header)
    resources.append("gateway-routes.yaml")
    files["kustomization.yaml"] = header + dump_yaml(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": options.namespace,
            "resources": resources,
        }
    )

    pools = list(scenario.node_pools.values())
    files["pools/eks-karpenter/nodepools.yaml"] = dump_documents(
        [karpenter_nodepool(scenario, p) for p in pools], header
    )
    files["pools/eks-karpenter/kustomization.yaml"] = header + dump_yaml(
        {
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "resources": ["nodepools.yaml"],
        }
    )
    files["pools/gke/computeclasses.yaml"] = dump_documents(
        [gke_compute_class(p) for p in pools], header
    )
    files["pools/gke/kustomization.yaml"] = header + dump_yaml(
        {
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "resources": ["computeclasses.yaml"],
            "patches": [gke_patch(p) for p in pools],
        }
    )
    return files
