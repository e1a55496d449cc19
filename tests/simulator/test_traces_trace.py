"""The trace container: built sorted, stably."""

from __future__ import annotations

from tests.simulator.trace_support import small_trace


def test_build_trace_sorts_stably() -> None:
    built = small_trace([3.0, 1.0, 1.0, 2.0], [0, 1, 0, 1], ("a", "b"))
    assert list(built.arrival_s) == [1.0, 1.0, 2.0, 3.0]
    assert list(built.input_tokens) == [11, 12, 13, 10]
