"""``depthscale render``: the committed manifests/models is what the example models file renders
to, the objects carry the file's values, and bad input fails on one line with nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from scaler.cli import main
from scaler.metadata import parse_metadata
from tests.manifests.conftest import MANIFESTS, ROOT
from tests.manifests.kustomize import Obj, build, load_documents

EXAMPLE = ROOT / "examples" / "models.yaml"


def _render(models_file: Path, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["render", str(models_file), "--out", str(out), *extra])


def _tree(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): p.read_text()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _objects(out: Path) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in build(out)}


def test_committed_models_equal_what_render_writes(tmp_path: Path) -> None:
    result = _render(EXAMPLE, tmp_path / "models")
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "models") == _tree(MANIFESTS / "models"), (
        "manifests/models is stale: run `depthscale render examples/models.yaml --out manifests/models`"
    )


def test_render_is_deterministic_and_replaces_its_own_output(tmp_path: Path) -> None:
    out = tmp_path / "models"
    assert _render(EXAMPLE, out).exit_code == 0
    first = _tree(out)
    (out / "stale-model.yaml").write_text("kind: Service\n")
    assert _render(EXAMPLE, out).exit_code == 0
    assert _tree(out) == first, "a re-render leaves exactly the rendered files"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".models.")], "no temp dirs left"


def _vllm(deployment: Obj) -> Obj:
    """The vLLM container of a serving Deployment (a native sidecar: an init container)."""
    [container] = [
        c for c in deployment["spec"]["template"]["spec"]["initContainers"] if c["name"] == "vllm"
    ]
    return container


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_objects_carry_the_models_file_values(tmp_path: Path) -> None:
    data = _example()
    model = data["models"]["llama-3-8b"]
    model["node_pool"] = "h100"
    model["gpus_per_replica"] = 2
    model["gpu_memory_utilization"] = 0.85
    model["max_model_len"] = 4096
    model["weights_gib"] = 40
    model["max_generation_s"] = 120
    model["policy"]["maxReplicas"] = 7
    model["policy"]["scaleUpPending"] = 30
    model["policy"]["replicaConcurrency"] = 48
    model["startup_s"] = {"low": 600, "high": 1500}
    model["queues"] = ["llama-fast", "llama-batch"]
    data["control_plane"]["hpa"]["scaleUp"]["tolerance"] = 0
    data["control_plane"]["keda"]["cooldownPeriod"] = 60
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    objects = _objects(out)

    deployment = objects[("Deployment", "llama-3-8b")]
    pod = deployment["spec"]["template"]["spec"]
    container = _vllm(deployment)
    args = container["args"]
    assert container["image"] == data["vllm"]["image"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert _flag(args, "--tensor-parallel-size") == "2"
    assert _flag(args, "--gpu-memory-utilization") == "0.85"
    assert _flag(args, "--max-model-len") == "4096"
    assert _flag(args, "--shutdown-timeout") == "120"
    # The weights land on node disk: the scheduler reserves room for all 40 GiB of them.
    storage = container["resources"]["requests"]["ephemeral-storage"]
    assert storage.endswith("Gi")
    assert int(storage[:-2]) >= 40
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 2 * 1500
    assert deployment["spec"]["progressDeadlineSeconds"] > 2 * 1500
    assert pod["terminationGracePeriodSeconds"] > 2 * 120
    assert pod["nodeSelector"] == {"depthscale.io/node-pool": "h100"}
    [worker] = pod["containers"]
    assert _flag(worker["args"], "--queues") == "llama-fast,llama-batch"
    assert _flag(worker["args"], "--concurrency") == "48"
    assert _flag(worker["args"], "--max-generation-seconds") == "120"

    scaled = objects[("ScaledObject", "llama-3-8b")]["spec"]
    metadata = scaled["triggers"][0]["metadata"]
    assert scaled["maxReplicaCount"] == 7
    assert metadata["maxReplicas"] == "7"
    assert metadata["scaleUpPending"] == "30"
    assert metadata["replicaConcurrency"] == "48"
    assert metadata["queues"] == "llama-fast,llama-batch"
    assert scaled["cooldownPeriod"] == 60
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["tolerance"] == "0"
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 0


def test_startup_probe_never_shorter_than_ten_minutes(tmp_path: Path) -> None:
    data = _example()
    data["models"]["llama-3-8b"]["startup_s"] = {"low": 5, "high": 10}
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    probe = _vllm(_objects(out)[("Deployment", "llama-3-8b")])["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 600


def test_worker_concurrency_defaults_to_vllms_batch(tmp_path: Path) -> None:
    # Without replicaConcurrency the worker holds max_concurrency tasks, and the trigger stays as
    # the simulator ran the policy: without one.
    data = _example()
    del data["models"]["llama-3-8b"]["policy"]["replicaConcurrency"]
    data["models"]["llama-3-8b"]["max_concurrency"] = 40
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    objects = _objects(out)
    [worker] = objects[("Deployment", "llama-3-8b")]["spec"]["template"]["spec"]["containers"]
    metadata = objects[("ScaledObject", "llama-3-8b")]["spec"]["triggers"][0]["metadata"]
    assert _flag(worker["args"], "--concurrency") == "40"
    assert "replicaConcurrency" not in metadata
    assert metadata["includeUnacked"] == "true"


def test_a_weights_claim_replaces_the_download(tmp_path: Path) -> None:
    data = _example()
    model = data["models"]["llama-3-70b"]
    model["weights_claim"] = "llama-3-70b-weights"
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    deployment = _objects(out)[("Deployment", "llama-3-70b")]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"] == {
        "claimName": "llama-3-70b-weights",
        "readOnly": True,
    }
    container = _vllm(deployment)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_HUB_OFFLINE"] == "1"
    storage = int(container["resources"]["requests"]["ephemeral-storage"][:-2])
    assert storage < model["weights_gib"], "no room reserved for weights that are not downloaded"


@pytest.mark.parametrize(
    ("buffer", "expected_placeholders"),
    [
        ({"nodes": 3}, 3),
        ({"nodes": 0}, 0),
        # h100: llama-3-70b at maxReplicas 4 x 4 GPUs = 16 GPUs = 2 p5 nodes; 1 - 0.5 of 2 = 1.
        ({"target_utilization": 0.5}, 1),
        # 1 - 0.25 of 2 nodes = 1.5 -> 2.
        ({"target_utilization": 0.25}, 2),
    ],
)
def test_warm_buffer_size_follows_the_node_pool(
    tmp_path: Path, buffer: dict[str, Any], expected_placeholders: int
) -> None:
    data = _example()
    data["node_pools"]["h100"]["warm_buffer"] = buffer
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    placeholder = _objects(out).get(("Deployment", "gpu-buffer-h100"))
    if expected_placeholders == 0:
        assert placeholder is None
        return
    assert placeholder is not None
    assert placeholder["spec"]["replicas"] == expected_placeholders
    [container] = placeholder["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8", "a whole p5.48xlarge"
    # The placeholder pulls the serving image and sleeps: a replica that preempts it starts
    # without pulling.
    assert container["image"] == data["vllm"]["image"]
    assert container["command"] == ["sleep", "infinity"]


def test_node_pool_gpu_limit_covers_the_models_at_max(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _render(EXAMPLE, out).exit_code == 0
    pools = {
        o["metadata"]["name"]: o for o in load_documents(out / "pools/eks-karpenter/nodepools.yaml")
    }
    # l4: no max_nodes; llama-3-8b at maxReplicas 16 x 1 GPU on 1-GPU nodes, plus 1 spare node.
    assert pools["gpu-l4"]["spec"]["limits"]["nvidia.com/gpu"] == str(16 * 1 + 1)
    # h100: max_nodes 2 x 8 GPUs.
    assert pools["gpu-h100"]["spec"]["limits"]["nvidia.com/gpu"] == "16"


@pytest.mark.parametrize(
    ("capacity_type", "reservation", "karpenter", "gke"),
    [
        ("on-demand", None, ["on-demand"], [("on-demand",)]),
        ("spot", None, ["spot", "on-demand"], [("spot",), ("on-demand",)]),
        ("on-demand", "l4-resv", ["reserved", "on-demand"], [("l4-resv",), ("on-demand",)]),
        (
            "spot",
            "l4-resv",
            ["reserved", "spot", "on-demand"],
            [("l4-resv",), ("spot",), ("on-demand",)],
        ),
    ],
)
def test_each_cloud_asks_for_the_capacity_the_file_prices(
    tmp_path: Path,
    capacity_type: str,
    reservation: str | None,
    karpenter: list[str],
    gke: list[tuple[str]],
) -> None:
    data = _example()
    data["node_pools"]["l4"]["capacity_type"] = capacity_type
    if reservation is not None:
        data["node_pools"]["l4"]["reservation"] = reservation
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    [pool] = [
        o
        for o in load_documents(out / "pools/eks-karpenter/nodepools.yaml")
        if o["metadata"]["name"] == "gpu-l4"
    ]
    requirements = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert requirements["karpenter.sh/capacity-type"] == karpenter
    [compute_class] = [
        o
        for o in load_documents(out / "pools/gke/computeclasses.yaml")
        if o["metadata"]["name"] == "gpu-l4"
    ]
    kinds = [
        (p["reservations"]["specific"][0]["name"],)
        if "reservations" in p
        else ("spot" if p["spot"] else "on-demand",)
        for p in compute_class["spec"]["priorities"]
    ]
    assert kinds == gke


def test_gke_boot_disk_holds_a_full_node_of_weights(tmp_path: Path) -> None:
    # Two 70B replicas fit on one 8-GPU node, each downloading 132 GiB into its emptyDir.
    out = tmp_path / "out"
    assert _render(EXAMPLE, out).exit_code == 0
    classes = {
        o["metadata"]["name"]: o for o in load_documents(out / "pools/gke/computeclasses.yaml")
    }
    disk_gb = classes["gpu-h100"]["spec"]["priorities"][0]["storage"]["bootDiskSize"]
    assert disk_gb * 1e9 >= 2 * 132 * 2**30 + 50e9


def _fails(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_invalid_models_file_fails_on_one_line_and_writes_nothing(tmp_path: Path) -> None:
    data = _example()
    data["models"]["llama-3-8b"]["gpus_per_replica"] = 0
    out = tmp_path / "out"
    _fails(_render(_write(tmp_path, data), out), "models.yaml:", "gpus_per_replica")
    assert not out.exists()


def test_failed_render_leaves_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _render(EXAMPLE, out).exit_code == 0
    before = _tree(out)
    data = _example()
    data["node_pools"]["l4"]["instance_type"] = "g5.xlarge"  # A10G: no GKE equivalent
    _fails(_render(_write(tmp_path, data), out), "node_pools.l4.gpu_type", "A10G")
    assert _tree(out) == before


def test_tensor_parallel_args_must_match_gpus_per_replica(tmp_path: Path) -> None:
    data = _example()
    data["models"]["llama-3-70b"]["gpus_per_replica"] = 8
    _fails(
        _render(_write(tmp_path, data), tmp_path / "out"),
        "models.llama-3-70b.extra_args",
        "--tensor-parallel-size 4",
    )


def test_an_image_without_a_digest_is_refused(tmp_path: Path) -> None:
    data = _example()
    data["vllm"]["image"] = "vllm/vllm-openai:latest"
    _fails(_render(_write(tmp_path, data), tmp_path / "out"), "vllm.image", "digest")


@pytest.mark.parametrize("unacked", [False, None])
def test_a_trigger_blind_to_work_in_flight_is_refused(tmp_path: Path, unacked: bool | None) -> None:
    # The worker acks late: without includeUnacked the scaler would not see the tasks it runs.
    data = _example()
    if unacked is None:
        del data["models"]["llama-3-8b"]["policy"]["includeUnacked"]
    else:
        data["models"]["llama-3-8b"]["policy"]["includeUnacked"] = unacked
    _fails(
        _render(_write(tmp_path, data), tmp_path / "out"),
        "models.llama-3-8b.policy.includeUnacked",
    )


def test_more_worker_threads_than_vllm_slots_are_refused(tmp_path: Path) -> None:
    data = _example()
    data["models"]["llama-3-8b"]["policy"]["replicaConcurrency"] = 65
    _fails(
        _render(_write(tmp_path, data), tmp_path / "out"),
        "models.llama-3-8b.policy.replicaConcurrency",
    )


def test_route_names_nginx_cannot_hold_are_refused(tmp_path: Path) -> None:
    data = _example()
    data["models"]["llama-3-8b"]["served_model"] = 'evil"; include /etc/passwd; "'
    _fails(_render(_write(tmp_path, data), tmp_path / "out"), "models.llama-3-8b.served_model")


def test_refuses_to_replace_a_directory_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _fails(_render(EXAMPLE, out), "precious", "refusing")
    assert (out / "notes.txt").read_text() == "keep me"


def test_missing_models_file_is_one_line(tmp_path: Path) -> None:
    _fails(_render(tmp_path / "nope.yaml", tmp_path / "out"), "nope.yaml")


def test_slo_alert_uses_the_models_throughput_and_the_slo(tmp_path: Path) -> None:
    data = _example()
    data["slo_wait_s"] = 45
    data["models"]["llama-3-8b"]["service"]["throughput_rps"] = 11
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    [rule] = load_documents(out / "slo-rules.yaml")
    [group] = rule["spec"]["groups"]
    records = {r["labels"]["model"]: r["expr"] for r in group["rules"] if "record" in r}
    assert set(records) == set(data["models"])
    assert "(11 * clamp_min(" in records["llama-3-8b"]
    assert 'deployment="llama-3-8b"' in records["llama-3-8b"]
    [alert] = [r for r in group["rules"] if "alert" in r]
    assert alert["expr"].endswith("> 45")


def test_the_example_scaled_object_targets_a_rendered_deployment() -> None:
    # manifests/examples/scaledobject.yaml is written by hand: it must still point at what
    # `depthscale render` deploys, with the worker's concurrency and the scaler's own parser.
    [example] = load_documents(MANIFESTS / "examples" / "scaledobject.yaml")
    objects = {(o["kind"], o["metadata"]["name"]): o for o in build(MANIFESTS / "models")}
    target = example["spec"]["scaleTargetRef"]
    deployment = objects[(target.get("kind", "Deployment"), target["name"])]
    assert example["metadata"]["namespace"] == "depthscale"
    metadata = example["spec"]["triggers"][0]["metadata"]
    [worker] = deployment["spec"]["template"]["spec"]["containers"]
    assert metadata["replicaConcurrency"] == _flag(worker["args"], "--concurrency")
    assert metadata["queues"] == _flag(worker["args"], "--queues")
    assert metadata["includeUnacked"] == "true"
    config = parse_metadata(metadata).config
    assert config.max_replicas == example["spec"]["maxReplicaCount"]
