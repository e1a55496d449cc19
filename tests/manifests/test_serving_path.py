"""The serving path as a cluster would see it: who may reach the vLLM pods (NetworkPolicy), what
scrapes them (PodMonitor), the per-model GPU-memory threshold, and dcgm-exporter's per-cloud
settings that make the vLLM-aware alerts work at all."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.manifests.alerts import memory_threshold, model_memory_rules, vllm_memory_rules
from simulator.scenario import load_scenario
from tests.conftest import require_binary
from tests.manifests.conftest import MANIFESTS, ROOT, built
from tests.manifests.kustomize import Obj, load_documents, pod_spec

Overlay = tuple[str, list[Obj]]


def _ns(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _pod_labels(obj: Obj) -> dict[str, str]:
    return dict(obj["spec"]["template"]["metadata"].get("labels", {}))


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _model_deployments(objects: list[Obj]) -> list[Obj]:
    targets = {
        (_ns(o), o["spec"]["scaleTargetRef"]["name"])
        for o in objects
        if o["kind"] == "ScaledObject"
    }
    found = [o for o in objects if o["kind"] == "Deployment" and (_ns(o), _name(o)) in targets]
    assert found
    assert len(found) == len(targets)
    return found


def _containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    assert spec is not None
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def _service_port(objects: list[Obj], deployment: Obj) -> int:
    """The container port the model's Service sends traffic to."""
    [service] = [
        s
        for s in objects
        if s["kind"] == "Service"
        and _ns(s) == _ns(deployment)
        and _selects(s["spec"]["selector"], _pod_labels(deployment))
    ]
    [port] = service["spec"]["ports"]
    target = port["targetPort"]
    numbers = {
        p["containerPort"]
        for c in _containers(deployment)
        for p in c.get("ports", [])
        if target in (p.get("name"), p["containerPort"])
    }
    [number] = numbers
    return int(number)


# --- NetworkPolicy ----------------------------------------------------------------------------


def test_each_model_admits_only_the_gateway_and_prometheus(overlay: Overlay) -> None:
    _, objects = overlay
    [gateway] = [
        o for o in objects if o["kind"] == "Deployment" and _name(o) == "depthscale-gateway"
    ]
    for deployment in _model_deployments(objects):
        policies = [
            p
            for p in objects
            if p["kind"] == "NetworkPolicy"
            and _ns(p) == _ns(deployment)
            and _selects(p["spec"]["podSelector"]["matchLabels"], _pod_labels(deployment))
        ]
        assert len(policies) == 1, f"{_name(deployment)}: {len(policies)} NetworkPolicies"
        [policy] = policies
        assert policy["spec"]["policyTypes"] == ["Ingress"], "egress stays open (weights, broker)"
        port = _service_port(objects, deployment)
        peers: list[Obj] = []
        for rule in policy["spec"]["ingress"]:
            assert [p["port"] for p in rule["ports"]] == [port], "only the vLLM port"
            peers += rule["from"]
        assert len(peers) == 2, "the gateway and Prometheus, nobody else"
        [from_gateway] = [p for p in peers if "podSelector" in p]
        assert "namespaceSelector" not in from_gateway, "the gateway of the model's own namespace"
        assert _ns(gateway) == _ns(deployment)
        assert _selects(from_gateway["podSelector"]["matchLabels"], _pod_labels(gateway))
        [from_monitoring] = [p for p in peers if "namespaceSelector" in p]
        assert from_monitoring == {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
        }


def test_the_scaler_and_the_models_admit_prometheus_from_the_same_namespace(
    overlay: Overlay,
) -> None:
    # One place Prometheus runs: the scaler's hand-written policy and the rendered ones agree.
    _, objects = overlay
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in objects
        if p["kind"] == "NetworkPolicy"
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "namespaceSelector" in peer
    }
    assert "monitoring" in namespaces
    assert namespaces <= {"monitoring", "keda"}


