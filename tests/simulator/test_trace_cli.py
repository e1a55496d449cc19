"""`depthscale trace synth|inspect`: what a user types, and one-line errors that write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import bins_summary_lines, summary_lines
from simulator.cli import trace as trace_cli
from simulator.scenario import load_scenario
from simulator.traces import load_trace
from simulator.traces.bins import bins_from_trace
from tests.simulator.trace_support import GENERIC_HEADER, SAMPLES, small_trace, write_file


def test_cli_synth_then_inspect(tmp_path: Path) -> None:
    out = tmp_path / "week.parquet"
    runner = CliRunner()
    made = runner.invoke(
        trace_cli, ["synth", str(out), "--days", "0.5", "--model", "a=1", "--model", "b=0.5"]
    )
    assert made.exit_code == 0, made.output
    assert out.exists()
    shown = runner.invoke(trace_cli, ["inspect", str(out), "--rename", "a=big"])
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line.split() for line in shown.output.splitlines()[4:]}
    assert set(rows) == {"b", "big"}
    expected = load_trace(out).counts()
    assert int(rows["big"][1].replace(",", "")) == expected[0]


def test_cli_inspect_converts_to_the_generic_format(tmp_path: Path) -> None:
    out = tmp_path / "converted.csv"
    result = CliRunner().invoke(
        trace_cli,
        [
            "inspect",
            str(SAMPLES / "azure-conv-sample.csv"),
            "--model",
            "llama-3-8b",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    converted, original = load_trace(out), load_trace(SAMPLES / "azure-conv-sample.csv")
    assert converted.models == ("llama-3-8b",)
    np.testing.assert_array_equal(converted.input_tokens, original.input_tokens)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synth", "OUT.txt"], "extension must be .csv"),
        (["synth", "OUT.csv", "--model", "a=-1"], "--model 'a=-1'"),
        (["inspect", "BAD"], "BAD.csv:2: input_tokens: not an integer"),
        (["inspect", "BAD", "--rename", "nope"], "expected OLD=NEW"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    bad = write_file(tmp_path / "BAD.csv", GENERIC_HEADER + "1.0,m,x,1\n")
    argv = [
        str(bad) if a == "BAD" else str(tmp_path / a) if a.startswith("OUT") else a for a in args
    ]
    result = CliRunner().invoke(trace_cli, argv)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BAD.csv"]


def _rates(lines: list[str]) -> dict[str, tuple[float, float]]:
    """model -> (mean rps, peak rps) as ``trace inspect`` prints them."""
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    return {
        row.split()[0]: (float(row.split()[2]), float(row.split()[3]))
        for row in lines[header + 1 :]
    }


def test_inspect_two_requests_a_second_apart(tmp_path: Path) -> None:
    # Both arrive in the first minute: 2 requests over that minute, the busiest one too.
    path = write_file(tmp_path / "two.csv", GENERIC_HEADER + "0,m,10,20\n1,m,10,20\n")
    shown = CliRunner().invoke(trace_cli, ["inspect", str(path)])
    assert shown.exit_code == 0, shown.output
    assert _rates(shown.output.splitlines()) == {"m": (0.033, 0.033)}


def test_inspect_mean_is_over_the_minutes_spanned() -> None:
    # 60 requests in minute 0, none in minute 1, 30 in minute 2: 90 over 3 minutes.
    arrivals = [float(s) for s in range(60)] + [120.0 + 2 * s for s in range(30)]
    lines = summary_lines(small_trace(arrivals, [0] * 90, ("m",)), "t")
    assert _rates(lines) == {"m": (0.5, 1.0)}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 7200, allow_nan=False), st.integers(0, 2)), min_size=1, max_size=200
    )
)
def test_inspect_mean_never_exceeds_peak(requests: list[tuple[float, int]]) -> None:
    arrivals, models = [a for a, _ in requests], [m for _, m in requests]
    trace = small_trace(arrivals, models, ("a", "b", "c"))
    per_request = _rates(summary_lines(trace, "t"))
    per_second = _rates(bins_summary_lines(bins_from_trace(trace), "t"))
    assert set(per_request) == set(per_second) == set(trace.models)
    for name in trace.models:
        for mean, peak in (per_request[name], per_second[name]):
            assert mean <= peak


MODELS_FILE = """\
models:
  small:
    served_model: org/small-instruct
    node_pool: gpu
    service: {throughput_rps: 5}
    policy: {maxReplicas: 16}
  big:
    served_model: org/big-instruct
    trace_models: [org/big-instruct]
    node_pool: gpu
    service: {throughput_rps: 17}
    policy: {maxReplicas: 4}
node_pools:
  gpu:
    instance_type: p4d.24xlarge
"""


def test_synth_for_a_models_file_names_its_models(tmp_path: Path) -> None:
    models = write_file(tmp_path / "models.yaml", MODELS_FILE)
    out = tmp_path / "t.parquet"
    made = CliRunner().invoke(
        trace_cli, ["synth", str(out), "--days", "0.25", "--scenario", str(models)]
    )
    assert made.exit_code == 0, made.output
    generated = load_trace(out)
    # Each model under its first trace name: "small" by default, "org/big-instruct" as listed.
    assert set(generated.models) == {"small", "org/big-instruct"}
    scenario = load_scenario(models)
    assert [scenario.model_for_trace_name(n).name for n in generated.models] == [
        "big" if n == "org/big-instruct" else "small" for n in generated.models
    ]
    # A tenth of the capacity: 16 × 5 = 80 req/s gives 8; 4 × 17 = 68 gives 6.8.
    expected = {"small": 8.0, "org/big-instruct": 6.8}
    duration_s = 0.25 * 86_400
    for i, name in enumerate(generated.models):
        assert generated.counts()[i] == pytest.approx(expected[name] * duration_s, rel=0.02)


def test_synth_for_a_models_file_takes_a_given_rate_and_refuses_a_stranger(
    tmp_path: Path,
) -> None:
    models = write_file(tmp_path / "models.yaml", MODELS_FILE)
    out = tmp_path / "t.csv"
    runner = CliRunner()
    args = ["synth", str(out), "--days", "0.1", "--scenario", str(models)]
    made = runner.invoke(trace_cli, [*args, "--model", "small=1"])
    assert made.exit_code == 0, made.output
    counts = dict(zip(load_trace(out).models, load_trace(out).counts(), strict=True))
    assert counts["small"] == pytest.approx(0.1 * 86_400, rel=0.05)
    stranger = runner.invoke(trace_cli, [*args, "--model", "mistral-7b=12"])
    assert stranger.exit_code == 1
    assert "--model 'mistral-7b': not a model of" in stranger.output
