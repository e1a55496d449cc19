"""Per-model latency-SLO alerting, from the same numbers the simulator plans with.

The models file knows what the cluster cannot: how many requests per second one replica of each
model serves (``service.throughput_rps``, from vLLM's published figures) and the queue-wait SLO
(``slo_wait_s``). From them, the wait the newest task faces is estimated as

    pending tasks / (throughput per replica x ready replicas)   seconds

(ready replicas from kube-state-metrics, at least 1 so a model at zero still gets an estimate).
Above the SLO for 10 minutes, the backlog is burning the SLO and the alert pages.

Also per model, because the threshold is the model's own: vLLM reserves
``--gpu-memory-utilization`` of each GPU at start (weights plus the KV-cache pool; vLLM's engine
arguments, default 0.9; the models file's ``gpu_memory_utilization``), so its GPU sits near that
share whatever the load. Memory used above the
reservation plus a margin means something outside the pool is growing, and the next spike
out-of-memories the replica (``VLLMGPUMemoryAboveReservation``). And one PodMonitor scrapes every
vLLM pod's ``/metrics`` (vLLM's own serving metrics), labelled with the model's name.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulator.manifests.common import MODEL_LABEL, Obj, duration, labels
from simulator.scenario import Scenario

RECORD = "depthscale:queue_wait_estimate:seconds"
SUSTAINED = "10m"

# Memory above the reservation before the alert: 5 points of the card (4 GB of an 80 GB H100).
RESERVATION_MARGIN = 0.05
# The highest threshold that can still fire (used / (used + free) never reaches 1 on a live GPU).
MAX_MEMORY_THRESHOLD = 0.99
MEMORY_SUSTAINED = "10m"
# Pod label the PodMonitor turns into the metric label `model` (the scaler's metrics and the
# queue-wait rules use the same label, so vLLM's series join them).
POD_MONITOR = "vllm"
MODEL_SERVER_COMPONENT = "model-server"
VLLM_PORT_NAME = "http"


# Only triggers a scaler evaluated in the last two minutes (KEDA asks every 30 s): a scaler
# replica KEDA no longer calls keeps exporting its last values.
FRESH = "(time() - depthscale_last_evaluation_timestamp_seconds < 120)"


def _estimate(model: str, throughput_rps: float) -> str:
    ready = (
        f'label_replace(kube_deployment_status_replicas_ready{{deployment="{model}"}}, '
        f'"model", "$1", "deployment", "(.+)")'
    )
    return (
        f'max by (namespace, model) (depthscale_pending_tasks{{model="{model}"}} and {FRESH})\n'
        f"  / on (namespace, model)\n"
        f"({throughput_rps:g} * clamp_min(max by (namespace, model) ({ready}), 1))\n"
    )


def slo_rules(scenario: Scenario) -> Obj:
    """PrometheusRule ``depthscale-model-slo``: one wait estimate per model, one alert."""
    rules: list[Obj] = [
        # The static label keeps the per-model records of one name apart (promtool checks it).
        {
            "record": RECORD,
            "expr": _estimate(m.name, m.service.throughput_rps),
            "labels": {"model": m.name},
        }
        for m in sorted(scenario.models.values(), key=lambda m: m.name)
    ]
    slo = scenario.slo_wait_s
    rules.append(
        {
            "alert": "DepthscaleQueueWaitOverSLO",
            "expr": f"{RECORD} > {slo:g}",
            "for": SUSTAINED,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": (
                    "{{ $labels.model }}: tasks wait about {{ $value | humanizeDuration }} "
                    f"in the queue (SLO {slo:g}s)"
                ),
                "description": (
                    "Pending tasks over what the ready replicas serve (the models file's "
                    "throughput_rps per replica) exceed the queue-wait SLO for "
                    f"{SUSTAINED}: the backlog is burning the latency SLO."
                ),
            },
        }
    )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "depthscale-model-slo",
            "labels": labels("depthscale", "monitoring"),
        },
        "spec": {"groups": [{"name": "depthscale-models.slo", "rules": rules}]},
    }


def memory_threshold(utilization: float) -> float:
    """Used share of a vLLM GPU above which memory outside the reservation is growing."""
    return round(min(utilization + RESERVATION_MARGIN, MAX_MEMORY_THRESHOLD), 4)


def _pods_of(deployment: str) -> str:
    # A Deployment's pods are named <deployment>-<pod-template-hash>-<5 characters>; two segments
    # after the name, so model "llama-3" never matches the pods of "llama-3-8b".
    return f"{deployment}-[a-z0-9]+-[a-z0-9]+"


def vllm_memory_rules(reservations: Iterable[tuple[str, float]]) -> Obj:
    """PrometheusRule ``depthscale-model-gpu-memory``: per (model name, gpu_memory_utilization),
    ``VLLMGPUMemoryAboveReservation`` at that model's reservation plus the margin."""
    rules: list[Obj] = []
    for model, utilization in sorted(reservations):
        threshold = memory_threshold(utilization)
        rules.append(
            {
                "alert": "VLLMGPUMemoryAboveReservation",
                "expr": (
                    f'depthscale:gpu_fb_used:ratio{{container="vllm", pod=~"{_pods_of(model)}"}}'
                    f" > {threshold:g}"
                ),
                "for": MEMORY_SUSTAINED,
                "labels": {"severity": "warning", "model": model},
                "annotations": {
                    "summary": (
                        "vLLM GPU {{ $labels.gpu }} on {{ $labels.Hostname }} uses "
                        "{{ $value | humanizePercentage }} of its memory"
                    ),
                    "description": (
                        f"{model} reserves gpu_memory_utilization {utilization:g} of the GPU; "
                        f"usage above {threshold:g} means memory outside that reservation is "
                        "growing. Pod {{ $labels.namespace }}/{{ $labels.pod }} risks CUDA "
                        "out-of-memory errors."
                    ),
                },
            }
        )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "depthscale-model-gpu-memory",
            "labels": labels("depthscale", "monitoring"),
        },
        "spec": {"groups": [{"name": "depthscale-models.gpu-memory", "rules": rules}]},
    }


def model_memory_rules(scenario: Scenario) -> Obj:
    """``vllm_memory_rules`` for every model of the scenario, at its own reservation (the models
    file's ``gpu_memory_utilization``, which the model's ``--gpu-memory-utilization`` is too)."""
    return vllm_memory_rules((m.name, m.gpu_memory_utilization) for m in scenario.models.values())


def vllm_pod_monitor(interval_s: float = 15.0) -> Obj:
    """PodMonitor ``vllm``: every model server's ``/metrics`` on its API port every
    ``interval_s`` seconds (the models file's ``control_plane.prometheus.scrape_interval_s``),
    with the model's name (the pod label ``depthscale.io/model``) as the label ``model``."""
    meta_label = "__meta_kubernetes_pod_label_" + "".join(
        c if c.isalnum() else "_" for c in MODEL_LABEL
    )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": POD_MONITOR, "labels": labels("depthscale", "monitoring")},
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/component": MODEL_SERVER_COMPONENT,
                    "app.kubernetes.io/part-of": "depthscale",
                }
            },
            "podMetricsEndpoints": [
                {
                    "port": VLLM_PORT_NAME,
                    "path": "/metrics",
                    "interval": duration(interval_s),
                    "relabelings": [
                        {"sourceLabels": [meta_label], "targetLabel": "model"},
                    ],
                }
            ],
        },
    }
