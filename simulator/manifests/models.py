"""Per model: the serving Deployment (vLLM + its Celery worker), Service, PodDisruptionBudget and
KEDA ScaledObject.

The pod (docs/deploy.md, "The serving pod"):

- vLLM runs as a native sidecar: an init container with ``restartPolicy: Always`` (Kubernetes
  1.29+ beta, on by default; GA 1.33). The kubelet starts the main containers only after its
  startupProbe passes and stops it only after they have exited, so the Celery worker (the main
  container, ``depthscale worker``) takes tasks only once vLLM serves and is gone before vLLM
  stops.
- Drain: on termination the worker stops taking tasks and finishes those it holds (at most
  ``max_generation_s`` each); then vLLM's preStop sleep lets endpoint removal reach the gateway,
  and ``--shutdown-timeout`` (vLLM >= 0.18, vllm-project/vllm#34730) lets its in-flight streams
  finish before it exits. ``terminationGracePeriodSeconds`` covers all three.
- Resources: GPUs requested = limits = ``gpus_per_replica``; no CPU limit on vLLM (throttling
  the API server and the scheduler loop stalls every stream, kubernetes.io "Resource Management
  for Pods and Containers"); memory for the process, the Memory-backed ``/dev/shm`` (it counts
  against the pod's memory) and any CPU KV offload (``--kv-offloading-size``); vLLM >= 0.18 has no
  CPU swap space (``--swap-space`` is deprecated and ignored, vllm-project/vllm#27984), so swap
  adds nothing. ``ephemeral-storage`` is sized from the weights the pod downloads.

Facts relied on (kubernetes pkg/controller/podautoscaler; vLLM's Kubernetes deployment docs):
the HPA's scale-down window and tolerance come from the models file's ``control_plane.hpa`` (the
policy owns the 10-minute window, so scaleDown's window is 0, and a tolerance of 0 keeps a
one-replica step from being swallowed).
"""

from __future__ import annotations

import math

from simulator.manifests.common import (
    DO_NOT_DISRUPT,
    GPU_RESOURCE,
    MODEL_LABEL,
    POOL_LABEL,
    SERVING_PRIORITY_CLASS,
    VLLM_PORT,
    WORKER_IMAGE,
    Obj,
    RenderError,
    RenderOptions,
    checkov_skips,
    duration,
    gpu_toleration,
    labels,
    restricted_container_security,
    restricted_pod_security,
)
from simulator.scenario import ModelSpec, NodePoolSpec, ScalingBehavior, Scenario

# Host resources of a vLLM replica per GPU: CPU cores requested (no limit) and GiB of memory for
# the API server, the engine core and the tokenizer. Sized to fit the one-GPU nodes of the example
# (g6.xlarge: 4 vCPU / 16 GiB; GKE g2-standard-4 the same) with the worker beside it.
CPU_PER_GPU = 2
MEMORY_GIB_PER_GPU = 8
# /dev/shm (Memory emptyDir): vLLM's inter-process queues need little; tensor parallelism's NCCL
# needs more (the runtime's 64 MB default breaks it).
SHM_GIB_SINGLE_GPU = 1
SHM_GIB_PER_GPU_TP = 2
# Scratch beside the weights: torch.compile and CUDA-graph caches under $HOME (/tmp), logs.
SCRATCH_GIB = 10
# The download directory holds the weights plus Hugging Face's temporary files while they land.
WEIGHTS_DISK_FACTOR = 1.1

# The Celery worker beside vLLM: threads waiting on HTTP, little CPU.
WORKER_RESOURCES = {"cpu": "250m", "memory": "512Mi"}
WORKER_LIMITS = {"cpu": "1", "memory": "1Gi"}
WORKER_SECRET = "depthscale-worker"

