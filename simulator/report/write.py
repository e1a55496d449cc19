"""Writing the report files: render everything, then move complete files into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from simulator.report.markdown import render_markdown
from simulator.report.page import render_html
from simulator.report.summary import report_document
from simulator.results import SimulationResult

REPORT_FILES = ("report.json", "report.md", "report.html")


def render_all(result: SimulationResult) -> dict[str, str]:
    """File name -> complete text, for every report file."""
    document = json.dumps(report_document(result), indent=2, allow_nan=False) + "\n"
    return {
        "report.json": document,
        "report.md": render_markdown(result),
        "report.html": render_html(result),
    }


def write_report(result: SimulationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out_dir`` (created if missing).

    Rendering happens first; the files are then written to a temporary directory beside
    ``out_dir`` and each is moved into place with an atomic rename. Returns file name -> path."""
    out = Path(out_dir)
    texts = render_all(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, text in texts.items():
            (staging / name).write_text(text, "utf-8")
        out.mkdir(exist_ok=True)
        paths = {}
        for name in texts:
            os.replace(staging / name, out / name)
            paths[name] = out / name
        return paths
    finally:
        shutil.rmtree(staging, ignore_errors=True)