# --- PodMonitor -------------------------------------------------------------------------------


def test_the_pod_monitor_scrapes_every_model_server_on_a_named_port(overlay: Overlay) -> None:
    _, objects = overlay
    [monitor] = [o for o in objects if o["kind"] == "PodMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    [relabel] = endpoint["relabelings"]
    assert relabel["targetLabel"] == "model"
    [source] = relabel["sourceLabels"]
    prefix = "__meta_kubernetes_pod_label_"
    assert source.startswith(prefix)
    models = _model_deployments(objects)
    scraped = [
        w
        for w in objects
        if pod_spec(w) is not None and _ns(w) == _ns(monitor) and _selects(selector, _pod_labels(w))
    ]
    assert {_name(w) for w in scraped} == {_name(m) for m in models}, "every model, nothing else"
    for deployment in models:
        ports = {p.get("name") for c in _containers(deployment) for p in c.get("ports", [])}
        assert endpoint["port"] in ports, f"{_name(deployment)} has no port {endpoint['port']}"
        # Prometheus turns a pod label into __meta_kubernetes_pod_label_<label, [^a-zA-Z0-9_]
        # replaced by _>; the model label's value must be the model's (Deployment's) name, the
        # name the scaler's metrics carry.
        values = [
            v
            for k, v in _pod_labels(deployment).items()
            if prefix + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in k) == source
        ]
        assert values == [_name(deployment)]


# --- per-model GPU memory threshold -------------------------------------------------------------


def test_the_memory_threshold_is_the_models_reservation_plus_the_margin() -> None:
    assert memory_threshold(0.9) == 0.95
    assert memory_threshold(0.8) == 0.85
    assert memory_threshold(0.97) == 0.99, "capped where used/(used+free) can still get"
    scenario = load_scenario(ROOT / "examples" / "models.yaml")
    [group] = model_memory_rules(scenario)["spec"]["groups"]
    thresholds = {
        r["labels"]["model"]: float(r["expr"].rpartition(" > ")[2]) for r in group["rules"]
    }
    assert thresholds == {
        m.name: memory_threshold(m.gpu_memory_utilization) for m in scenario.models.values()
    }


def test_rendered_memory_rules_are_the_checked_in_ones() -> None:
    scenario = load_scenario(ROOT / "examples" / "models.yaml")
    [rules] = [
        d
        for d in load_documents(MANIFESTS / "models" / "monitoring.yaml")
        if d["kind"] == "PrometheusRule"
    ]
    assert rules == model_memory_rules(scenario)


_UNIT_TEST = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # Two GPUs at 88 % (35200 of 40000 MiB): model low-util reserves 0.8, model default 0.9.
      - series: 'DCGM_FI_DEV_FB_USED{gpu="0",container="vllm",pod="low-util-5c8d7f9b4-a1b2c"}'
        values: '35200x20'
      - series: 'DCGM_FI_DEV_FB_FREE{gpu="0",container="vllm",pod="low-util-5c8d7f9b4-a1b2c"}'
        values: '4800x20'
      - series: 'DCGM_FI_DEV_FB_USED{gpu="1",container="vllm",pod="default-5c8d7f9b4-d3e4f"}'
        values: '35200x20'
      - series: 'DCGM_FI_DEV_FB_FREE{gpu="1",container="vllm",pod="default-5c8d7f9b4-d3e4f"}'
        values: '4800x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: VLLMGPUMemoryAboveReservation
        exp_alerts:
          - exp_labels:
              severity: warning
              model: low-util
              gpu: "0"
              container: vllm
              pod: low-util-5c8d7f9b4-a1b2c
            exp_annotations:
              summary: "vLLM GPU 0 on  uses 88% of its memory"
              description: "low-util reserves gpu_memory_utilization 0.8 of the GPU; usage above 0.85 means memory outside that reservation is growing. Pod /low-util-5c8d7f9b4-a1b2c risks CUDA out-of-memory errors."
