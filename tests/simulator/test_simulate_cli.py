"""``depthscale simulate`` end to end through click: a small real trace, the real engine, the
report on disk; bad input stops with one line naming file and line, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from scaler.cli import main

ROWS = 300


def write_trace(path: Path, bad_line: int | None = None) -> Path:
    """ROWS requests over two hours, two models, every 24 s; ``bad_line`` (1-based, counting the
    header) gets a non-numeric token count."""
    lines = ["arrival_s,model,input_tokens,output_tokens"]
    for i in range(ROWS):
        model = "chat" if i % 3 else "code"
        lines.append(f"{i * 24.0:.1f},{model},200,180")
    if bad_line is not None:
        lines[bad_line - 1] = "100.0,chat,lots,180"
    path.write_text("\n".join(lines) + "\n")
    return path


SCENARIO = """\
version: 1
seed: 5
slo_wait_s: 20
models:
  chat:
    served_model: chat
    node_pool: gpu
    gpus_per_replica: 1
    startup_s: 60
  code:
    served_model: code
    node_pool: gpu
    gpus_per_replica: {gpus}
node_pools:
  gpu:
    instance_type: g5.xlarge
    launch_s: 120
policies:
  - {{name: depthscale, kind: depthscale}}
  - {{name: office, kind: schedule, params: {{peak: 1, off_peak: 1}}}}
  - {{name: two, kind: static, params: {{replicas: 2}}}}
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_default_scenario_writes_the_report(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    out = tmp_path / "report"
    code, output = invoke(str(trace), "--out", str(out), "--no-progress")
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    doc = json.loads((out / "report.json").read_text())
    assert list(doc["policies"]) == [
        "depthscale",
        "seed-rule",
        "keda-native",
        "business-hours",
        "trailing-schedule",
        "hindsight-schedule",
        "static-peak",
    ]
    for name, entry in doc["policies"].items():
        assert entry["requests"] == ROWS, name
        assert entry["served"] + entry["unserved"] == ROWS, name
        assert sum(m["requests"] for m in entry["models"].values()) == ROWS
    assert "report.html" in output
    assert "depthscale" in output
    assert "vs business-hours" in output


def test_scenario_file_and_policy_subset(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    scenario = tmp_path / "models.yaml"
    scenario.write_text(SCENARIO.format(gpus=1))
    out = tmp_path / "out"
    code, output = invoke(
        str(trace), "--scenario", str(scenario), "--out", str(out), "--policies", "two,office"
    )
    assert code == 0, output
    doc = json.loads((out / "report.json").read_text())
    assert list(doc["policies"]) == ["two", "office"]
    assert doc["seed"] == 5
    assert doc["slo_wait_s"] == 20
    assert doc["baselines"] == ["office"]
    assert set(doc["policies"]["two"]["models"]) == {"chat", "code"}


def test_seed_option_replaces_the_scenarios(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    scenario = tmp_path / "models.yaml"
    scenario.write_text(SCENARIO.format(gpus=1))
    out = tmp_path / "out"
    code, output = invoke(
        str(trace), "--scenario", str(scenario), "--out", str(out), "--policies", "two",
        "--seed", "11",
    )  # fmt: skip
    assert code == 0, output
    assert json.loads((out / "report.json").read_text())["seed"] == 11


def test_bad_trace_row_names_the_line_and_writes_nothing(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv", bad_line=7)
    out = tmp_path / "out"
    code, output = invoke(str(trace), "--out", str(out))
    assert code != 0
    assert output.startswith("Error: ")
    assert f"{trace}:7:" in output
    assert len(output.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_scenario_field_names_the_line_and_writes_nothing(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    scenario = tmp_path / "models.yaml"
    scenario.write_text(SCENARIO.format(gpus=0))
    line = 1 + SCENARIO.splitlines().index("    gpus_per_replica: {gpus}")
    out = tmp_path / "out"
    code, output = invoke(str(trace), "--scenario", str(scenario), "--out", str(out))
    assert code != 0
    assert f"Error: {scenario}:{line}: models.code.gpus_per_replica" in output
    assert len(output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("label", "extra", "message"),
    [
        ("unknown policy", ["--policies", "nope"], "policies: no policy named nope"),
        ("unmapped trace model", ["--rename", "code=other"], "'other' is served by no model"),
    ],
)
def test_scenario_and_trace_must_fit(
    tmp_path: Path, label: str, extra: list[str], message: str
) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    scenario = tmp_path / "models.yaml"
    scenario.write_text(SCENARIO.format(gpus=1))
    out = tmp_path / "out"
    code, output = invoke(str(trace), "--scenario", str(scenario), "--out", str(out), *extra)
    assert code != 0, label
    assert output.startswith(f"Error: {scenario}: "), output
    assert message in output, output
    assert not out.exists()


def test_same_seed_same_report(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    scenario = tmp_path / "models.yaml"
    scenario.write_text(SCENARIO.format(gpus=1))
    for out in ("one", "two"):
        code, output = invoke(
            str(trace), "--scenario", str(scenario), "--out", str(tmp_path / out), "--no-progress"
        )
        assert code == 0, output
    for name in ("report.json", "report.md", "report.html"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
