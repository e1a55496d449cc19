"""`depthscale trace synth|inspect`: what a user types, and one-line errors that write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simulator.cli import trace as trace_cli
from simulator.traces import load_trace
from tests.simulator.trace_support import GENERIC_HEADER, SAMPLES, write_file


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
