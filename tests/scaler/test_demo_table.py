"""The demo's live table in an 80-column terminal: every cell whole, nothing cut."""

from __future__ import annotations

import pytest
from rich.console import Console

from policies.types import Reason
from scaler.demo import MODELS, DemoOptions, Row, _LiveTable, _plain_line

DETAIL = (
    "559 pending on 4 replicas (0 still warming up) = 139.8/replica > 50: scale up to 12; "
    "scale-up capped at 8 this step: at most 2× the 4 serving replicas, or 4 more, until those "
    "requested are serving"
)
REASONS = [r.value for r in Reason] + ["error UNAVAILABLE", "error DEADLINE_EXCEEDED"]


def widest_rows(reason: str) -> list[Row]:
    """One row per demo model with the widest numbers the demo reaches (100 replicas, a
    five-digit backlog, two minutes in); a failed poll has no depth, metric or activity."""
    if reason.startswith("error"):
        return [Row(125.5, m.name, None, 100, 100, None, None, 100, reason, "") for m in MODELS]
    return [Row(125.5, m.name, 12_345, 100, 100, 100.0, True, 100, reason, DETAIL) for m in MODELS]


@pytest.mark.parametrize("reason", REASONS)
def test_the_live_table_fits_80_columns(reason: str) -> None:
    view = _LiveTable(DemoOptions())
    console = Console(width=80, record=True, color_system=None)
    console.print(view.update(widest_rows(reason)))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert not any("…" in line for line in lines)
    for model in MODELS:
        row = next(line for line in lines if line.startswith(model.name))
        # Each cell on the model's line, whole: name, backlog, counts, KEDA's view, reason.
        seen = ["-", "100", "100", "-"] if reason.startswith("error") else [
            "12345", "100", "100", "100,", "active"]  # fmt: skip
        assert row.split() == [model.name, *seen, "100", *reason.split()]


def test_the_plain_line_says_starting_for_replicas_not_yet_serving() -> None:
    # "warming" is the policy's word inside its sentence; the simulated Deployment's replicas
    # that are not serving yet have their own name, so one line never uses the word twice.
    row = Row(12.4, "llama-3-8b", 559, 4, 4, 8.0, True, 8, "scale-up", DETAIL)
    line = _plain_line(row)
    assert "ready= 4 starting= 4" in line
    assert line.count("warming") == DETAIL.count("warming")
