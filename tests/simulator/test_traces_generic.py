"""The generic CSV/Parquet format: columns, timestamps, and each bad row at its line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simulator.traces import DEFAULT_EPOCH_S, TraceError, load_trace
from tests.simulator.trace_support import GENERIC_HEADER, GOOD_ROW, write_file


def test_generic_csv_reads_the_columns_as_written(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "t.csv",
        "model,arrival_s,input_tokens,output_tokens,service_s,note\n"
        "b,0.5,10,20,1.5,x\n"
        "a,0.25,11,21,2.5,y\n"
        "b,2,12,22,3.5,z\n",
    )
    loaded = load_trace(path)
    assert loaded.models == ("a", "b")
    assert list(loaded.arrival_s) == [0.25, 0.5, 2.0]
    assert list(loaded.model) == [0, 1, 1]
    assert list(loaded.input_tokens) == [11, 10, 12]
    assert list(loaded.output_tokens) == [21, 20, 22]
    assert loaded.service_s is not None
    assert list(loaded.service_s) == [2.5, 1.5, 3.5]
    assert loaded.epoch_s == DEFAULT_EPOCH_S


def test_generic_iso_timestamps_give_the_epoch_and_offsets(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "t.csv",
        "timestamp,model,input_tokens,output_tokens\n"
        "2024-03-04T10:00:00Z,m,1,1\n"
        "2024-03-04 10:00:01.25,m,1,1\n"
        "2024-03-04T11:00:02+01:00,m,1,1\n",
    )
    loaded = load_trace(path, chunk_bytes=30)
    assert loaded.epoch_s == 1_709_546_400.0  # 2024-03-04T10:00:00Z
    assert list(loaded.arrival_s) == [0.0, 1.25, 2.0]


def test_crlf_line_endings_and_a_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"\xef\xbb\xbfarrival_s,model,input_tokens,output_tokens\r\n0.5,m,1,2\r\n1.5,m,3,4\r\n"
    )
    loaded = load_trace(path)
    assert list(loaded.arrival_s) == [0.5, 1.5]
    assert list(loaded.output_tokens) == [2, 4]
    path.write_bytes(path.read_bytes() + b"2.5,m,x,4\r\n")
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == 4


def test_parquet_native_timestamps_set_the_epoch(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array(
                [1_700_000_000_000_000, 1_700_000_002_500_000], pa.timestamp("us", "UTC")
            ),
            "model": ["m", "m"],
            "input_tokens": pa.array([1, 2], pa.int16()),
            "output_tokens": [3, 4],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    loaded = load_trace(tmp_path / "t.parquet")
    assert loaded.epoch_s == 1_700_000_000.0
    assert list(loaded.arrival_s) == [0.0, 2.5]
    assert list(loaded.input_tokens) == [1, 2]


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("1.0,m,ten,20", "input_tokens: not an integer: 'ten'"),
        ("1.0,m,-3,20", "input_tokens: must be between 0 and"),
        ("1.0,m,10,99999999999", "output_tokens: must be between 0 and"),
        ("x,m,10,20", "arrival_s: not a number: 'x'"),
        ("-1,m,10,20", "arrival_s: must be a finite number >= 0"),
        ("nan,m,10,20", "arrival_s: must be a finite number >= 0"),
        ("1.0,,10,20", "model: empty value"),
        ("1.0,m,10", "expected 4 fields"),
        ("1.0,m,10,20,extra", "expected 4 fields"),
        ("", "empty line"),
        ('1.0,"m,10,20', "malformed CSV"),
    ],
)
@pytest.mark.parametrize("chunk_bytes", [16 * 1024 * 1024, 64])
def test_a_malformed_generic_row_is_reported_at_its_line(
    tmp_path: Path, bad_row: str, problem: str, chunk_bytes: int
) -> None:
    rows = [GOOD_ROW] * 40 + [bad_row + "\n"] + [GOOD_ROW] * 10
    path = write_file(tmp_path / "t.csv", GENERIC_HEADER + "".join(rows))
    with pytest.raises(TraceError) as caught:
        load_trace(path, chunk_bytes=chunk_bytes)
    assert caught.value.line == 42  # header + 40 good rows
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}:42: ")


def test_a_bad_parquet_row_is_reported_by_row_number(tmp_path: Path) -> None:
    table = pa.table(
        {
            "arrival_s": [0.0, 1.0, 2.0, 3.0],
            "model": ["a", "a", "b", "a"],
            "input_tokens": [1, 2, -3, 4],
            "output_tokens": [1, 1, 1, 1],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(TraceError) as caught:
        load_trace(tmp_path / "t.parquet")
    assert caught.value.line == 3
    assert "row 3: input_tokens: must be between 0" in str(caught.value)
