"""The simulation report: report.json (numbers), report.md (summary) and report.html (charts).

``write_report(result, out_dir)`` renders all three in memory first, then writes them into a
temporary directory next to ``out_dir`` and moves each finished file into place, so an error
leaves no half-written report behind.
"""

from __future__ import annotations

from simulator.report.summary import report_document
from simulator.report.write import REPORT_FILES, write_report

__all__ = ["REPORT_FILES", "report_document", "write_report"]
