"""What ``depthscale tune`` writes: the frontier as a table and a chart (report.html,
report.json), and the recommended setting three ways: the ScaledObject trigger metadata
(scaledobject-metadata.yaml), the models-file ``policy:`` blocks (policy.yaml) and the whole
models file with them (models.yaml), which ``depthscale render`` deploys and ``depthscale
simulate`` scores as the tuner did."""

from __future__ import annotations

import enum
import json
import math
import os
import tempfile
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import yaml

from simulator.manifests import RenderOptions
from simulator.manifests.models import scaled_object
from simulator.report.figures import _STYLE, _svg
from simulator.results import savings_pct
from simulator.scenario import PolicyThresholds, Scenario, dump_scenario
from simulator.tune import Candidate, Outcome, Score, apply, space, tuned_entry

SETTING_FILES = ("models.yaml", "policy.yaml", "scaledobject-metadata.yaml")
REPORT_FILES = ("report.html", "report.json")

_SHORT = {
    "replicaConcurrency": "concurrency",
    "scaleUpPending": "up pending",
    "stabilizationWindowSeconds": "window s",
    "lookaheadSeconds": "lookahead s",
    "growthWindowSeconds": "growth s",
    "bufferReplicas": "buffer",
    "scaleUpFactor": "up factor",
    "headroom": "headroom",
    "seasonalFraction": "seasonal",
}


