"""Mooncake JSONL: milliseconds, hash ids ignored, each bad line at its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.traces import TraceError, load_trace
from tests.simulator.trace_support import write_file


def test_mooncake_reads_milliseconds_and_ignores_hash_ids(tmp_path: Path) -> None:
    lines = [
        {"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [1, 2, 3]},
        {"timestamp": 1500, "input_length": 100, "output_length": 5, "hash_ids": []},
        {"timestamp": 1500.5, "input_length": 7, "output_length": 8},
    ]
    path = write_file(
        tmp_path / "conversation_trace.jsonl", "".join(json.dumps(x) + "\n" for x in lines)
    )
    loaded = load_trace(path)
    assert loaded.models == ("conversation_trace",)
    assert list(loaded.arrival_s) == [0.0, 1.5, 1.5005]
    assert list(loaded.input_tokens) == [6955, 100, 7]


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"timestamp": 5, "input_length": 1}', "output_length: must be an integer"),
        ('{"timestamp": -5, "input_length": 1, "output_length": 1}', "timestamp: must be"),
        ('{"timestamp": 5, "input_length": "1", "output_length": 1}', "input_length: must be"),
        ('{"timestamp": 5, "input_length": 1, "output_length": 1', "invalid JSON"),
        ("", "empty line"),
    ],
)
@pytest.mark.parametrize("chunk_bytes", [16 * 1024 * 1024, 100])
def test_a_malformed_mooncake_line_is_reported_at_its_line(
    tmp_path: Path, bad_line: str, problem: str, chunk_bytes: int
) -> None:
    good = '{"timestamp": 5, "input_length": 1, "output_length": 2, "hash_ids": [1]}\n'
    path = write_file(tmp_path / "m.jsonl", good * 12 + bad_line + "\n" + good * 3)
    with pytest.raises(TraceError) as caught:
        load_trace(path, chunk_bytes=chunk_bytes)
    assert caught.value.line == 13
    assert problem in caught.value.problem
