"""report.html: one self-contained page (inline CSS and SVG, no scripts, no external resources)
that works offline."""

from __future__ import annotations

from html import escape

from simulator.report.figures import cost_wait_figure, policy_figure
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
from simulator.report.verdict import ideal_total, misses, online_lines, verdict
from simulator.results import SimulationResult

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24;
       max-width: 1200px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 12px; margin: .6em 0; display: block;
        overflow-x: auto; }
th, td { padding: 4px 6px; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; font-weight: 600; }
th { background: #f4f5f7; white-space: normal; vertical-align: bottom; }
.meta { color: #555; } .figure svg { max-width: 100%; height: auto; }
.savings li { margin: .3em 0; }
.verdict { font-size: 1.1em; font-weight: 600; margin: .6em 0; }
.miss { color: #a40e26; } .warning { color: #7a4d00; }
"""


def _table(table: Table) -> str:
    headers, rows = table
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _items(lines: list[str], css_class: str = "") -> str:
    attr = f' class="{css_class}"' if css_class else ""
    return f"<ul{attr}>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def _flagged(lines: list[str], css_class: str, label: str) -> str:
    """A list of flagged sentences (SLO misses, warnings); nothing when there are none."""
    if not lines:
        return ""
    items = "".join(f"<li><strong>{label}</strong> {escape(line)}</li>" for line in lines)
    return f'<ul class="{css_class}">{items}</ul>'


def render_html(result: SimulationResult) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>depthscale simulation report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>depthscale simulation report</h1>",
        f'<p class="verdict">{escape(verdict(result))}</p>',
        _flagged(misses(result), "miss", "SLO missed."),
        _flagged(online_lines(result), "online", "Online."),
        _flagged(result.warnings, "warning", "Warning."),
        f'<p class="meta">Trace: {escape(result.trace)}<br>'
        f"Simulated {escape(span(result.duration_s))} ({result.duration_s:,.0f} s), "
        f"seed {result.seed}, queue-wait SLO {result.slo_wait_s:g} s for at least "
        f"{100 * result.slo_attainment:g}% of every model's requests.</p>",
        "<h2>Policies compared</h2>",
        _table(summary_table(result)),
        "".join(f"<p>{escape(line)}</p>" for line in ideal_sentences(result)),
        "<h2>Savings versus time-based scaling</h2>",
        _items(savings_sentences(result), "savings"),
        '<div class="figure">',
        cost_wait_figure(result.policies, result.slo_wait_s, ideal_total(result)),
        "</div>",
        "<h2>How to read this</h2>",
        _items(HOW_TO_READ),
    ]
    for model in models_of(result.policies):
        parts += [f"<h2>Model {escape(model)}</h2>", _table(model_table(result, model))]
    parts.append("<h2>Over time, per policy</h2>")
    parts.append(
        "<p>Arrival rate, queue depth, replicas (dashed: desired by the HPA, solid: ready) and "
        "GPU nodes, one line per model.</p>"
    )
    for policy in result.policies:
        parts += [
            f'<h3 id="policy-{escape(policy.name)}">{escape(policy.name)}</h3>',
            '<div class="figure">',
            policy_figure(policy, result.duration_s),
            "</div>",
        ]
    parts += ["<h2>Assumptions</h2>", _items(list(result.assumptions) or ["(none recorded)"])]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