# startupProbe: period 10 s, at least 60 failures (10 minutes), else twice the slowest start-up
# the models file expects, so a cold weight download never gets the pod killed.
STARTUP_PERIOD_S = 10
STARTUP_MIN_FAILURES = 60
# Readiness and liveness: a busy vLLM answers /health late under load; 5 s before a probe counts
# as failed keeps endpoints from flapping (docs/deploy.md, troubleshooting).
PROBE_TIMEOUT_S = 5
# preStop: seconds vLLM keeps accepting after termination starts, so endpoint removal reaches
# kube-proxy and the gateway before it stops listening (kubernetes.io, "Termination of Pods").
PRESTOP_SLEEP_S = 15
# After the drain: engine teardown (workers, NCCL, CUDA) before the kubelet's SIGKILL.
TEARDOWN_S = 30
# progressDeadlineSeconds margin above the start-up budget: node launch is counted separately.
ROLLOUT_MARGIN_S = 300


def _extra_flag(model: ModelSpec, flag: str) -> str | None:
    """The value given to ``flag`` in the model's extra_args (``--flag v`` or ``--flag=v``)."""
    extra = list(model.extra_args)
    for i, arg in enumerate(extra):
        if arg == flag:
            return extra[i + 1] if i + 1 < len(extra) else ""
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def worker_concurrency(model: ModelSpec) -> int:
    """Tasks one replica's worker holds at once: the trigger's ``replicaConcurrency`` (the policy
    sizes on it), else vLLM's ``max_num_seqs`` (the trigger then carries no
    ``replicaConcurrency``, as the simulator ran the policy without one)."""
    configured = model.policy.to_policy_config().replica_concurrency
    return configured if configured is not None else model.max_concurrency


def shutdown_timeout_s(model: ModelSpec) -> int:
    """vLLM's ``--shutdown-timeout``: its longest stream may finish after SIGTERM."""
    return math.ceil(model.max_generation_s)


def grace_period_s(model: ModelSpec) -> int:
    """``terminationGracePeriodSeconds``: the worker's drain (its longest task), vLLM's preStop,
    vLLM's drain (its longest stream, possibly started just before the worker stopped) and the
    engine's teardown. A pod with nothing in flight exits long before it."""
    return (
        math.ceil(model.max_generation_s) + PRESTOP_SLEEP_S + shutdown_timeout_s(model) + TEARDOWN_S
    )


def startup_budget_s(model: ModelSpec) -> int:
    """Seconds the startupProbe allows before the kubelet restarts a loading vLLM."""
    failures = max(STARTUP_MIN_FAILURES, math.ceil(2 * model.startup_s.high / STARTUP_PERIOD_S))
    return failures * STARTUP_PERIOD_S


def ephemeral_gib(model: ModelSpec) -> int:
    """GiB of node disk one replica writes: the weights it downloads (none with a weights
    claim) plus scratch."""
    if model.weights_claim is not None or model.weights_gib is None:
        return SCRATCH_GIB
    return math.ceil(model.weights_gib * WEIGHTS_DISK_FACTOR) + SCRATCH_GIB


def _shm_gib(model: ModelSpec) -> int:
    gpus = model.gpus_per_replica
    return SHM_GIB_SINGLE_GPU if gpus == 1 else SHM_GIB_PER_GPU_TP * gpus


def _memory_gib(model: ModelSpec) -> int:
    offload = _extra_flag(model, "--kv-offloading-size")
    try:
        offload_gib = math.ceil(float(offload)) if offload else 0
    except ValueError:
        raise RenderError(
            f"models.{model.name}.extra_args", f"--kv-offloading-size {offload!r} is not GiB"
        ) from None
    return MEMORY_GIB_PER_GPU * model.gpus_per_replica + _shm_gib(model) + offload_gib