def settings(scenario: Scenario, candidate: Candidate) -> dict[str, Any]:
    """The searched keys' values as the first model runs them (the scenario's own setting
    included, with its preset's defaults filled in)."""
    model = next(iter(apply(scenario, candidate).models.values()))
    config = model.policy.to_policy_config()
    by_alias = {f.alias or n: n for n, f in PolicyThresholds.model_fields.items()}
    out: dict[str, Any] = {}
    for knob in space():
        value = getattr(config, by_alias[knob.key], None)
        out[knob.key] = value.value if isinstance(value, enum.Enum) else value
    return out


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _usd(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else "n/a"


def _wait(value: float) -> str:
    return f"{value:,.1f}" if math.isfinite(value) else "n/a"


def frontier_rows(outcome: Outcome, scenario: Scenario) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the frontier table, cheapest first; the chosen and the scenario's own
    setting are marked in the first column."""
    keys = [k.key for k in space()]
    headers = [
        "setting",
        "cost (USD)",
        "× ideal",
        "SLO met",
        "p95 wait (s)",
        "node launches (/model-h)",
        *[_SHORT.get(k, k) for k in keys],
    ]
    rows = []
    shown = list(outcome.frontier)
    own = next((s for s in outcome.full if s.index == 0), None)
    if own is not None and own not in shown:
        shown.append(own)
    for score in shown:
        mark = f"#{score.index}"
        if outcome.chosen is not None and score.index == outcome.chosen.index:
            mark += " chosen"
        if score.index == 0:
            mark += " (as configured)"
        values = settings(scenario, outcome.candidate(score.index))
        times = score.times_ideal
        rows.append(
            [
                mark,
                _usd(score.cost_usd),
                "n/a" if times is None else f"{times:.2f}×",
                f"{100 * score.attainment:.2f}%",
                _wait(score.p95_wait_s),
                f"{score.node_launches:,} ({score.launch_rate:.2f})",
                *[_num(values[k]) for k in keys],
            ]
        )
    return headers, rows


def chosen_sentence(outcome: Outcome, scenario: Scenario) -> str:
    """One line: the cheapest setting meeting the target, or that none does."""
    target = (
        f"{100 * scenario.slo_attainment:g}% of every model's requests waiting ≤ "
        f"{scenario.slo_wait_s:g} s"
    )
    if outcome.max_launch_rate is not None:
        target += f" with ≤ {outcome.max_launch_rate:g} GPU node launches per model-hour"
    best = outcome.chosen
    if best is None:
        tried = len(outcome.full)
        return f"no setting of the {tried} scored on the whole trace meets {target}"
    times = best.times_ideal
    line = (
        f"cheapest setting meeting {target}: #{best.index}, cost ${_usd(best.cost_usd)}"
        + ("" if times is None else f" ({times:.2f}× the fluid ideal)")
        + f", SLO met by {100 * best.attainment:.2f}%, p95 wait {_wait(best.p95_wait_s)} s"
    )
    own = next((s for s in outcome.full if s.index == 0), None)
    saving = None if own is None else savings_pct(best.cost_usd, own.cost_usd)
    if own is not None and best.index != 0 and saving is not None:
        line += (
            f"; as configured: ${_usd(own.cost_usd)}, {100 * own.attainment:.2f}% "
            f"({saving:.1f}% saved)"
        )
    return line


# --- the recommended setting as files -----------------------------------------------------------


def tuned_scenario(outcome: Outcome, scenario: Scenario) -> Scenario | None:
    return (
        None if outcome.chosen is None else apply(scenario, outcome.candidate(outcome.chosen.index))
    )


def setting_texts(tuned: Scenario, source: str) -> dict[str, str]:
    """models.yaml, policy.yaml and scaledobject-metadata.yaml for the tuned scenario."""
    head = f"# Generated by `depthscale tune` from {source}.\n"
    blocks = {
        name: {"policy": model.policy.model_dump(mode="json", by_alias=True, exclude_none=True)}
        for name, model in tuned.models.items()
    }
    options = RenderOptions()
    metadata = {
        name: scaled_object(model, tuned, options)["spec"]["triggers"][0]["metadata"]
        for name, model in tuned.models.items()
    }
    return {
        "models.yaml": head
        + f"# `depthscale render` deploys it; `depthscale simulate TRACE --scenario models.yaml "
        f"--policies {tuned_entry(tuned).name}` scores it as the tuner did.\n"
        + dump_scenario(tuned),
        "policy.yaml": head
        + "# Each model's `policy:` block for a models file.\n"
        + yaml.safe_dump({"models": blocks}, sort_keys=False),
        "scaledobject-metadata.yaml": head
        + "# Each model's ScaledObject trigger metadata (spec.triggers[0].metadata, type "
        "external), as `depthscale render` writes it with its default --broker and "
        "--scaler-address.\n" + yaml.safe_dump(metadata, sort_keys=False),
    }


# --- report.json and report.html -----------------------------------------------------------------


def _score_json(score: Score, scenario: Scenario, outcome: Outcome) -> dict[str, Any]:
    return {
        "index": score.index,
        "settings": settings(scenario, outcome.candidate(score.index)),
        "cost_usd": score.cost_usd,
        "cost_vs_ideal": score.times_ideal,
        "slo_attainment": score.attainment,
        "p95_wait_s": score.p95_wait_s if math.isfinite(score.p95_wait_s) else None,
        "node_launches": score.node_launches,
        "node_launches_per_model_hour": score.launch_rate,
        "scale_events": score.scale_events,
        "meets_target": score.meets,
    }


def report_document(
    outcome: Outcome, scenario: Scenario, trace: str, budget: int, took_s: float
) -> dict[str, Any]:
    """report.json: the target, the search, every whole-trace score, the frontier, the choice."""
    return {
        "trace": trace,
        "slo_wait_s": scenario.slo_wait_s,
        "slo_attainment": scenario.slo_attainment,
        "max_node_launches_per_model_hour": outcome.max_launch_rate,
        "seed": scenario.seed,
        "budget": budget,
        "wall_s": took_s,
        "space": [{"key": k.key, "values": list(k.values), "meaning": k.meaning} for k in space()],
        "rungs": [{"horizon_s": h, "candidates": n} for h, n in outcome.rungs],
        "scored": [_score_json(s, scenario, outcome) for s in outcome.full],
        "frontier": [s.index for s in outcome.frontier],
        "chosen": None
        if outcome.chosen is None
        else _score_json(outcome.chosen, scenario, outcome),
        "summary": chosen_sentence(outcome, scenario),
    }


def frontier_figure(outcome: Outcome, scenario: Scenario) -> str:
    """Two panels as inline SVG: cost against SLO attainment, and against p95 wait. Grey: every
    whole-trace score; blue: the frontier; red star: the chosen setting; black diamond: the
    scenario's own."""
    import matplotlib.pyplot as plt  # Agg: the figures module chose it on import

    def panel(ax: Any, x_of: Any, xlabel: str, target: float | None) -> None:
        xs = [x_of(s) for s in outcome.full]
        ax.scatter(xs, [s.cost_usd for s in outcome.full], s=14, color="#b0b4ba", label="scored")
        front = sorted(outcome.frontier, key=x_of)
        ax.plot(
            [x_of(s) for s in front],
            [s.cost_usd for s in front],
            "o-",
            color="#1f6feb",
            markersize=4,
            label="frontier",
        )
        own = [s for s in outcome.full if s.index == 0]
        if own:
            ax.scatter(
                [x_of(own[0])],
                [own[0].cost_usd],
                marker="D",
                color="black",
                s=36,
                label="as configured",
                zorder=3,
            )
        if outcome.chosen is not None:
            ax.scatter(
                [x_of(outcome.chosen)],
                [outcome.chosen.cost_usd],
                marker="*",
                color="#d1242f",
                s=140,
                label="chosen",
                zorder=4,
            )
        if target is not None:
            ax.axvline(target, color="#d1242f", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cost (USD)")

    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        panel(
            axes[0],
            lambda s: 100 * s.attainment,
            f"requests waiting ≤ {scenario.slo_wait_s:g} s (%, worst model)",
            100 * scenario.slo_attainment,
        )
        panel(
            axes[1],
            lambda s: s.p95_wait_s if math.isfinite(s.p95_wait_s) else float("nan"),
            "p95 queue wait (s)",
            scenario.slo_wait_s,
        )
        low, _ = axes[0].get_xlim()
        axes[0].set_xlim(min(low, 100 * scenario.slo_attainment - 0.5), 100.2)  # none above 100%
        axes[0].legend(loc="best", fontsize=8)
        return _svg(fig)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    outcome: Outcome, scenario: Scenario, trace: str, texts: dict[str, str], took_s: float
) -> str:
    """report.html: self-contained (inline CSS and SVG, no scripts)."""
    from simulator.report.page import _CSS

    headers, rows = frontier_rows(outcome, scenario)
    searched = "".join(
        f"<li><code>{escape(k.key)}</code>: {escape(', '.join(f'{v:g}' for v in k.values))}"
        f" ({escape(k.meaning)})</li>"
        for k in space()
    )
    rungs = ", ".join(f"{n} on the first {h / 3600:,.1f} h" for h, n in outcome.rungs)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>depthscale tuning report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>depthscale tuning report</h1>",
        f'<p class="verdict">{escape(chosen_sentence(outcome, scenario))}</p>',
        f'<p class="meta">Trace: {escape(trace)}<br>Seed {scenario.seed}; '
        f"{len(outcome.candidates)} settings sampled, scored by successive halving ({rungs}); "
        f"{took_s:,.0f} s.</p>",
        "<h2>Cost versus SLO: the frontier</h2>",
        "<p>Settings no other whole-trace score beats on cost, attainment and p95 wait at once, "
        "cheapest first. SLO met: the worst model's share of requests waiting within the SLO.</p>",
        _table(headers, rows),
        '<div class="figure">',
        frontier_figure(outcome, scenario),
        "</div>",
    ]
    if "policy.yaml" in texts:
        parts += [
            "<h2>The chosen setting</h2>",
            "<p>As a models-file <code>policy:</code> block (policy.yaml; the whole models file "
            "is models.yaml):</p>",
            f"<pre>{escape(texts['policy.yaml'])}</pre>",
            "<p>As ScaledObject trigger metadata (scaledobject-metadata.yaml):</p>",
            f"<pre>{escape(texts['scaledobject-metadata.yaml'])}</pre>",
        ]
    parts += ["<h2>What was searched</h2>", f"<ul>{searched}</ul>", "</body></html>"]
    return "\n".join(parts) + "\n"


def write_files(texts: dict[str, str], out: Path) -> None:
    """Write each file into ``out`` (created) through a temporary file and a rename; stale
    setting files of an earlier run are removed when this run has none."""
    out.mkdir(parents=True, exist_ok=True)
    for name in SETTING_FILES:
        if name not in texts and (out / name).exists():
            (out / name).unlink()
    for name, text in texts.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=out)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, out / name)


def all_texts(
    outcome: Outcome, scenario: Scenario, trace: str, source: str, budget: int, took_s: float
) -> dict[str, str]:
    """Every file of the run, rendered: the setting files (when a setting meets the target)
    and the report."""
    tuned = tuned_scenario(outcome, scenario)
    texts = {} if tuned is None else setting_texts(tuned, source)
    document = report_document(outcome, scenario, trace, budget, took_s)
    texts["report.json"] = json.dumps(document, indent=2, allow_nan=False) + "\n"
    texts["report.html"] = render_html(outcome, scenario, trace, texts, took_s)
    return texts
