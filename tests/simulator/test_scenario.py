"""The scenario (models file): loading, defaults, located errors, and agreement with the scaler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policies.config import DEPTHSCALE, QueueDepthConfig
from scaler.metadata import KEYS, parse_metadata
from simulator.prices import PriceTableError, bundled_prices, lookup, parse_price_table
from simulator.scenario import (
    PolicyThresholds,
    Scenario,
    ScenarioError,
    ServiceModel,
    default_scenario,
    dns_name,
    dump_scenario,
    load_scenario,
    parse_scenario,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "models.yaml"

MINIMAL = """\
models:
  llama-3-8b:
    served_model: meta-llama/Meta-Llama-3-8B-Instruct
    node_pool: a100
node_pools:
  a100:
    instance_type: p4d.24xlarge
"""


def test_example_models_file_loads_with_its_stated_values() -> None:
    scenario = load_scenario(EXAMPLE)
    assert scenario.model_names == ["llama-3-8b", "llama-3-70b"]
    big = scenario.models["llama-3-70b"]
    assert big.gpus_per_replica == 4
    assert big.queues == ("llama-3-70b",)
    h100 = scenario.node_pools["h100"]
    # AWS EC2 on-demand pricing: p5.48xlarge $55.04/h on-demand, 8 GPUs.
    assert h100.hourly_usd == pytest.approx(55.04)
    assert h100.gpus_per_node == 8
    assert h100.warm_buffer is not None
    assert h100.warm_buffer.target_utilization == 0.8
    assert scenario.control_plane.hpa.scale_down.stabilization_window_s == 0
    assert [p.kind for p in scenario.policies] == [
        "depthscale",
        "keda-native",
        "schedule",
        "hindsight-schedule",
        "static-peak",
        "static",
    ]


@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_file_loads_and_round_trips(path: Path) -> None:
    scenario = load_scenario(path)
    assert parse_scenario(dump_scenario(scenario)) == scenario
    for model in scenario.models.values():
        pool = scenario.node_pools[model.node_pool]
        assert model.gpus_per_replica <= pool.gpus_per_node


def test_gke_spot_example_prices_its_pool_at_spot() -> None:
    pool = load_scenario(EXAMPLE.parent / "models-gke-spot.yaml").node_pools["a100-spot"]
    row = lookup("a2-highgpu-1g")
    assert pool.capacity_type == "spot"
    assert pool.hourly_usd == row.spot_per_hour
    assert pool.hourly_usd < row.on_demand_per_hour
    assert pool.warm_buffer is not None
    assert pool.warm_buffer.nodes == 1


def test_minimal_file_takes_the_documented_defaults() -> None:
    scenario = parse_scenario(MINIMAL)
    model = scenario.models["llama-3-8b"]
    pool = scenario.node_pools["a100"]
    assert model.queues == ("llama-3-8b",)
    assert model.trace_models == ("llama-3-8b", "meta-llama/Meta-Llama-3-8B-Instruct")
    assert model.max_concurrency == 256
    assert model.policy.to_policy_config() == DEPTHSCALE
    assert (pool.launch_s.low, pool.launch_s.high) == (180.0, 300.0)
    assert pool.consolidate_after_s == 900.0
    assert pool.spot_notice_s == 120.0
    assert pool.capacity_type == "on-demand"
    assert pool.hourly_usd == pytest.approx(21.96)  # p4d.24xlarge after the June 2025 cut
    keda, hpa = scenario.control_plane.keda, scenario.control_plane.hpa
    assert (keda.polling_interval_s, keda.cooldown_period_s) == (30.0, 300.0)
    assert hpa.sync_period_s == 15.0
    assert hpa.scale_up.tolerance == hpa.scale_down.tolerance == 0.1
    assert hpa.scale_up.stabilization_window_s == 0
    assert hpa.scale_down.stabilization_window_s == 300
    assert {(r.type, r.value, r.period_s) for r in hpa.scale_up.policies} == {
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    }


def test_spot_pool_prices_at_the_spot_column() -> None:
    text = MINIMAL.replace(
        "instance_type: p4d.24xlarge", "instance_type: g5.xlarge\n    capacity_type: spot"
    )
    pool = parse_scenario(text).node_pools["a100"]
    assert pool.hourly_usd == pytest.approx(lookup("g5.xlarge").spot_per_hour)
    assert pool.hourly_usd < 1.006


def test_explicit_prices_and_gpus_override_the_table_even_for_unknown_types() -> None:
    text = MINIMAL.replace(
        "instance_type: p4d.24xlarge",
        "instance_type: custom-gpu-box\n    gpu_type: L4\n    gpus_per_node: 2\n"
        "    price_per_hour: {on_demand: 2.5, spot: 1.0}",
    )
    pool = parse_scenario(text).node_pools["a100"]
    assert (pool.gpu_type, pool.gpus_per_node, pool.hourly_usd) == ("L4", 2, 2.5)


ERRORS = [
    pytest.param(
        "gpus_per_replica: 0",
        5,
        "models.llama-3-8b.gpus_per_replica",
        "must be >= 1, got 0",
        id="gpus-below-one",
    ),
    pytest.param(
        "gpus_per_replica: 16",
        None,
        "models.llama-3-8b.gpus_per_replica",
        "16 GPUs do not fit",
        id="gpus-above-node",
    ),
    pytest.param("bogus: 1", 5, "models.llama-3-8b.bogus", "unknown key", id="unknown-key"),
    pytest.param(
        "policy:\n      scaleUpPending: 5\n      scaleDownPending: 10",
        7,
        "models.llama-3-8b.policy.scaleDownPending",
        "< scaleUpPending",
        id="thresholds-crossed",
    ),
    pytest.param(
        "policy:\n      maxReplicas: 0",
        6,
        "models.llama-3-8b.policy.maxReplicas",
        "must be >=",
        id="max-replicas-zero",
    ),
    pytest.param(
        "startup_s: {low: 300, high: 60}",
        5,
        "models.llama-3-8b.startup_s",
        "high (60) must be >= low (300)",
        id="range-reversed",
    ),
    pytest.param(
        "max_concurrency: -1",
        5,
        "models.llama-3-8b.max_concurrency",
        "must be >= 1",
        id="concurrency",
    ),
    pytest.param(
        "queues: [a, 'bad queue']",
        5,
        "models.llama-3-8b.queues",
        "'bad queue'",
        id="queue-name",
    ),
]


@pytest.mark.parametrize(("extra", "line", "path", "problem"), ERRORS)
def test_bad_model_values_name_file_line_and_key_path(
    extra: str, line: int | None, path: str, problem: str
) -> None:
    text = MINIMAL.replace("    node_pool: a100\n", f"    node_pool: a100\n    {extra}\n")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "models.yaml")
    error = caught.value
    assert error.path == path
    assert problem in error.problem
    assert error.file == "models.yaml"
    if line is not None:
        assert error.line == line
        assert str(error).startswith(f"models.yaml:{line}: {path}: ")


def test_keys_written_by_field_name_are_located_too() -> None:
    text = MINIMAL + "control_plane:\n  keda:\n    polling_interval_s: 0\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "m.yaml")
    assert caught.value.line == 10
    assert caught.value.path == "control_plane.keda.polling_interval_s"


def test_model_names_must_be_kubernetes_service_names() -> None:
    text = MINIMAL.replace("  llama-3-8b:", "  Llama_3:")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "m.yaml")
    assert caught.value.path == "models.Llama_3.name"
    assert caught.value.line == 2
    assert "DNS-1035" in caught.value.problem


def test_unknown_node_pool_is_named_with_the_known_ones() -> None:
    text = MINIMAL.replace("node_pool: a100", "node_pool: h100")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "m.yaml")
    assert caught.value.path == "models.llama-3-8b.node_pool"
    assert caught.value.line == 4
    assert "'h100'" in caught.value.problem
    assert "a100" in caught.value.problem


def test_unknown_instance_type_without_prices_points_at_instance_type() -> None:
    text = MINIMAL.replace("p4d.24xlarge", "x9.huge")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "m.yaml")
    assert caught.value.path == "node_pools.a100.instance_type"
    assert caught.value.line == 7
    assert "set price_per_hour" in caught.value.problem


def test_a_queue_belongs_to_one_model_only() -> None:
    text = MINIMAL.replace(
        "node_pools:",
        "  mistral-7b:\n    served_model: m\n    node_pool: a100\n    queues: [llama-3-8b]\nnode_pools:",
    )
    with pytest.raises(ScenarioError, match="queue 'llama-3-8b' belongs to both"):
        parse_scenario(text)


@pytest.mark.parametrize(
    "policies",
    [
        "[{name: s, kind: static}]",
        "[{name: s, kind: static, params: {replicas: -1}}]",
        "[{name: s, kind: static, params: {replicas: two}}]",
    ],
)
def test_static_policy_needs_a_replica_count(policies: str) -> None:
    with pytest.raises(ScenarioError, match=r"params\.replicas"):
        parse_scenario(MINIMAL + f"policies: {policies}\n")


def test_unknown_policy_kind_and_duplicate_names_are_rejected() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(MINIMAL + "policies: [{name: x, kind: predictive}]\n", "m.yaml")
    assert caught.value.path == "policies.0.kind"
    assert caught.value.line == 8
    with pytest.raises(ScenarioError, match="names must be unique"):
        parse_scenario(
            MINIMAL + "policies: [{name: x, kind: static-peak}, {name: x, kind: keda-native}]\n"
        )


def test_invalid_yaml_and_non_mapping_files_are_located() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("models:\n  a: [1, 2\n", "m.yaml")
    assert caught.value.line is not None
    assert "invalid YAML" in str(caught.value)
    with pytest.raises(ScenarioError, match="must be a YAML mapping"):
        parse_scenario("- 1\n- 2\n", "m.yaml")


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_dump_then_parse_gives_the_same_scenario() -> None:
    scenario = load_scenario(EXAMPLE)
    again = parse_scenario(dump_scenario(scenario))
    assert again == scenario


def test_threshold_aliases_are_the_scalers_metadata_keys() -> None:
    scaler_keys = {key.name for key in KEYS}
    aliases = {field.alias for field in PolicyThresholds.model_fields.values()}
    assert {a for a in aliases if a is not None} | {"mode"} <= scaler_keys


def test_thresholds_as_metadata_parse_to_the_same_config_in_the_scaler() -> None:
    for model in load_scenario(EXAMPLE).models.values():
        metadata = {"broker": "default", "queues": ",".join(model.queues)}
        metadata |= model.policy.to_metadata()
        assert parse_metadata(metadata).config == model.policy.to_policy_config()


def test_thresholds_override_only_what_they_set() -> None:
    thresholds = PolicyThresholds.model_validate({"scaleUpPending": 80, "minReplicas": 1})
    config = thresholds.to_policy_config()
    assert (config.scale_up_pending, config.min_replicas) == (80.0, 1)
    assert config.stabilization_window_s == QueueDepthConfig().stabilization_window_s


def test_service_model_reproduces_its_calibration_throughput() -> None:
    # A full batch of calibration requests (200 in / 180 out) must complete throughput_rps per s.
    service = ServiceModel(throughput_rps=19.0)
    seconds = service.service_s(np.array([200], np.int32), np.array([180], np.int32), 256)
    assert 256 / seconds[0] == pytest.approx(19.0)


def test_service_time_grows_with_tokens_and_keeps_its_floor() -> None:
    service = ServiceModel()
    seconds = service.service_s(
        np.array([200, 200, 2000, 0], np.int32), np.array([180, 360, 180, 0], np.int32), 256
    )
    assert seconds[1] > seconds[0]
    assert seconds[2] > seconds[0]
    assert seconds[1] == pytest.approx(2 * seconds[0], rel=0.1)
    assert seconds[3] == service.min_service_s


def test_default_scenario_serves_every_trace_model_on_a100() -> None:
    names = ["meta-llama/Meta-Llama-3-8B-Instruct", "GPT-4", "7b"]
    scenario = default_scenario(names)
    assert len(scenario.models) == 3
    for trace_name in names:
        model = scenario.model_for_trace_name(trace_name)
        assert model.served_model == trace_name
        config = model.policy.to_policy_config()
        # the seed's thresholds and window, in-flight counted against the replica's slots
        assert (config.scale_up_pending, config.scale_down_pending) == (50, 5)
        assert config.stabilization_window_s == 600
        assert model.policy.include_unacked is True
        assert config.replica_concurrency == model.max_concurrency
        pool = scenario.node_pools[model.node_pool]
        assert (pool.instance_type, pool.gpu_type, pool.gpus_per_node, pool.capacity_type) == (
            "a2-highgpu-1g",
            "A100-40GB",
            1,
            "on-demand",
        )
    # the HPA settings depthscale's ScaledObjects use; KEDA-native keeps Kubernetes' defaults
    hpa = scenario.control_plane.hpa
    assert (hpa.scale_up.tolerance, hpa.scale_down.tolerance) == (0, 0)
    assert hpa.scale_down.stabilization_window_s == 0
    by_name = {p.name: p for p in scenario.policies}
    keda_native = by_name["keda-native"].control_plane
    assert keda_native is not None
    assert keda_native.hpa.scale_down.tolerance == pytest.approx(0.1)
    assert keda_native.hpa.scale_down.stabilization_window_s == 300
    assert keda_native.keda.cooldown_period_s == 300
    assert by_name["seed-rule"].params == {"preset": "seed"}
    assert scenario.model_for_trace_name("7b").name == "m-7b"
    assert list(scenario.trace_model_index(["GPT-4", "7b"])) == [1, 2]
    with pytest.raises(KeyError, match="unknown-model"):
        scenario.trace_model_index(["unknown-model"])


def test_default_scenario_keeps_colliding_names_apart() -> None:
    scenario = default_scenario(["Llama 3", "llama-3"])
    assert len(set(scenario.models)) == 2
    assert isinstance(scenario, Scenario)


@pytest.mark.parametrize(
    ("trace_name", "expected"),
    [("meta-llama/Llama-3-8B", "meta-llama-llama-3-8b"), ("GPT-4", "gpt-4"), ("70b", "m-70b")],
)
def test_dns_name(trace_name: str, expected: str) -> None:
    assert dns_name(trace_name) == expected


def test_bundled_prices_are_sourced_and_hold_the_design_figures() -> None:
    table = bundled_prices()
    for row in table.values():
        assert row.source
        assert row.gpus >= 1
        # spot observed at 22-46% of on-demand.
        assert 0.22 <= row.spot_per_hour / row.on_demand_per_hour <= 0.46
        assert row.estimated in ("", "spot", "on_demand+spot")
    figures = {"g5.xlarge": 1.006, "g6.xlarge": 0.8048, "p4d.24xlarge": 21.96, "p5.48xlarge": 55.04}
    for instance_type, price in figures.items():
        assert table[instance_type].on_demand_per_hour == price


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("aws,r,x1,T4,zero,1.0,0.5,,src", 2, "invalid literal"),
        ("aws,r,x1,T4,1,1.0,0.5,,src\naws,r,x1,T4,1,1.0,0.5,,src", 3, "duplicate"),
        ("aws,r,x1,T4,1,1.0,0.5,,", 2, "source must not be empty"),
        ("aws,r,x1,T4,1,-1.0,0.5,,src", 2, "positive"),
    ],
)
def test_price_table_errors_name_the_line(body: str, line: int, problem: str) -> None:
    header = "provider,region,instance_type,gpu_type,gpus,on_demand_per_hour,spot_per_hour,estimated,source"
    with pytest.raises(PriceTableError, match=f"prices.csv:{line}: .*{problem}"):
        parse_price_table(f"{header}\n{body}\n", "prices.csv")


# ---- control_plane.replicas_from ------------------------------------------------------------


def test_replicas_from_defaults_to_what_the_manifests_deploy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    from scaler.serve import REPLICAS_FROM_ENV, serve

    manifest = EXAMPLE.parents[1] / "manifests" / "base" / "scaler" / "deployment.yaml"
    deployment = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    command, *args = container["args"]
    assert command == "serve"
    monkeypatch.delenv(REPLICAS_FROM_ENV, raising=False)
    deployed = serve.make_context("serve", list(args)).params["replicas_from"]
    scenario = parse_scenario(MINIMAL, "models.yaml")
    assert scenario.control_plane.replicas_from == deployed


def test_replicas_from_takes_the_serve_choices_and_locates_a_bad_one() -> None:
    text = MINIMAL + "control_plane:\n  replicas_from: decisions\n"
    assert parse_scenario(text, "m.yaml").control_plane.replicas_from == "decisions"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(MINIMAL + "control_plane:\n  replicas_from: guess\n", "m.yaml")
    assert caught.value.line == 9  # MINIMAL's 7 lines, then control_plane:, then the key
    assert caught.value.path == "control_plane.replicas_from"
    assert "'decisions' or 'kubernetes'" in caught.value.problem
