"""The serving pod of every scaled model, as each overlay builds it: vLLM as a native sidecar
under the Celery worker, a drain that covers the longest request, and a trigger that counts what
the worker holds. Checked against the models file the manifests were rendered from."""

from __future__ import annotations

import pytest

from simulator.scenario import ModelSpec, load_scenario
from tests.manifests.conftest import ROOT
from tests.manifests.kustomize import Obj, pod_spec

Overlay = tuple[str, list[Obj]]
SCENARIO = load_scenario(ROOT / "examples" / "models.yaml")


def _flag(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} given {args.count(flag)} times"
    return args[args.index(flag) + 1]


def _serving(objects: list[Obj]) -> list[tuple[ModelSpec, Obj, Obj, Obj]]:
    """(model, Deployment, its pod spec, its ScaledObject) for every model of the file."""
    out = []
    for model in SCENARIO.models.values():
        [deployment] = [
            o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == model.name
        ]
        [scaled] = [
            o
            for o in objects
            if o["kind"] == "ScaledObject" and o["spec"]["scaleTargetRef"]["name"] == model.name
        ]
        spec = pod_spec(deployment)
        assert spec is not None
        out.append((model, deployment, spec, scaled))
    return out


def _vllm(spec: Obj) -> Obj:
    [container] = spec["initContainers"]
    assert container["name"] == "vllm"
    return container


def test_vllm_is_a_native_sidecar_and_the_worker_the_main_container(overlay: Overlay) -> None:
    # The kubelet starts the main containers once the sidecar's startupProbe passes and stops the
    # sidecar after they exit: the worker only takes tasks while vLLM serves.
    _, objects = overlay
    for model, _deployment, spec, _scaled in _serving(objects):
        vllm = _vllm(spec)
        assert vllm["restartPolicy"] == "Always", model.name
        assert vllm["startupProbe"]["httpGet"]["path"] == "/health"
        [worker] = spec["containers"]
        assert worker["command"] == ["depthscale", "worker"]
        assert "restartPolicy" not in worker
        assert worker["image"].split(":")[0].endswith("depthscale-worker")


def test_the_trigger_counts_what_the_worker_holds(overlay: Overlay) -> None:
    _, objects = overlay
    for model, _deployment, spec, scaled in _serving(objects):
        [worker] = spec["containers"]
        metadata = scaled["spec"]["triggers"][0]["metadata"]
        assert metadata["includeUnacked"] == "true", "a late-acked task in flight is unacked"
        # The example sets replicaConcurrency for every model: the worker holds exactly that.
        assert _flag(worker["args"], "--concurrency") == metadata["replicaConcurrency"]
        assert _flag(worker["args"], "--queues") == metadata["queues"]
        assert _flag(worker["args"], "--model") == model.name
        vllm = _vllm(spec)
        port = next(p["containerPort"] for p in vllm["ports"] if p["name"] == "http")
        assert _flag(worker["args"], "--vllm-url") == f"http://127.0.0.1:{port}"
        assert int(metadata["replicaConcurrency"]) <= int(_flag(vllm["args"], "--max-num-seqs"))


def test_the_worker_accepts_its_flags(overlay: Overlay, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's own command line parses what the Deployment passes, into valid settings.
    cli = pytest.importorskip("worker.cli")
    settings = pytest.importorskip("worker.settings")
    monkeypatch.setenv(settings.BROKER_URL_ENV, "redis://broker.example:6379/0")
    monkeypatch.setenv(settings.RESULT_BACKEND_ENV, "redis://broker.example:6379/1")
    _, objects = overlay
    for model, _deployment, spec, _scaled in _serving(objects):
        [worker] = spec["containers"]
        params = cli.worker.make_context("worker", list(worker["args"])).params
        assert params["model"] == model.name
        assert params["concurrency"] == int(_flag(worker["args"], "--concurrency"))
        assert params["max_generation_seconds"] == model.max_generation_s


def test_the_drain_covers_the_longest_request(overlay: Overlay) -> None:
    _, objects = overlay
    for model, _deployment, spec, _scaled in _serving(objects):
        vllm = _vllm(spec)
        [worker] = spec["containers"]
        generation = float(_flag(worker["args"], "--max-generation-seconds"))
        assert generation == model.max_generation_s
        drain = int(_flag(vllm["args"], "--shutdown-timeout"))
        assert drain >= generation, "vLLM lets its longest stream finish"
        pre_stop = vllm["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop >= 5, "endpoint removal reaches the gateway before vLLM stops"
        # Worker drain, then vLLM's preStop and drain, all inside the grace period.
        assert spec["terminationGracePeriodSeconds"] > generation + pre_stop + drain


def test_probes_resources_and_rollout(overlay: Overlay) -> None:
    _, objects = overlay
    for model, deployment, spec, _scaled in _serving(objects):
        vllm = _vllm(spec)
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert vllm[probe]["timeoutSeconds"] >= 5, (model.name, probe)
        startup = vllm["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert budget >= 2 * model.startup_s.high
        assert deployment["spec"]["progressDeadlineSeconds"] > budget
        requests, limits = vllm["resources"]["requests"], vllm["resources"]["limits"]
        assert "cpu" not in limits
        assert "cpu" in requests
        assert requests["memory"] == limits["memory"]
        shm = next(v for v in spec["volumes"] if v["name"] == "shm")["emptyDir"]
        assert shm["medium"] == "Memory"
        assert _gib(limits["memory"]) > _gib(shm["sizeLimit"]), "memory holds /dev/shm and more"
        assert model.weights_gib is not None
        assert _gib(requests["ephemeral-storage"]) >= model.weights_gib, "room for the weights"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["karpenter.sh/do-not-disrupt"] == "true"
        assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys


def test_each_model_has_a_disruption_budget(overlay: Overlay) -> None:
    _, objects = overlay
    for model, deployment, _spec, _scaled in _serving(objects):
        budgets = [
            o
            for o in objects
            if o["kind"] == "PodDisruptionBudget"
            and o["spec"]["selector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(budgets) == 1, model.name
        assert budgets[0]["spec"]["maxUnavailable"] == 1


def test_vllm_runs_the_models_file_settings(overlay: Overlay) -> None:
    _, objects = overlay
    for model, _deployment, spec, _scaled in _serving(objects):
        vllm = _vllm(spec)
        args = vllm["args"]
        assert vllm["image"] == SCENARIO.vllm.image
        assert "@sha256:" in vllm["image"]
        assert float(_flag(args, "--gpu-memory-utilization")) == model.gpu_memory_utilization
        assert int(_flag(args, "--max-model-len")) == model.max_model_len
        assert int(_flag(args, "--max-num-seqs")) == model.max_concurrency
        # Request logging off; --disable-log-requests no longer exists (removed in vLLM 0.12).
        assert "--no-enable-log-requests" in args
        assert "--disable-log-requests" not in args


def test_placeholders_pull_the_serving_image(overlay: Overlay) -> None:
    _, objects = overlay
    placeholders = [o for o in objects if o["metadata"]["name"].startswith("gpu-buffer-")]
    deployments = [o for o in placeholders if o["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        spec = pod_spec(deployment)
        assert spec is not None
        [container] = spec["containers"]
        assert container["image"] == SCENARIO.vllm.image
        assert container["command"] == ["sleep", "infinity"]


def _gib(quantity: str) -> float:
    units = {"Gi": 1.0, "Mi": 1 / 1024}
    for suffix, scale in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * scale
    raise AssertionError(f"unexpected quantity {quantity!r}")