def _check_renderable(model: ModelSpec) -> None:
    where = f"models.{model.name}"
    if model.policy.include_unacked is not True:
        raise RenderError(
            f"{where}.policy.includeUnacked",
            "must be true: the worker acks late, so a task in flight is only in the unacked set "
            "(and the simulator counts in-flight tasks only with it)",
        )
    if worker_concurrency(model) > model.max_concurrency:
        raise RenderError(
            f"{where}.policy.replicaConcurrency",
            f"{worker_concurrency(model)} tasks at once exceed vLLM's max_concurrency "
            f"{model.max_concurrency}",
        )
    owned = ("--gpu-memory-utilization", "--max-model-len", "--shutdown-timeout", "--max-num-seqs")
    for flag in owned:
        if _extra_flag(model, flag) is not None:
            raise RenderError(
                f"{where}.extra_args", f"{flag} is rendered from the models file's own key"
            )


def _vllm_args(model: ModelSpec) -> list[str]:
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
        "--gpu-memory-utilization",
        f"{model.gpu_memory_utilization:g}",
        "--max-model-len",
        str(model.max_model_len),
        # Prompts and outputs stay out of the logs (off by default since vLLM 0.11, where
        # --disable-log-requests gave way to --enable-log-requests; said here so it stays off).
        "--no-enable-log-requests",
        # SIGTERM: stop taking requests, let in-flight ones finish for up to this long.
        "--shutdown-timeout",
        str(shutdown_timeout_s(model)),
    ]
    given = _extra_flag(model, "--tensor-parallel-size")
    if given is not None:
        if given != str(model.gpus_per_replica):
            raise RenderError(
                f"models.{model.name}.extra_args",
                f"--tensor-parallel-size {given or '(missing)'} disagrees with gpus_per_replica "
                f"{model.gpus_per_replica}",
            )
    elif model.gpus_per_replica > 1:
        args += ["--tensor-parallel-size", str(model.gpus_per_replica)]
    return args + list(model.extra_args)


def _health_probe(period_s: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": PROBE_TIMEOUT_S,
        "failureThreshold": failures,
    }


def _vllm_container(model: ModelSpec, scenario: Scenario) -> Obj:
    gpus = str(model.gpus_per_replica)
    memory = f"{_memory_gib(model)}Gi"
    env: list[Obj] = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": "/models/huggingface"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {
            "name": "HF_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": "huggingface", "key": "token", "optional": True}
            },
        },
    ]
    if model.weights_claim is not None:
        # The claim already holds the weights: never reach the Hub from a replica.
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    return {
        "name": "vllm",
        "image": scenario.vllm.image,
        "imagePullPolicy": "IfNotPresent",
        # A native sidecar: started before the worker, stopped after it.
        "restartPolicy": "Always",
        "args": _vllm_args(model),
        "env": env,
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        # Weight download and load take minutes: the startupProbe holds the others off (and
        # holds the worker back) instead of a liveness delay that kills loading pods.
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": STARTUP_PERIOD_S,
            "timeoutSeconds": PROBE_TIMEOUT_S,
            "failureThreshold": startup_budget_s(model) // STARTUP_PERIOD_S,
        },
        "readinessProbe": _health_probe(5, 3),
        "livenessProbe": _health_probe(10, 6),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
        "resources": {
            # No CPU limit: CFS throttling of the API server or the engine loop stalls streams.
            "requests": {
                "cpu": str(CPU_PER_GPU * model.gpus_per_replica),
                "memory": memory,
                "ephemeral-storage": f"{ephemeral_gib(model)}Gi",
                GPU_RESOURCE: gpus,
            },
            "limits": {"memory": memory, GPU_RESOURCE: gpus},
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},
            {
                "name": "model-cache",
                "mountPath": "/models",
                **({"readOnly": True} if model.weights_claim is not None else {}),
            },
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _worker_container(model: ModelSpec) -> Obj:
    """The Celery worker: ``depthscale worker`` (worker/settings.py holds the flags)."""

    def secret(name: str, key: str) -> Obj:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": WORKER_SECRET, "key": key}}}

    return {
        "name": "worker",
        "image": WORKER_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["depthscale", "worker"],
        "args": [
            "--model",
            model.name,
            "--queues",
            ",".join(model.queues),
            "--concurrency",
            str(worker_concurrency(model)),
            "--vllm-url",
            f"http://127.0.0.1:{VLLM_PORT}",
            "--max-generation-seconds",
            f"{model.max_generation_s:g}",
        ],
        "env": [
            secret("DEPTHSCALE_BROKER_URL", "broker-url"),
            secret("DEPTHSCALE_RESULT_BACKEND", "result-backend"),
        ],
        "resources": {"requests": dict(WORKER_RESOURCES), "limits": dict(WORKER_LIMITS)},
        "securityContext": {**restricted_container_security(), "readOnlyRootFilesystem": True},
        # A read-only root, and a small scratch /tmp of its own (Python's tempfile, Celery).
        "volumeMounts": [{"name": "worker-tmp", "mountPath": "/tmp"}],
    }


