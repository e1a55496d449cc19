"""report.md: the summary table, savings against time-based scaling, per-model tables and the
assumptions, in GitHub-flavoured Markdown."""

from __future__ import annotations

from simulator.report.summary import models_of
from simulator.report.text import (
    HOW_TO_READ,
    Table,
    ideal_sentences,
    model_table,
    savings_sentences,
    span,
    summary_table,
)
from simulator.report.verdict import misses, online_lines, verdict
from simulator.results import SimulationResult


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def _table(table: Table) -> list[str]:
    headers, rows = table
    right = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(_escape(h) for h in headers) + " |", "| " + " | ".join(right) + " |"]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(result: SimulationResult) -> str:
    lines = [
        "# depthscale simulation report",
        "",
        f"**{verdict(result)}**",
        "",
        *(f"- **SLO missed.** {line}" for line in misses(result)),
        *(f"- **Online.** {line}" for line in online_lines(result)),
        *(f"- **Warning.** {line}" for line in result.warnings),
        *([""] if misses(result) or online_lines(result) or result.warnings else []),
        f"- Trace: {result.trace}",
        f"- Simulated: {span(result.duration_s)} ({result.duration_s:,.0f} s), seed {result.seed}",
        f"- Queue-wait SLO: {result.slo_wait_s:g} s for at least "
        f"{100 * result.slo_attainment:g}% of every model's requests",
        "",
        "## Policies compared",
        "",
        *_table(summary_table(result)),
        "",
        *(f"{line}\n" for line in ideal_sentences(result)),
        "## Savings versus time-based scaling",
        "",
        *(f"- {line}" for line in savings_sentences(result)),
        "",
    ]
    for model in models_of(result.policies):
        lines += [f"## Model {model}", "", *_table(model_table(result, model)), ""]
    lines += ["## How to read this", "", *(f"- {line}" for line in HOW_TO_READ), ""]
    lines += ["## Assumptions", ""]
    lines += [f"- {a}" for a in result.assumptions] or ["- (none recorded)"]
    return "\n".join(lines) + "\n"
