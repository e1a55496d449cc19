"""``depthscale tune`` end to end on a small synthetic trace: what it writes is what it scored.
The written models file renders to ScaledObjects whose metadata the scaler parses into the
tuned policy config, and simulating it gives the figures the tuner reported."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from scaler.cli import main
from scaler.metadata import parse_metadata
from simulator.scenario import load_scenario
from simulator.traces.synth import DAY_S, SynthModel, SynthSpec, synthesize
from simulator.traces.write import write_trace
from simulator.tune import apply, sample, with_target

BUDGET = 7
SEED = 4

SCENARIO = """\
version: 1
models:
  chat:
    served_model: chat
    node_pool: gpu
    max_concurrency: 32
    startup_s: 60
    policy: {includeUnacked: true, replicaConcurrency: 24, maxReplicas: 8}
  code:
    served_model: code
    node_pool: gpu
    max_concurrency: 16
    policy: {includeUnacked: true, maxReplicas: 6}
node_pools:
  gpu:
    instance_type: a2-highgpu-1g
    launch_s: 120
policies:
  - {name: depthscale, kind: depthscale, params: {scaleUpPending: 40}}
  - {name: peak, kind: static-peak}
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day of two models' traffic and the scenario above."""
    root = tmp_path_factory.mktemp("tune")
    spec = SynthSpec(
        models=(SynthModel("chat", mean_rps=3.0), SynthModel("code", mean_rps=1.0)),
        duration_s=DAY_S,
        seed=11,
    )
    write_trace(synthesize(spec), root / "trace.csv")
    (root / "models.yaml").write_text(SCENARIO)
    return root


@pytest.fixture(scope="module")
def tuned(files: Path) -> Path:
    """One tuning run (two workers); its output directory."""
    out = files / "out"
    code, output = invoke(
        "tune",
        str(files / "trace.csv"),
        "--scenario",
        str(files / "models.yaml"),
        "--budget",
        str(BUDGET),
        "--seed",
        str(SEED),
        "--slo",
        "20",
        "--out",
        str(out),
    )
    assert code == 0, output
    assert "Cheapest setting meeting 99% of every model's requests waiting ≤ 20 s" in output
    return out


def report(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "report.json").read_text())
    return document


def test_writes_the_report_and_the_setting(tuned: Path) -> None:
    for name in ("report.html", "report.json", "models.yaml", "policy.yaml"):
        assert (tuned / name).is_file(), name
    html = (tuned / "report.html").read_text()
    assert "<svg" in html
    for forbidden in ("<script", "<link", "<img", "@import", "<iframe"):  # self-contained
        assert forbidden not in html
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?!#)([^"'\s>]+)""", html)
    document = report(tuned)
    assert document["seed"] == SEED
    assert document["slo_wait_s"] == 20
    assert document["chosen"]["meets_target"] is True
    assert document["chosen"]["index"] in document["frontier"]
    scored = {s["index"]: s for s in document["scored"]}
    meeting = [s["cost_usd"] for s in scored.values() if s["meets_target"]]
    assert document["chosen"]["cost_usd"] == min(meeting)
    assert 0 in scored  # the scenario's own setting is always scored on the whole trace


def chosen_config(files: Path, tuned: Path, model: str) -> Any:
    """The policy config of the chosen setting, rebuilt from the search's own inputs (the
    seeded sample and the chosen index), not from the files under test."""
    scenario = load_scenario(files / "models.yaml").model_copy(update={"seed": SEED})
    scenario = with_target(scenario, 20.0, None)
    candidate = sample(scenario, BUDGET, SEED)[report(tuned)["chosen"]["index"]]
    return apply(scenario, candidate).models[model].policy.to_policy_config()


def test_rendered_scaled_objects_carry_the_tuned_config(files: Path, tuned: Path) -> None:
    out = files / "rendered"
    code, output = invoke("render", str(tuned / "models.yaml"), "--out", str(out))
    assert code == 0, output
    for model in ("chat", "code"):
        documents = list(yaml.safe_load_all((out / f"{model}.yaml").read_text()))
        scaled = [d for d in documents if d and d.get("kind") == "ScaledObject"]
        assert len(scaled) == 1
        metadata = scaled[0]["spec"]["triggers"][0]["metadata"]
        assert parse_metadata(metadata).config == chosen_config(files, tuned, model)
        snippet = yaml.safe_load((tuned / "scaledobject-metadata.yaml").read_text())
        assert snippet[model] == metadata


def test_the_policy_block_is_the_models_file_one(files: Path, tuned: Path) -> None:
    blocks = yaml.safe_load((tuned / "policy.yaml").read_text())["models"]
    written = load_scenario(tuned / "models.yaml")
    for model in ("chat", "code"):
        assert blocks[model]["policy"] == written.models[model].policy.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        assert written.models[model].policy.to_policy_config() == chosen_config(files, tuned, model)