def _volumes(model: ModelSpec) -> list[Obj]:
    cache: Obj
    if model.weights_claim is not None:
        cache = {
            "name": "model-cache",
            "persistentVolumeClaim": {"claimName": model.weights_claim, "readOnly": True},
        }
    else:
        # Default: each replica downloads into node-local disk (NVMe instance store on EKS,
        # the sized boot disk on GKE): no shared storage to set up before the first apply.
        bound = (
            {}
            if model.weights_gib is None
            else {"sizeLimit": f"{math.ceil(model.weights_gib * WEIGHTS_DISK_FACTOR)}Gi"}
        )
        cache = {"name": "model-cache", "emptyDir": bound}
    return [
        # Memory-backed: the runtime's 64 MB /dev/shm breaks tensor-parallel NCCL.
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{_shm_gib(model)}Gi"}},
        cache,
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{SCRATCH_GIB}Gi"}},
        {"name": "worker-tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]


def vllm_deployment(model: ModelSpec, pool: NodePoolSpec, scenario: Scenario) -> Obj:
    """The model's serving Deployment. No ``replicas``: KEDA's HPA owns the count."""
    _check_renderable(model)
    pod_labels = labels(
        model.name, "model-server", **{MODEL_LABEL: model.name, POOL_LABEL: pool.name}
    )
    selector = {"app.kubernetes.io/name": model.name}
    # checkov's findings that do not apply here, each with its reason (docs/deploy.md, "The
    # checks"); tests/manifests/test_checkov.py fails on any other finding.
    skips = checkov_skips(
        CKV_K8S_8="the worker serves no port; vLLM's probes gate the pod, the worker starts after",
        CKV_K8S_9="the worker serves no port; vLLM's readiness probe decides the pod's readiness",
        CKV_K8S_11="no CPU limit on vLLM: CFS throttling of its engine loop stalls every stream",
        CKV_K8S_15="images are pinned (vLLM by digest): IfNotPresent reuses what the warm buffer pulled",
        CKV_K8S_22="vLLM's compilers (torch.compile, Triton) write caches at run time; the worker's is read-only",
        CKV_K8S_35="the worker's contract reads its broker URLs from the environment (a Secret)",
        CKV_K8S_43="the worker image is set by the overlay's kustomize images: entry; pin its digest there",
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": model.name, "labels": pod_labels, "annotations": skips},
        "spec": {
            "revisionHistoryLimit": 3,
            # A rollout may wait for a GPU node and a cold start before it reports no progress.
            "progressDeadlineSeconds": startup_budget_s(model)
            + math.ceil(pool.launch_s.high)
            + ROLLOUT_MARGIN_S,
            "selector": {"matchLabels": selector},
            # A surge pod needs a free GPU (the warm buffer's); never drop below the count.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    # Neither autoscaler moves a loaded replica (Karpenter; GKE's autoscaler).
                    "annotations": dict(DO_NOT_DISRUPT),
                },
                "spec": {
                    "priorityClassName": SERVING_PRIORITY_CLASS,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": grace_period_s(model),
                    "nodeSelector": {POOL_LABEL: pool.name},
                    "tolerations": [gpu_toleration()],
                    # Replicas spread over zones and nodes when they can; a single GPU type's
                    # stock-out in one zone then takes out only part of the model.
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": key,
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": dict(selector)},
                        }
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                    ],
                    "securityContext": restricted_pod_security(),
                    "initContainers": [_vllm_container(model, scenario)],
                    "containers": [_worker_container(model)],
                    "volumes": _volumes(model),
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


def pod_disruption_budget(model: ModelSpec) -> Obj:
    """At most one replica of the model evicted at a time by a voluntary disruption (node drains,
    upgrades); scale-down by the HPA is not an eviction and is not held back. A replica still
    loading (not ready) may always be evicted, so a stuck start never blocks a drain."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": model.name,
            "labels": labels(model.name, "model-server", **{MODEL_LABEL: model.name}),
        },
        "spec": {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": {"app.kubernetes.io/name": model.name}},
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
    """KEDA ScaledObject: external trigger to the scaler, fallback, HPA behavior from the file.
    The metadata is the models file's policy block as the simulator ran it: ``includeUnacked`` is
    true (``render`` refuses otherwise: the worker acks late), and ``replicaConcurrency``, when
    set, is the worker's ``--concurrency``."""
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
            "triggers": [
                {
                    "type": "external",
                    "metricType": "AverageValue",
                    "metadata": metadata,
                    # The scaler's port speaks mutual TLS: KEDA's CA and client certificate.
                    **(
                        {"authenticationRef": {"name": options.trigger_authentication}}
                        if options.trigger_authentication
                        else {}
                    ),
                },
                *(
                    [
                        online_trigger(
                            model, options, scenario.control_plane.prometheus.scrape_interval_s
                        )
                    ]
                    if model.served_online
                    else []
                ),
            ],
        },
    }


