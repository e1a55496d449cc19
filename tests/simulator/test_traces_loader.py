"""Which format a file is in, and what loading any file promises: rows sorted, errors named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.traces import TraceError, detect_format, load_trace
from tests.simulator.trace_support import GENERIC_HEADER, SAMPLES, write_file


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("synthetic-2d.parquet", "generic"),
        ("synthetic-1h.csv", "generic"),
        ("azure-conv-sample.csv", "azure"),
        ("mooncake-sample.jsonl", "mooncake"),
        ("burstgpt-sample.csv", "burstgpt"),
        ("servegen-client-sample.csv", "servegen"),
    ],
)
def test_bundled_samples_are_detected_and_load(name: str, fmt: str) -> None:
    path = SAMPLES / name
    assert detect_format(path) == fmt
    loaded = load_trace(path)
    assert len(loaded) > 1000
    assert loaded.arrival_s.dtype == np.float64
    assert bool(np.all(np.diff(loaded.arrival_s) >= 0))
    assert loaded.input_tokens.min() >= 0


def test_format_can_be_forced_and_a_wrong_one_names_the_missing_column() -> None:
    with pytest.raises(TraceError) as caught:
        load_trace(SAMPLES / "synthetic-1h.csv", "burstgpt")
    assert caught.value.line == 1
    assert "missing column Timestamp" in caught.value.problem


def test_unknown_header_asks_for_format(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.csv", "when,what\n1,2\n")
    with pytest.raises(TraceError, match=r"t\.csv:1: unrecognised trace header.*--format"):
        load_trace(path)


def test_a_trace_without_requests_is_an_error(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.csv", GENERIC_HEADER)
    with pytest.raises(TraceError, match="no requests"):
        load_trace(path)


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        load_trace(tmp_path / "absent.csv")