"""


@pytest.mark.tools
def test_a_model_reserving_less_warns_earlier_than_one_reserving_more(tmp_path: Path) -> None:
    # The same 88 % is 8 points above a 0.8 reservation (memory outside vLLM's pool growing) and
    # below a 0.9 one (a healthy replica): only the first warns.
    [base] = load_documents(MANIFESTS / "base" / "monitoring" / "prometheusrule.yaml")
    recording = [g for g in base["spec"]["groups"] if g["name"] == "depthscale-gpu.rules"]
    rendered = vllm_memory_rules([("low-util", 0.8), ("default", 0.9)])["spec"]["groups"]
    groups: list[dict[str, Any]] = recording + rendered
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "test.yaml").write_text(_UNIT_TEST)
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- dcgm-exporter per cloud ------------------------------------------------------------------


def _dcgm(overlay_name: str) -> Obj:
    [daemonset] = [
        o for o in built(overlay_name) if o["kind"] == "DaemonSet" and _name(o) == "dcgm-exporter"
    ]
    [container] = daemonset["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_dcgm_exporter_on_gke_runs_privileged_and_maps_gpus_by_device_name() -> None:
    # GKE's device plugin reports GPUs as nvidia0..N to the kubelet's pod-resources API and there
    # is no NVIDIA runtime hook (GoogleCloudPlatform/prometheus-engine examples/nvidia-dcgm).
    container = _dcgm("gke")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DCGM_EXPORTER_KUBERNETES"] == "true"
    assert env["DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE"] == "device-name"
    assert container["securityContext"]["privileged"] is True
    # The API rejects privileged: true together with allowPrivilegeEscalation: false.
    assert container["securityContext"].get("allowPrivilegeEscalation", True) is True
    assert "/usr/local/nvidia" in {m["mountPath"] for m in container["volumeMounts"]}


def test_dcgm_exporter_on_eks_keeps_uuids_and_no_privilege() -> None:
    # NVIDIA's device plugin (EKS) reports GPU UUIDs, dcgm-exporter's default id type; the
    # NVIDIA runtime hands the exporter the GPUs without privilege.
    container = _dcgm("eks-karpenter")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DCGM_EXPORTER_KUBERNETES"] == "true"
    assert env.get("DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE", "uid") == "uid"
    assert not container["securityContext"].get("privileged", False)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"add": ["SYS_ADMIN"], "drop": ["ALL"]}


def test_only_prometheus_reaches_dcgm_exporter(overlay: Overlay) -> None:
    _, objects = overlay
    [daemonset] = [o for o in objects if o["kind"] == "DaemonSet" and _name(o) == "dcgm-exporter"]
    [port] = [p["containerPort"] for c in _containers(daemonset) for p in c.get("ports", [])]
    [policy] = [
        p
        for p in objects
        if p["kind"] == "NetworkPolicy"
        and _ns(p) == _ns(daemonset)
        and _selects(p["spec"]["podSelector"]["matchLabels"], _pod_labels(daemonset))
    ]
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
            "ports": [{"port": port, "protocol": "TCP"}],
        }
    ]


def test_node_agents_and_control_plane_outrank_the_models(overlay: Overlay) -> None:
    _, objects = overlay
    classes = {_name(o): o["value"] for o in objects if o["kind"] == "PriorityClass"}
    [dcgm] = [o for o in objects if o["kind"] == "DaemonSet" and _name(o) == "dcgm-exporter"]
    [gateway] = [
        o for o in objects if o["kind"] == "Deployment" and _name(o) == "depthscale-gateway"
    ]
    agent = classes[dcgm["spec"]["template"]["spec"]["priorityClassName"]]
    control = classes[gateway["spec"]["template"]["spec"]["priorityClassName"]]
    assert agent > control > classes["depthscale-model-serving"]
    assert agent < 1_000_000_000, "user classes stay below the system-* ones"
