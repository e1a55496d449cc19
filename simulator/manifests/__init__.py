"""Per-model Kubernetes objects from the models file: pure functions, no I/O.

What one scenario becomes (``render_tree`` returns it as relative path -> file text):

- per model: a serving Deployment (vLLM as a native sidecar, the Celery worker as the main
  container), a ClusterIP Service, a PodDisruptionBudget and a KEDA ScaledObject whose
  ``external`` trigger addresses the depthscale scaler with the model's policy thresholds as
  metadata, and for a model served online a second, ``prometheus`` trigger on vLLM's gauges;
- per node pool with a warm buffer: a placeholder Deployment (the vLLM image asleep, whole-node
  GPU request, lowest priority) that serving pods preempt, behind a deny-all NetworkPolicy;
- the gateway's routing table (ConfigMap ``gateway-routes``: ``routes.map`` and ``upstreams.conf``);
- per cloud, a kustomize Component with the GPU node pools: Karpenter NodePools
  (``pools/eks-karpenter``) or GKE ComputeClasses plus the nodeSelector patches that pick them
  (``pools/gke``).

Facts relied on (kubernetes pkg/controller/podautoscaler; Karpenter v1 and GKE ComputeClass docs): the HPA's scale-down window and tolerance come from the models
file's ``control_plane.hpa`` (the policy owns the 10-minute window, so scaleDown's window is 0 and
the tolerance 0 keeps a ±1 replica step from being swallowed); vLLM needs a Memory ``/dev/shm``
and a startupProbe long enough for weight download; serving pods carry
``karpenter.sh/do-not-disrupt`` and ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``;
GPU nodes carry the ``nvidia.com/gpu`` NoSchedule taint and, on EKS, the
``nvidia.com/gpu.present`` label the NVIDIA device plugin needs.
"""

from simulator.manifests.common import (
    DEFAULT_BROKER,
    DEFAULT_NAMESPACE,
    DEFAULT_PROMETHEUS_ADDRESS,
    DEFAULT_SCALER_ADDRESS,
    RenderError,
    RenderOptions,
)
from simulator.manifests.tree import render_tree

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_NAMESPACE",
    "DEFAULT_PROMETHEUS_ADDRESS",
    "DEFAULT_SCALER_ADDRESS",
    "RenderError",
    "RenderOptions",
    "render_tree",
]