ONLINE_TRIGGER = "online"
"""The name of the second trigger of a model served online (KEDA's trigger ``name``)."""


def online_query(model: ModelSpec, namespace: str, scrape_s: float) -> str:
    """PromQL: requests running or waiting in vLLM, summed over the model's pods, at its highest
    over the policy's ``stabilizationWindowSeconds`` (a subquery stepping at the scrape interval
    ``scrape_s``): online load scales down only to the busiest moment of the window, as the
    policy does for Celery load, and up at once. The series are the rendered PodMonitor's
    (``namespace`` and ``model`` come from the pod), so a pod that is gone drops out at its next
    missed scrape (Prometheus' staleness markers)."""
    selector = (
        '__name__=~"vllm:num_requests_(running|waiting)", '
        f'namespace="{namespace}", model="{model.name}"'
    )
    total = f"sum({{{selector}}})"
    hold = model.policy.to_policy_config().stabilization_window_s
    if hold <= 0:
        return total
    return f"max_over_time({total}[{duration(hold)}:{duration(scrape_s)}])"


def online_trigger(model: ModelSpec, options: RenderOptions, scrape_s: float) -> Obj:
    """KEDA's ``prometheus`` scaler on vLLM's own gauges, for traffic the scaler never sees
    (docs/online.md). ``AverageValue``: the HPA asks for ``ceil(sum / threshold)`` replicas and
    takes the larger of that and the depthscale trigger's proposal (kubernetes
    pkg/controller/podautoscaler, horizontal.go ``computeReplicasForMetrics``); KEDA keeps the
    model active while either trigger is. ``activationThreshold`` stays at KEDA's 0: the model
    keeps one replica anyway (``minReplicaCount`` >= 1)."""
    if not model.online.trigger:
        raise RenderError(
            f"models.{model.name}.online.trigger",
            "false deploys online traffic that no autoscaler sees (a what-if for the simulator "
            "only); remove it",
        )
    target = model.online.target_per_replica
    assert target is not None  # filled by the scenario
    return {
        "type": "prometheus",
        "name": ONLINE_TRIGGER,
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": options.prometheus_address,
            "query": online_query(model, options.namespace, scrape_s),
            "threshold": f"{target:g}",
        },
    }
