"""The simulation report: report.json (numbers), report.md (summary) and report.html (charts).

``write_report(result, out_dir)`` renders all three in memory first, then writes them into a
temporary directory next to ``out_dir`` and moves each finished file into place, so an error
leaves no half-written report behind.
"""

from __future__ import annotations

from simulator.report.summary import (
    TIME_BASED_KINDS,
    baselines,
    report_document,
    savings_pct,
    savings_table,
)
from simulator.report.write import REPORT_FILES, write_report

__all__ = [
    "REPORT_FILES",
    "TIME_BASED_KINDS",
    "baselines",
    "report_document",
    "savings_pct",
    "savings_table",
    "write_report",
]
