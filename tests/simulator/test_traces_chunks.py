"""Reading a text trace in blocks: the block size never changes the trace, and the first bad
line is found wherever the blocks fall."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.traces import Trace, TraceError, load_trace
from tests.simulator.trace_support import GENERIC_HEADER, GOOD_ROW, write_file


@pytest.mark.parametrize("bad_line", [2, 1234, 2999, 3001])
def test_a_bad_row_deep_in_a_large_block_is_found(tmp_path: Path, bad_line: int) -> None:
    rows = [f"{i}.5,m{i % 3},{i % 50},{i % 70}\n" for i in range(3000)]
    rows[bad_line - 2] = "1.0,m,10,20,surplus\n"
    path = write_file(tmp_path / "t.csv", GENERIC_HEADER + "".join(rows))
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == bad_line
    assert "expected 4 fields" in caught.value.problem


def test_a_bad_line_deep_in_a_large_jsonl_block_is_found(tmp_path: Path) -> None:
    good = '{"timestamp": 5, "input_length": 1, "output_length": 2}\n'
    path = write_file(tmp_path / "m.jsonl", good * 1776 + '{"timestamp": 5}\n' + good * 900)
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == 1777


def _numbered_rows(n: int) -> list[str]:
    return [f"{i * 0.37:.2f},m{i % 4},{(i * 7) % 500},{(i * 13) % 300}\n" for i in range(n)]


@settings(max_examples=20, deadline=None)
@given(chunk_bytes=st.integers(min_value=1, max_value=4000))
def test_chunking_never_changes_the_trace(chunk_bytes: int) -> None:
    text = GENERIC_HEADER + "".join(_numbered_rows(150))
    whole = _load_text(text, 1 << 24)
    chunked = _load_text(text, chunk_bytes)
    assert chunked.models == whole.models
    np.testing.assert_array_equal(chunked.arrival_s, whole.arrival_s)
    np.testing.assert_array_equal(chunked.model, whole.model)
    np.testing.assert_array_equal(chunked.input_tokens, whole.input_tokens)


@settings(max_examples=20, deadline=None)
@given(
    chunk_bytes=st.integers(min_value=1, max_value=4000),
    bad=st.integers(min_value=0, max_value=149),
    later=st.integers(min_value=1, max_value=50),
)
def test_the_first_bad_line_is_found_whatever_the_chunking(
    chunk_bytes: int, bad: int, later: int
) -> None:
    rows = _numbered_rows(150)
    rows[bad] = "1.0,m,-5,1\n"
    if bad + later < len(rows):
        rows[bad + later] = "1.0,m\n"  # a second, later problem of another kind
    with pytest.raises(TraceError) as caught:
        _load_text(GENERIC_HEADER + "".join(rows), chunk_bytes)
    assert caught.value.line == bad + 2


def _load_text(text: str, chunk_bytes: int) -> Trace:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(text)
        return load_trace(path, chunk_bytes=chunk_bytes)


def test_the_first_of_several_bad_rows_is_reported(tmp_path: Path) -> None:
    # A bad value on line 5 and a short row on line 7 in the same block: line 5 comes first,
    # although the CSV parser meets the short row before converting values.
    rows = [GOOD_ROW] * 3 + ["1.0,m,bad,20\n", GOOD_ROW, "1.0,m\n", GOOD_ROW]
    path = write_file(tmp_path / "t.csv", GENERIC_HEADER + "".join(rows))
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == 5