def test_simulating_the_written_models_file_gives_the_reported_figures(
    files: Path, tuned: Path
) -> None:
    out = files / "resimulated"
    code, output = invoke(
        "simulate",
        str(files / "trace.csv"),
        "--scenario",
        str(tuned / "models.yaml"),
        "--out",
        str(out),
    )
    assert code == 0, output
    simulated = json.loads((out / "report.json").read_text())
    policy = simulated["policies"]["depthscale"]
    chosen = report(tuned)["chosen"]
    assert policy["cost_usd"] == pytest.approx(chosen["cost_usd"], rel=1e-12)
    worst = min(m["slo_attainment"] for m in policy["models"].values())
    assert worst == pytest.approx(chosen["slo_attainment"], rel=1e-12)
    assert policy["node_launches"] == chosen["node_launches"]
    assert policy["wait_s"]["p95"] == pytest.approx(chosen["p95_wait_s"], rel=1e-12)


def test_one_worker_scores_what_two_do(files: Path, tuned: Path) -> None:
    out = files / "serial"
    code, output = invoke(
        "tune",
        str(files / "trace.csv"),
        "--scenario",
        str(files / "models.yaml"),
        "--budget",
        str(BUDGET),
        "--seed",
        str(SEED),
        "--slo",
        "20",
        "--workers",
        "1",
        "--out",
        str(out),
    )
    assert code == 0, output
    assert report(out)["scored"] == report(tuned)["scored"]


def test_no_setting_meeting_the_target_exits_non_zero_with_one_line(files: Path) -> None:
    crowded = files / "crowded.yaml"
    # One replica serving 1 request/s at most, for 3 requests/s: a queue no setting clears.
    crowded.write_text(
        SCENARIO.replace("maxReplicas: 8", "maxReplicas: 1").replace(
            "startup_s: 60", "startup_s: 60\n    service: {throughput_rps: 1}"
        )
    )
    out = files / "none"
    code, output = invoke(
        "tune",
        str(files / "trace.csv"),
        "--scenario",
        str(crowded),
        "--budget",
        "2",
        "--attainment",
        "1",
        "--slo",
        "0",
        "--out",
        str(out),
    )
    assert code == 1
    assert output.strip().splitlines()[-1].startswith("Error: no setting of the ")
    assert "Traceback" not in output
    assert (out / "report.json").is_file()
    assert not (out / "models.yaml").exists()


def test_bad_scenario_is_one_line_naming_file_and_key(files: Path) -> None:
    bad = files / "bad.yaml"
    bad.write_text(SCENARIO.replace("maxReplicas: 8", "maxReplicas: -8"))
    code, output = invoke("tune", str(files / "trace.csv"), "--scenario", str(bad))
    assert code == 1
    assert output.startswith(f"Error: {bad}:")
    assert "maxReplicas" in output
    assert len(output.strip().splitlines()) == 1


def test_bad_entry_params_are_one_line(files: Path) -> None:
    bad = files / "params.yaml"
    bad.write_text(SCENARIO.replace("scaleUpPending: 40", "scaleUpPending: -1"))
    code, output = invoke("tune", str(files / "trace.csv"), "--scenario", str(bad))
    assert code == 1
    assert "scaleUpPending" in output
    assert len(output.strip().splitlines()) == 1


def test_aggregated_engine_tunes_and_resimulates_alike(files: Path) -> None:
    out = files / "aggregated"
    common = ["--scenario", str(files / "models.yaml"), "--seed", str(SEED), "--slo", "20"]
    code, output = invoke(
        "tune",
        str(files / "trace.csv"),
        *common,
        "--engine",
        "aggregated",
        "--budget",
        "3",
        "--out",
        str(out),
    )
    assert code == 0, output
    chosen = report(out)["chosen"]
    code, output = invoke(
        "simulate",
        str(files / "trace.csv"),
        "--scenario",
        str(out / "models.yaml"),
        "--engine",
        "aggregated",
        "--policies",
        "depthscale",
        "--out",
        str(files / "aggregated-sim"),
    )
    assert code == 0, output
    simulated = json.loads((files / "aggregated-sim" / "report.json").read_text())
    policy = simulated["policies"]["depthscale"]
    assert policy["cost_usd"] == pytest.approx(chosen["cost_usd"], rel=1e-12)
    worst = min(m["slo_attainment"] for m in policy["models"].values())
    assert worst == pytest.approx(chosen["slo_attainment"], rel=1e-12)


def test_launch_limit_is_part_of_the_target(files: Path) -> None:
    out = files / "steady"
    code, output = invoke(
        "tune",
        str(files / "trace.csv"),
        "--scenario",
        str(files / "models.yaml"),
        "--budget",
        "3",
        "--max-launches-per-hour",
        "0",
        "--out",
        str(out),
    )
    document = report(out)
    assert document["max_node_launches_per_model_hour"] == 0
    assert "with ≤ 0 GPU node launches per model-hour" in document["summary"]
    for scored in document["scored"]:
        if scored["node_launches"] > 0:
            assert scored["meets_target"] is False
    assert code == (0 if document["chosen"] else 1), output
