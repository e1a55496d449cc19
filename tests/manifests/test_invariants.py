"""Cross-object invariants of each built overlay: what no schema can see."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest

from scaler.metadata import parse_metadata
from tests.manifests.conftest import ROOT, built
from tests.manifests.kustomize import Obj, pod_spec

GPU = "nvidia.com/gpu"
POOL_LABEL = "depthscale.io/node-pool"
# Secrets the operator creates (docs/deploy.md); everything else a pod references must exist.
OPERATOR_SECRETS = frozenset(
    {"depthscale-scaler", "depthscale-worker", "gateway-api-keys", "huggingface"}
)
# Node agents that must run on GPU nodes without holding a GPU.
GPU_NODE_AGENTS = frozenset({("DaemonSet", "dcgm-exporter")})

Overlay = tuple[str, list[Obj]]


def _ns(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _workloads(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            yield obj, spec


def _pod_labels(obj: Obj) -> dict[str, str]:
    return dict(obj["spec"]["template"]["metadata"].get("labels", {}))


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _find(objects: list[Obj], kind: str, namespace: str, name: str) -> Obj | None:
    return next(
        (o for o in objects if o["kind"] == kind and _ns(o) == namespace and _name(o) == name),
        None,
    )


def _containers(spec: Obj) -> list[Obj]:
    """Every container of a pod: init containers (native sidecars among them) and main ones."""
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def _requests_gpu(spec: Obj) -> bool:
    return any(GPU in c.get("resources", {}).get("limits", {}) for c in _containers(spec))


def _tolerates_gpu_taint(spec: Obj) -> bool:
    return any(
        t.get("key") == GPU
        and t.get("effect", "NoSchedule") == "NoSchedule"
        and (t.get("operator") == "Exists")
        for t in spec.get("tolerations", [])
    )


def test_workload_selectors_match_their_pod_labels(overlay: Overlay) -> None:
    _, objects = overlay
    for obj, _spec in _workloads(objects):
        selector = obj["spec"]["selector"]["matchLabels"]
        assert _selects(selector, _pod_labels(obj)), _name(obj)


def test_services_pdbs_and_policies_select_pods_with_the_named_ports(overlay: Overlay) -> None:
    _, objects = overlay
    pods = [(o, s) for o, s in _workloads(objects)]
    for obj in objects:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"]["matchLabels"]
        elif obj["kind"] == "NetworkPolicy":
            selector = obj["spec"]["podSelector"]["matchLabels"]
        else:
            continue
        matched = [
            (w, s) for w, s in pods if _ns(w) == _ns(obj) and _selects(selector, _pod_labels(w))
        ]
        assert matched, f"{obj['kind']} {_name(obj)} selects no pods"
        if obj["kind"] == "Service":
            for port in obj["spec"]["ports"]:
                target = port["targetPort"]
                for _w, spec in matched:
                    names = {
                        p.get("name") if isinstance(target, str) else p["containerPort"]
                        for c in _containers(spec)
                        for p in c.get("ports", [])
                    }
                    assert target in names, f"Service {_name(obj)} port {target} not on pods"


def test_service_monitors_select_a_service_with_the_port(overlay: Overlay) -> None:
    _, objects = overlay
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        services = [
            s
            for s in objects
            if s["kind"] == "Service"
            and _ns(s) == _ns(monitor)
            and _selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert services, f"ServiceMonitor {_name(monitor)} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            assert all(
                endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in services
            )


def test_every_container_has_requests_and_limits(overlay: Overlay) -> None:
    # CPU and memory requested everywhere and memory capped everywhere; CPU capped everywhere
    # but on vLLM, where CFS throttling of the engine loop would stall every stream.
    _, objects = overlay
    for obj, spec in _workloads(objects):
        for c in _containers(spec):
            where = f"{_name(obj)}/{c['name']}"
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            limits = set(resources.get("limits", {}))
            assert "memory" in limits, where
            if c["name"] == "vllm":
                assert "cpu" not in limits, f"{where}: no CPU limit on vLLM"
            else:
                assert "cpu" in limits, where


def test_gpu_pods_request_gpus_tolerate_the_taint_and_select_a_gpu_pool(
    overlay: Overlay,
) -> None:
    name, objects = overlay
    pools = _gpu_pools(name, objects)
    gpu_pods = [(o, s) for o, s in _workloads(objects) if _requests_gpu(s)]
    assert {_name(o) for o, _ in gpu_pods} >= {
        _name(o) for o in objects if o["kind"] == "ScaledObject"
    }, "every scaled model is a GPU workload"
    for obj, spec in gpu_pods:
        for c in _containers(spec):
            limits, requests = c["resources"]["limits"], c["resources"]["requests"]
            if GPU in limits:
                assert requests.get(GPU) == limits[GPU], "GPU request must equal its limit"
                assert int(limits[GPU]) >= 1
        assert _tolerates_gpu_taint(spec), f"{_name(obj)} does not tolerate the GPU taint"
        pool = spec.get("nodeSelector", {}).get(POOL_LABEL)
        assert pool in pools, f"{_name(obj)} selects no GPU pool of {name}"
        if name == "gke":
            assert spec["nodeSelector"]["cloud.google.com/compute-class"] == pools[pool]


def test_no_cpu_workload_tolerates_the_gpu_taint(overlay: Overlay) -> None:
    _, objects = overlay
    for obj, spec in _workloads(objects):
        if _requests_gpu(spec) or (obj["kind"], _name(obj)) in GPU_NODE_AGENTS:
            continue
        assert not any(t.get("key") == GPU for t in spec.get("tolerations", [])), _name(obj)


def test_gpu_node_agents_run_only_on_gpu_nodes(overlay: Overlay) -> None:
    _, objects = overlay
    for kind, name in GPU_NODE_AGENTS:
        [agent] = [o for o in objects if o["kind"] == kind and _name(o) == name]
        spec = pod_spec(agent)
        assert spec is not None
        assert _tolerates_gpu_taint(spec)
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"], "a GPU node agent must be held to GPU nodes"


def _gpu_pools(overlay: str, objects: list[Obj]) -> dict[str, str]:
    """Pool label value -> the NodePool / ComputeClass that provides it."""
    pools: dict[str, str] = {}
    for obj in objects:
        if obj["kind"] == "NodePool":
            template = obj["spec"]["template"]
            label = template.get("metadata", {}).get("labels", {}).get(POOL_LABEL)
            if label is not None:
                pools[label] = _name(obj)
        elif obj["kind"] == "ComputeClass":
            pools[obj["spec"]["nodePoolConfig"]["nodeLabels"][POOL_LABEL]] = _name(obj)
    assert pools, f"{overlay} defines no GPU pool"
    return pools


def _go_seconds(duration: str) -> int:
    """Seconds of a Go duration such as ``1h25m45s``."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([hms])", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_eks_gpu_pools_are_labelled_tainted_capped_and_drained_gently() -> None:
    name, objects = "eks-karpenter", built("eks-karpenter")
    node_classes = {_name(o) for o in objects if o["kind"] == "EC2NodeClass"}
    gpu_pools = _gpu_pools(name, objects)
    for pool in (o for o in objects if o["kind"] == "NodePool"):
        spec = pool["spec"]
        template = spec["template"]
        assert template["spec"]["nodeClassRef"]["name"] in node_classes
        taints = template["spec"].get("taints", [])
        requirements = {r["key"]: r for r in template["spec"]["requirements"]}
        assert _go_seconds(template["spec"]["expireAfter"]) > 0, "nodes are replaced in time"
        if _name(pool) in gpu_pools.values():
            # The NVIDIA device plugin's default affinity admits only labelled nodes.
            assert template["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
            assert {"key": GPU, "value": "true", "effect": "NoSchedule"} in taints
            assert int(spec["limits"][GPU]) >= 1
            disruption = spec["disruption"]
            assert disruption["consolidationPolicy"] == "WhenEmpty"
            assert _go_seconds(disruption["consolidateAfter"]) >= 60
            assert disruption["budgets"], "a budget bounds how many GPU nodes go at once"
            assert all(b["nodes"] not in ("100%",) for b in disruption["budgets"])
            # An expiring or drifted node waits for its serving pods' own drain.
            label = template["metadata"]["labels"][POOL_LABEL]
            graces = [
                s["terminationGracePeriodSeconds"]
                for _o, s in _workloads(objects)
                if s.get("nodeSelector", {}).get(POOL_LABEL) == label and _requests_gpu(s)
            ]
            assert graces
            assert _go_seconds(template["spec"]["terminationGracePeriod"]) > max(graces)
        else:
            assert not taints, "the CPU pool carries no taint"
            gpu_count = requirements["karpenter.k8s.aws/instance-gpu-count"]
            assert gpu_count["operator"] == "DoesNotExist", "the CPU pool must exclude GPUs"


def test_eks_node_classes_pin_their_ami() -> None:
    for node_class in (o for o in built("eks-karpenter") if o["kind"] == "EC2NodeClass"):
        for term in node_class["spec"]["amiSelectorTerms"]:
            alias = term.get("alias", "")
            assert re.fullmatch(r"al2023@v\d{8}", alias), f"{_name(node_class)}: {alias}"


def test_gke_compute_classes_buy_what_the_models_file_priced() -> None:
    # The simulator prices each pool at its capacity_type: an on-demand pool never asks for spot;
    # a spot pool tries spot first; a reservation, when named, comes before either.
    from simulator.scenario import load_scenario

    scenario = load_scenario(ROOT / "examples" / "models.yaml")
    classes = {_name(o): o for o in built("gke") if o["kind"] == "ComputeClass"}
    assert set(classes) == {f"gpu-{p}" for p in scenario.node_pools}
    for pool in scenario.node_pools.values():
        spec = classes[f"gpu-{pool.name}"]["spec"]
        assert spec["nodePoolAutoCreation"] == {"enabled": True}
        assert spec["whenUnsatisfiable"] == "DoNotScaleUp"
        spots = [p["spot"] for p in spec["priorities"] if "reservations" not in p]
        assert spots == ([True, False] if pool.capacity_type == "spot" else [False])
        for priority in spec["priorities"]:
            assert priority["gpu"]["count"] == pool.gpus_per_node
            assert priority["storage"]["bootDiskSize"] >= 100


def test_scaled_objects_target_deployments_and_address_the_scaler(overlay: Overlay) -> None:
    _, objects = overlay
    scaled = [o for o in objects if o["kind"] == "ScaledObject"]
    assert scaled
    for so in scaled:
        spec = so["spec"]
        ref = spec["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment"
        assert _find(objects, "Deployment", _ns(so), ref["name"]) is not None, ref["name"]
        assert spec["fallback"]["failureThreshold"] >= 1
        # The scaler's trigger first; a model served online adds KEDA's prometheus trigger
        # (tests/manifests/test_online_trigger.py).
        trigger, *others = spec["triggers"]
        assert trigger["type"] == "external"
        assert [t["type"] for t in others] in ([], ["prometheus"])
        host, _, port = trigger["metadata"]["scalerAddress"].rpartition(":")
        match = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", host)
        assert match, f"{_name(so)}: scalerAddress must be a Service DNS name"
        service = _find(objects, "Service", match[2], match[1])
        assert service is not None, f"{_name(so)}: no Service {host}"
        grpc_ports = [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"]
        assert grpc_ports == [int(port)]
        # The scaler's own parser accepts the metadata, and the counts agree with KEDA's.
        parsed = parse_metadata(trigger["metadata"])
        assert parsed.config.max_replicas == spec["maxReplicaCount"]
        assert parsed.config.min_replicas == spec["minReplicaCount"]


def test_gateway_routes_point_at_existing_services_and_ports(overlay: Overlay) -> None:
    _, objects = overlay
    gateway = next(o for o in objects if o["kind"] == "Deployment" and "gateway" in _name(o))
    [routes] = [o for o in objects if o["kind"] == "ConfigMap" and _name(o) == "gateway-routes"]
    assert _ns(routes) == _ns(gateway)
    upstreams = dict(
        re.findall(r"upstream (\S+) \{ server ([^;]+);", routes["data"]["upstreams.conf"])
    )
    assert upstreams
    for upstream, server in upstreams.items():
        host, _, port = server.rpartition(":")
        service = _find(objects, "Service", _ns(gateway), host)
        assert service is not None, f"upstream {upstream}: no Service {host}"
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    targets = re.findall(r'^"[^"]+" (\S+);$', routes["data"]["routes.map"], re.M)
    assert targets
    assert set(targets) <= set(upstreams)
    models = {_name(o) for o in objects if o["kind"] == "ScaledObject"}
    assert models <= set(targets), "every scaled model is reachable through the gateway"


def test_referenced_config_exists(overlay: Overlay) -> None:
    _, objects = overlay
    for obj, spec in _workloads(objects):
        refs: list[tuple[str, str]] = []
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                refs.append(("ConfigMap", volume["configMap"]["name"]))
            if "secret" in volume:
                refs.append(("Secret", volume["secret"]["secretName"]))
            for source in volume.get("projected", {}).get("sources", []):
                if "configMap" in source:
                    refs.append(("ConfigMap", source["configMap"]["name"]))
                if "secret" in source:
                    refs.append(("Secret", source["secret"]["name"]))
        for c in _containers(spec):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.append(("Secret", ref["name"]))
        for kind, ref_name in refs:
            if kind == "Secret":
                issued = any(
                    o["kind"] == "Certificate"
                    and _ns(o) == _ns(obj)
                    and o["spec"]["secretName"] == ref_name
                    for o in objects
                )  # cert-manager writes it
                assert ref_name in OPERATOR_SECRETS or issued, (
                    f"{_name(obj)}: undocumented Secret {ref_name}"
                )
            else:
                assert _find(objects, kind, _ns(obj), ref_name), f"{_name(obj)}: no {ref_name}"
        if spec.get("priorityClassName", "").startswith("depthscale-"):
            assert _find(objects, "PriorityClass", "", spec["priorityClassName"])


def test_models_preempt_the_gpu_buffer(overlay: Overlay) -> None:
    _, objects = overlay
    classes = {_name(o): o for o in objects if o["kind"] == "PriorityClass"}
    serving, buffer = classes["depthscale-model-serving"], classes["depthscale-gpu-buffer"]
    assert serving["value"] > 0 > buffer["value"]
    assert buffer["preemptionPolicy"] == "Never"
    for obj, spec in _workloads(objects):
        if _requests_gpu(spec):
            expected = (
                "depthscale-gpu-buffer" if "buffer" in _name(obj) else "depthscale-model-serving"
            )
            assert spec["priorityClassName"] == expected, _name(obj)


def test_scaler_and_gateway_run_locked_down(overlay: Overlay) -> None:
    _, objects = overlay
    for name in ("depthscale-scaler", "depthscale-gateway"):
        deployment = _find(objects, "Deployment", "depthscale", name)
        assert deployment is not None
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
    scaler = _find(objects, "Deployment", "depthscale", "depthscale-scaler")
    assert scaler is not None
    assert scaler["spec"]["replicas"] >= 2
    [container] = scaler["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        # The gRPC health service: natively, or over TLS with scaler.healthcheck (docs/tls.md).
        command = container[probe].get("exec", {}).get("command", [])
        assert "grpc" in container[probe] or command[:3] == ["python", "-m", "scaler.healthcheck"]


def test_scaler_args_are_flags_serve_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    from scaler.serve import serve

    scaler = _find(built("eks-karpenter"), "Deployment", "depthscale", "depthscale-scaler")
    assert scaler is not None
    [container] = scaler["spec"]["template"]["spec"]["containers"]
    command, *args = container["args"]
    assert command == "serve"
    env = {e["name"] for e in container["env"]}
    assert "DEPTHSCALE_STATE" in env
    monkeypatch.setenv("DEPTHSCALE_STATE", "redis://state.example:6379/1")
    ctx = serve.make_context("serve", list(args))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ctx.params["port"] == ports["grpc"]
    assert ctx.params["metrics_port"] == ports["metrics"]
    assert ctx.params["state"].startswith("redis://"), "replicas must share state in Redis"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(ctx.params["brokers_file"].parent) in mounts
    assert ctx.params["replicas_from"] == "kubernetes", "a restarted scaler sees what runs"


def _grants(rules: list[Obj], group: str, resource: str) -> bool:
    """The rules let the scaler list and watch ``resource`` (its replica-count watches)."""
    verbs: set[str] = set()
    for rule in rules:
        if group in rule.get("apiGroups", []) and {resource, "*"} & set(rule.get("resources", [])):
            verbs |= set(rule.get("verbs", []))
    return "*" in verbs or {"list", "watch"} <= verbs


def test_scaler_may_read_every_scaled_object_and_its_target(overlay: Overlay) -> None:
    # --replicas-from=kubernetes lists then watches the ScaledObjects and their targets in each
    # namespace it is asked about, with the pod's token; a missing grant would only show at run
    # time (a 403, then the policy's own decisions).
    _, objects = overlay
    scaler = _find(objects, "Deployment", "depthscale", "depthscale-scaler")
    assert scaler is not None
    spec = scaler["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert "--replicas-from=kubernetes" in container["args"]
    account = spec["serviceAccountName"]
    assert _find(objects, "ServiceAccount", _ns(scaler), account) is not None
    assert spec.get("automountServiceAccountToken") is True, "the token must be mounted"
    subject = {"kind": "ServiceAccount", "name": account, "namespace": _ns(scaler)}
    for so in (o for o in objects if o["kind"] == "ScaledObject"):
        rules: list[Obj] = []
        for binding in objects:
            if binding["kind"] == "RoleBinding" and _ns(binding) != _ns(so):
                continue
            if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            if subject not in binding.get("subjects", []):
                continue
            ref = binding["roleRef"]
            role_ns = _ns(binding) if ref["kind"] == "Role" else ""
            role = _find(objects, ref["kind"], role_ns, ref["name"])
            assert role is not None, f"{_name(binding)} binds a missing {ref['kind']}"
            rules += role["rules"]
        target = so["spec"]["scaleTargetRef"]
        plural = {"Deployment": "deployments", "StatefulSet": "statefulsets"}[
            target.get("kind", "Deployment")
        ]
        assert _grants(rules, "keda.sh", "scaledobjects"), f"{_name(so)}: no list/watch on it"
        assert _grants(rules, "apps", plural), f"{_name(so)}: no list/watch on its {plural}"


def test_hpa_leaves_stabilization_to_the_policy(overlay: Overlay) -> None:
    # The policy owns the 10-minute window and counts every replica it asks for, so the HPA adds
    # no window of its own and no tolerance that would swallow a one-replica step (kubernetes pkg/controller/podautoscaler).
    _, objects = overlay
    for so in (o for o in objects if o["kind"] == "ScaledObject"):
        if so["spec"]["triggers"][0]["metadata"].get("mode", "replicas") != "replicas":
            continue
        behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 0, _name(so)
        for direction in ("scaleUp", "scaleDown"):
            assert float(behavior[direction]["tolerance"]) == 0, (_name(so), direction)
        assert so["spec"]["cooldownPeriod"] <= 120, "the policy already waited its idle window"


def test_gateway_workers_match_its_cpu_limit(overlay: Overlay) -> None:
    _, objects = overlay
    config = _find(objects, "ConfigMap", "depthscale", "gateway-config")
    gateway = _find(objects, "Deployment", "depthscale", "depthscale-gateway")
    assert config is not None
    assert gateway is not None
    workers = re.search(r"^\s*worker_processes (\d+);", config["data"]["nginx.conf"], re.M)
    assert workers, "an explicit worker count: 'auto' counts the node's CPUs, not the pod's"
    [container] = gateway["spec"]["template"]["spec"]["containers"]
    assert int(workers[1]) == int(container["resources"]["limits"]["cpu"])


_RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def test_pods_meet_their_namespaces_pod_security_level(overlay: Overlay) -> None:
    # The checks of Pod Security "restricted" (kubernetes.io/docs/concepts/security/
    # pod-security-standards) for every pod in a namespace that enforces it.
    _, objects = overlay
    restricted = {
        _name(o)
        for o in objects
        if o["kind"] == "Namespace"
        and o["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"
    }
    assert restricted
    checked = 0
    for obj, spec in _workloads(objects):
        if _ns(obj) not in restricted:
            continue
        checked += 1
        where = _name(obj)
        pod_sc = spec.get("securityContext", {})
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= _RESTRICTED_VOLUMES, (where, volume["name"])
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser")) != 0, where
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
            assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, where
    assert checked >= 3, "the scaler, the gateway and the models run under 'restricted'"


def test_metric_model_label_is_the_deployment_name(overlay: Overlay) -> None:
    # DepthscaleReplicasNotReady joins the scaler's `model` label with kube-state-metrics'
    # `deployment` label: they must be the same name.
    _, objects = overlay
    for so in (o for o in objects if o["kind"] == "ScaledObject"):
        metadata = so["spec"]["triggers"][0]["metadata"]
        assert metadata.get("model", _name(so)) == so["spec"]["scaleTargetRef"]["name"]


def _flag_value(args: list[str], flag: str) -> str | None:
    found = [a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")]
    return found[0] if found else None


def test_keda_dials_the_scaler_with_the_certificates_it_requires(overlay: Overlay) -> None:
    # docs/tls.md: the scaler serves the certificate of a Secret cert-manager issues for the
    # Service's names; with --tls-client-ca every trigger dialling it names a
    # TriggerAuthentication carrying caCert, tlsClientCert and tlsClientKey from a certificate of
    # the same CA (KEDA dials plaintext without them, and the handshake fails).
    _, objects = overlay
    scaler = _find(objects, "Deployment", "depthscale", "depthscale-scaler")
    assert scaler is not None
    spec = scaler["spec"]["template"]["spec"]
    [container] = spec["containers"]
    cert = _flag_value(container["args"], "--tls-cert")
    if cert is None:
        return  # plaintext: nothing to agree on
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = mounts[str(PurePosixPath(cert).parent)]
    [secret] = [v["secret"]["secretName"] for v in spec["volumes"] if v["name"] == volume]

    def issued(secret_name: str, namespace: str) -> Obj:
        [certificate] = [
            o
            for o in objects
            if o["kind"] == "Certificate"
            and _ns(o) == namespace
            and o["spec"]["secretName"] == secret_name
        ]
        return certificate

    serving = issued(secret, _ns(scaler))
    assert "server auth" in serving["spec"]["usages"]
    names = set(serving["spec"]["dnsNames"])
    for probe in ("readinessProbe", "livenessProbe"):
        probe_args = container[probe]["exec"]["command"]
        assert _flag_value(probe_args, "--server-name") in names
        assert _flag_value(probe_args, "--tls-cert") == cert
    mtls = _flag_value(container["args"], "--tls-client-ca") is not None
    if mtls:
        assert "client auth" in serving["spec"]["usages"], "the probe presents it as a client"
    for so in (o for o in objects if o["kind"] == "ScaledObject"):
        for trigger in so["spec"]["triggers"]:
            if trigger["type"] not in ("external", "external-push"):
                continue  # e.g. a model's prometheus trigger: not the scaler's
            host = trigger["metadata"]["scalerAddress"].rpartition(":")[0]
            if not host.startswith("depthscale-scaler."):
                continue
            assert host in names, f"{_name(so)}: the scaler's certificate lacks {host}"
            ref = trigger.get("authenticationRef")
            assert ref is not None, f"{_name(so)}: no authenticationRef: KEDA would dial plaintext"
            auth = _find(objects, ref.get("kind", "TriggerAuthentication"), _ns(so), ref["name"])
            assert auth is not None, f"{_name(so)}: no TriggerAuthentication {ref['name']}"
            params = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
            assert params["caCert"]["key"] == "ca.crt"
            if mtls:
                assert {params[p]["key"] for p in ("tlsClientCert", "tlsClientKey")} == {
                    "tls.crt",
                    "tls.key",
                }
                secrets = {r["name"] for r in params.values()}
                [client_secret] = secrets
                client = issued(client_secret, _ns(auth))
                assert "client auth" in client["spec"]["usages"]
                assert client["spec"]["issuerRef"] == serving["spec"]["issuerRef"], "one CA"
