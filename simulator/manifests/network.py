"""Who may open connections to a model's vLLM pods: a NetworkPolicy per model.

vLLM's API has no authentication of its own (the gateway checks API keys), so a model's pods
admit TCP on the vLLM port from two sources only (Kubernetes NetworkPolicy API,
networking.k8s.io/v1):

- the gateway's pods (same namespace, label ``app.kubernetes.io/name: depthscale-gateway``);
- Prometheus, from the namespace named ``monitoring`` (kube-prometheus-stack's), which scrapes
  vLLM's ``/metrics`` on the same port.

The Celery worker that feeds a replica runs in the replica's own pod and calls vLLM on 127.0.0.1:
loopback never leaves the pod and no NetworkPolicy applies to it. Egress stays open (weights come
from Hugging Face, the worker reads its broker, often a managed service outside the cluster).
Kubelet probes come from the node and are not subject to pod NetworkPolicy on the common CNIs.
"""

from __future__ import annotations

from simulator.manifests.common import VLLM_PORT, Obj, labels
from simulator.scenario import ModelSpec

GATEWAY_POD_LABELS = {"app.kubernetes.io/name": "depthscale-gateway"}
MONITORING_NAMESPACE = "monitoring"


def model_network_policy(model: ModelSpec) -> Obj:
    """NetworkPolicy ``<model>``: ingress to the model's pods from the gateway and Prometheus."""
    port = [{"port": VLLM_PORT, "protocol": "TCP"}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": model.name, "labels": labels(model.name, "model-server")},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": model.name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": dict(GATEWAY_POD_LABELS)}}],
                    "ports": port,
                },
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}
                            }
                        }
                    ],
                    "ports": [dict(p) for p in port],
                },
            ],
        },
    }
