"""Per model: the vLLM Deployment, its ClusterIP Service and its KEDA ScaledObject.

Facts relied on (kubernetes pkg/controller/podautoscaler; vLLM's Kubernetes deployment docs): vLLM needs a Memory-backed ``/dev/shm`` (the runtime's 64 MB
breaks tensor-parallel NCCL) and a startupProbe long enough for weight download; serving pods carry
``karpenter.sh/do-not-disrupt``; the HPA's scale-down window and tolerance come from the models
file's ``control_plane.hpa`` (the policy owns the 10-minute window, so scaleDown's window is 0, and
a tolerance of 0 keeps a one-replica step from being swallowed).
"""

from __future__ import annotations

import math

from simulator.manifests.common import (
    GPU_RESOURCE,
    MODEL_LABEL,
    POOL_LABEL,
    SERVING_PRIORITY_CLASS,
    VLLM_PORT,
    Obj,
    RenderError,
    RenderOptions,
    gpu_toleration,
    labels,
    restricted_container_security,
    restricted_pod_security,
)
from simulator.scenario import ModelSpec, NodePoolSpec, ScalingBehavior, Scenario

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
    pod_labels = labels(
        model.name, "model-server", **{MODEL_LABEL: model.name, POOL_LABEL: pool.name}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": model.name, "labels": pod_labels},
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
                    "labels": pod_labels,
                    # Karpenter must not consolidate a node from under a loaded model.
                    "annotations": {"karpenter.sh/do-not-disrupt": "true"},
                },
                "spec": {
                    "priorityClassName": SERVING_PRIORITY_CLASS,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 120,
                    "nodeSelector": {POOL_LABEL: pool.name},
                    "tolerations": [gpu_toleration()],
                    "securityContext": restricted_pod_security(),
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
                            "securityContext": restricted_container_security(),
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
            "labels": labels(model.name, "model-server", **{MODEL_LABEL: model.name}),
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
            "labels": labels(model.name, "autoscaling", **{MODEL_LABEL: model.name}),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name},
            "pollingInterval": math.ceil(keda.polling_interval_s),
            "cooldownPeriod": math.ceil(keda.cooldown_period_s),
            "minReplicaCount": config.min_replicas,
            "maxReplicaCount": config.max_replicas,
            # Scaler unreachable or broker down for this many polls: keep what runs (never less
            # than one replica), rather than a made-up 0 (kedacore/keda v2.20: externalscaler.proto and the metrics adapter).
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
