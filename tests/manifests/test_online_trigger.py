"""Models served online: the rendered ScaledObject's second trigger (KEDA's prometheus scaler on
vLLM's gauges) and the replica the model keeps, read back from the built overlays and checked
against the models file's own numbers."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from scaler.cli import main
from scaler.metadata import parse_metadata
from tests.conftest import require_binary
from tests.manifests.conftest import ROOT
from tests.manifests.kustomize import Obj

EXAMPLE = ROOT / "examples" / "models.yaml"


def _example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def _share(model: dict[str, Any]) -> float:
    return float(model.get("online", {}).get("share", 0.0))


def _scaled(objects: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "ScaledObject"}


def test_the_example_serves_a_model_online() -> None:
    # Otherwise every check below passes on nothing.
    assert any(_share(m) > 0 for m in _example()["models"].values())


def test_online_models_get_a_prometheus_trigger_on_vllms_gauges(
    overlay: tuple[str, list[Obj]],
) -> None:
    _, objects = overlay
    data = _example()
    utilization = float(data.get("target_utilization", 0.8))  # the file's, or its default
    scaled = _scaled(objects)
    [monitor] = [
        o for o in objects if o["kind"] == "PodMonitor" and o["metadata"]["name"] == "vllm"
    ]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    relabelled = {r["targetLabel"] for r in endpoint["relabelings"]}
    for name, model in data["models"].items():
        so = scaled[name]
        spec = so["spec"]
        external, *rest = spec["triggers"]
        assert external["type"] == "external"
        if _share(model) == 0:
            assert rest == [], f"{name} is not served online: one trigger"
            continue
        [online] = rest
        assert online["type"] == "prometheus"
        assert online["metricType"] == "AverageValue"
        metadata = online["metadata"]
        assert set(metadata) == {"serverAddress", "query", "threshold"}
        assert re.fullmatch(r"http://[a-z0-9.-]+:9090", metadata["serverAddress"])
        # The threshold: the replica's slots at the file's target utilization, rounded down.
        slots = int(model.get("max_concurrency", 256))
        expected = model["online"].get("target_per_replica", math.floor(slots * utilization))
        assert float(metadata["threshold"]) == expected
        # Both gauges, for this model's pods only, by the labels the PodMonitor writes.
        query = metadata["query"]
        assert 'vllm:num_requests_(running|waiting)"' in query
        assert f'model="{name}"' in query
        assert "model" in relabelled
        assert f'namespace="{so["metadata"]["namespace"]}"' in query
        # Held at its highest over the policy's window, stepping at the scrape interval.
        window = int(model["policy"].get("stabilizationWindowSeconds", 600))
        assert query.startswith("max_over_time(sum(")
        assert query.endswith(f"[{window // 60}m:15s])")
        # Never at zero: the gateway cannot wake a model.
        assert spec["minReplicaCount"] >= 1
        assert spec["fallback"]["replicas"] >= 1
        assert parse_metadata(external["metadata"]).config.min_replicas == spec["minReplicaCount"]


def test_the_online_query_parses(tmp_path: Path) -> None:
    from simulator.manifests.models import online_query
    from simulator.scenario import load_scenario

    scenario = load_scenario(EXAMPLE)
    rules = [
        {"record": f"online:query_{i}", "expr": online_query(m, "depthscale", 15.0)}
        for i, m in enumerate(scenario.models.values())
    ]
    (tmp_path / "online.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "online", "rules": rules}]})
    )
    result = subprocess.run(
        [require_binary("promtool"), "check", "rules", "online.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pod_monitor_scrapes_at_the_files_interval(tmp_path: Path) -> None:
    data = _example()
    data.setdefault("control_plane", {})["prometheus"] = {"scrape_interval_s": 30}
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(models_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all((out / "monitoring.yaml").read_text()))
    [monitor] = [d for d in documents if d["kind"] == "PodMonitor"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "30s"


@pytest.mark.parametrize(
    ("online", "needle"),
    [
        ({"share": 0.3, "trigger": False}, "models.llama-3-70b.online.trigger"),
    ],
)
def test_online_traffic_without_a_trigger_is_not_rendered(
    tmp_path: Path, online: dict[str, Any], needle: str
) -> None:
    data = _example()
    data["models"]["llama-3-70b"]["online"] = online
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(models_file), "--out", str(out)])
    assert result.exit_code != 0
    assert needle in result.output
    assert not out.exists()


def test_the_prometheus_address_is_an_option(tmp_path: Path) -> None:
    out = tmp_path / "out"
    address = "http://prometheus.observability.svc.cluster.local:9090"
    result = CliRunner().invoke(
        main, ["render", str(EXAMPLE), "--out", str(out), "--prometheus-address", address]
    )
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all((out / "llama-3-70b.yaml").read_text()))
    [so] = [d for d in documents if d["kind"] == "ScaledObject"]
    assert so["spec"]["triggers"][1]["metadata"]["serverAddress"] == address


def test_the_gateway_routes_only_models_served_online(tmp_path: Path) -> None:
    # A model without online traffic may sit at zero replicas, where the gateway could only
    # answer 502: it gets no route (404), one trigger, and may keep minReplicas 0.
    data = _example()
    offline = data["models"]["llama-3-8b"]
    offline.pop("online")
    offline["policy"]["minReplicas"] = 0
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(models_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    [routes] = list(yaml.safe_load_all((out / "gateway-routes.yaml").read_text()))
    routed = dict(re.findall(r'^"([^"]+)" (\S+);$', routes["data"]["routes.map"], re.M))
    upstreams = re.findall(r"upstream (\S+) \{", routes["data"]["upstreams.conf"])
    served = data["models"]["llama-3-70b"]["served_model"]
    assert routed == {"llama-3-70b": "llama-3-70b", served: "llama-3-70b"}
    assert upstreams == ["llama-3-70b"]
    documents = list(yaml.safe_load_all((out / "llama-3-8b.yaml").read_text()))
    [so] = [d for d in documents if d["kind"] == "ScaledObject"]
    assert [t["type"] for t in so["spec"]["triggers"]] == ["external"]
    assert so["spec"]["minReplicaCount"] == 0
