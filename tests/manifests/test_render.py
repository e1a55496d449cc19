"""``depthscale render``: the committed manifests/models is what the example models file renders
to, the objects carry the file's values, and bad input fails on one line with nothing written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from scaler.cli import main
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


def test_objects_carry_the_models_file_values(tmp_path: Path) -> None:
    data = _example()
    model = data["models"]["llama-3-8b"]
    model["gpus_per_replica"] = 2
    model["policy"]["maxReplicas"] = 7
    model["policy"]["scaleUpPending"] = 30
    model["startup_s"] = {"low": 600, "high": 1500}
    model["queues"] = ["llama-fast", "llama-batch"]
    data["control_plane"]["hpa"]["scaleUp"]["tolerance"] = 0
    data["control_plane"]["keda"]["cooldownPeriod"] = 60
    out = tmp_path / "out"
    assert _render(_write(tmp_path, data), out).exit_code == 0
    objects = _objects(out)

    deployment = objects[("Deployment", "llama-3-8b")]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["args"][container["args"].index("--tensor-parallel-size") + 1] == "2"
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 2 * 1500
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "depthscale.io/node-pool": "a100"
    }

    scaled = objects[("ScaledObject", "llama-3-8b")]["spec"]
    metadata = scaled["triggers"][0]["metadata"]
    assert scaled["maxReplicaCount"] == 7
    assert metadata["maxReplicas"] == "7"
    assert metadata["scaleUpPending"] == "30"
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
    [container] = _objects(out)[("Deployment", "llama-3-8b")]["spec"]["template"]["spec"][
        "containers"
    ]
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 600


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


def test_node_pool_gpu_limit_covers_the_models_at_max(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _render(EXAMPLE, out).exit_code == 0
    pools = {
        o["metadata"]["name"]: o for o in load_documents(out / "pools/eks-karpenter/nodepools.yaml")
    }
    # a100: no max_nodes; llama-3-8b at maxReplicas 16 x 1 GPU on 8-GPU nodes -> 2 nodes.
    assert pools["gpu-a100"]["spec"]["limits"]["nvidia.com/gpu"] == str(math.ceil(16 / 8) * 8)
    # h100: max_nodes 2 x 8 GPUs.
    assert pools["gpu-h100"]["spec"]["limits"]["nvidia.com/gpu"] == "16"


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
    data["node_pools"]["a100"]["instance_type"] = "g5.48xlarge"  # A10G: no GKE equivalent
    _fails(_render(_write(tmp_path, data), out), "node_pools.a100.gpu_type", "A10G")
    assert _tree(out) == before


def test_tensor_parallel_args_must_match_gpus_per_replica(tmp_path: Path) -> None:
    data = _example()
    data["models"]["llama-3-70b"]["gpus_per_replica"] = 8
    _fails(
        _render(_write(tmp_path, data), tmp_path / "out"),
        "models.llama-3-70b.extra_args",
        "--tensor-parallel-size 4",
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
