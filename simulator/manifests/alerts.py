"""Per-model latency-SLO alerting, from the same numbers the simulator plans with.

The models file knows what the cluster cannot: how many requests per second one replica of each
model serves (``service.throughput_rps``, from vLLM's published figures) and the queue-wait SLO
(``slo_wait_s``). From them, the wait the newest task faces is estimated as

    pending tasks / (throughput per replica x ready replicas)   seconds

(ready replicas from kube-state-metrics, at least 1 so a model at zero still gets an estimate).
Above the SLO for 10 minutes, the backlog is burning the SLO and the alert pages.
"""

from __future__ import annotations

from simulator.manifests.common import Obj, labels
from simulator.scenario import Scenario

RECORD = "depthscale:queue_wait_estimate:seconds"
SUSTAINED = "10m"


def _estimate(model: str, throughput_rps: float) -> str:
    ready = (
        f'label_replace(kube_deployment_status_replicas_ready{{deployment="{model}"}}, '
        f'"model", "$1", "deployment", "(.+)")'
    )
    return (
        f'max by (namespace, model) (depthscale_pending_tasks{{model="{model}"}})\n'
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
