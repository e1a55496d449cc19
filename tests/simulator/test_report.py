"""The report: report.json's schema and numbers, savings arithmetic, report.md's table, and a
self-contained report.html, from hand-made results with known figures."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.report import REPORT_FILES, write_report
from simulator.report.figures import MAX_POINTS, reduce
from simulator.results import PolicyResult, Series, SimulationResult, Totals, WaitStats, savings_pct

STEP_S = 60.0
POINTS = 2000  # more than the figures plot, so the reduction runs


def totals(cost: float, *, p95: float = 10.0, requests: int = 1000, unserved: int = 0) -> Totals:
    return Totals(
        cost_usd=cost,
        gpu_hours=cost / 2.5,
        node_hours=cost / 20.0,
        utilization=0.42,
        wait_s=WaitStats(mean=p95 / 4, p50=p95 / 5, p95=p95, p99=p95 * 2, max=p95 * 3),
        slo_attainment=0.97,
        requests=requests,
        served=requests - unserved,
        unserved=unserved,
        scale_events=7,
        node_launches=3,
    )


def series(level: float) -> Series:
    t = np.arange(POINTS) * STEP_S
    wave = level * (1 + np.sin(t / 3600.0))
    return Series(
        t_s=t,
        arrival_rps=wave,
        queue_depth=wave * 3,
        replicas_desired=np.ceil(wave),
        replicas_ready=np.floor(wave),
        nodes=np.ceil(wave / 8),
    )


def policy(name: str, kind: str, cost_a: float, cost_b: float, p95: float) -> PolicyResult:
    return PolicyResult(
        name=name,
        kind=kind,
        total=totals(cost_a + cost_b, p95=p95, requests=2000),
        per_model={"model-a": totals(cost_a, p95=p95), "model-b": totals(cost_b, p95=p95)},
        series={"model-a": series(4.0), "model-b": series(1.0)},
        reasons={"schedule": 3} if "schedule" in kind else {"scale-up": 2, "hold": 5},
    )


def result() -> SimulationResult:
    return SimulationResult(
        trace="sample.csv (generic, 2,000 requests, 2 models)",
        duration_s=POINTS * STEP_S,
        seed=7,
        slo_wait_s=30.0,
        step_s=STEP_S,
        policies=[
            policy("depthscale", "depthscale", 20.0, 15.0, p95=12.0),
            policy("business-hours", "schedule", 60.0, 40.0, p95=3.0),
            policy("hindsight", "hindsight-schedule", 30.0, 20.0, p95=40.0),
            policy("static-peak", "static-peak", 70.0, 50.0, p95=1.0),
        ],
        assumptions=["GPU: A100 40GB on p4d.24xlarge at $21.96/h on-demand (AWS us-east-1)"],
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "report"
    write_report(result(), out)
    return out


def test_all_three_files_written(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == sorted(REPORT_FILES)
    # No staging directory is left next to the report.
    assert [p.name for p in written.parent.iterdir()] == ["report"]


def test_json_has_every_figure_per_policy_and_model(written: Path) -> None:
    doc = json.loads((written / "report.json").read_text())
    assert doc["seed"] == 7
    assert doc["trace"].startswith("sample.csv")
    assert doc["slo_wait_s"] == 30.0
    assert doc["baselines"] == ["business-hours", "hindsight"]
    assert list(doc["policies"]) == ["depthscale", "business-hours", "hindsight", "static-peak"]
    assert doc["assumptions"] == [
        "GPU: A100 40GB on p4d.24xlarge at $21.96/h on-demand (AWS us-east-1)"
    ]
    figures = {
        "cost_usd", "gpu_hours", "node_hours", "utilization", "wait_s", "slo_attainment",
        "requests", "served", "unserved", "scale_events", "node_launches", "savings_pct",
    }  # fmt: skip
    for name, entry in doc["policies"].items():
        assert figures <= set(entry), name
        assert set(entry["wait_s"]) == {"mean", "p50", "p95", "p99", "max"}
        assert set(entry["models"]) == {"model-a", "model-b"}
        for model in entry["models"].values():
            assert figures <= set(model)
    depthscale = doc["policies"]["depthscale"]
    assert depthscale["kind"] == "depthscale"
    assert depthscale["cost_usd"] == 35.0
    assert depthscale["gpu_hours"] == 14.0  # 35 / 2.5
    assert depthscale["wait_s"] == {"mean": 3.0, "p50": 2.4, "p95": 12.0, "p99": 24.0, "max": 36.0}
    assert depthscale["requests"] == 2000
    assert depthscale["reasons"] == {"hold": 5, "scale-up": 2}
    assert depthscale["models"]["model-b"]["cost_usd"] == 15.0
    assert doc["policies"]["hindsight"]["kind"] == "hindsight-schedule"


def test_savings_against_each_time_based_baseline(written: Path) -> None:
    doc = json.loads((written / "report.json").read_text())
    savings = {name: entry["savings_pct"] for name, entry in doc["policies"].items()}
    # Totals: depthscale 35, business-hours 100, hindsight 50, static-peak 120 USD.
    assert savings["depthscale"]["business-hours"] == pytest.approx(65.0)  # (100-35)/100
    assert savings["depthscale"]["hindsight"] == pytest.approx(30.0)  # (50-35)/50
    assert savings["static-peak"]["business-hours"] == pytest.approx(-20.0)  # (100-120)/100
    assert savings["static-peak"]["hindsight"] == pytest.approx(-140.0)  # (50-120)/50
    assert savings["hindsight"]["business-hours"] == pytest.approx(50.0)
    assert savings["business-hours"]["hindsight"] == pytest.approx(-100.0)
    assert savings["business-hours"]["business-hours"] == 0.0
    # Per model: model-a depthscale 20 vs business-hours 60, model-b 15 vs 40.
    models = doc["policies"]["depthscale"]["models"]
    assert models["model-a"]["savings_pct"]["business-hours"] == pytest.approx(200 / 3)
    assert models["model-b"]["savings_pct"]["business-hours"] == pytest.approx(62.5)
    assert models["model-b"]["savings_pct"]["hindsight"] == pytest.approx(25.0)  # (20-15)/20


def test_savings_of_a_free_baseline_is_null() -> None:
    assert savings_pct(10.0, 0.0) is None
    assert savings_pct(0.0, 10.0) == 100.0
    assert savings_pct(15.0, 10.0) == pytest.approx(-50.0)


def test_unknown_waits_are_null_not_nan(tmp_path: Path) -> None:
    # A model that served nothing has no wait statistics: JSON gets null, never NaN.
    base = result()
    nan = WaitStats(math.nan, math.nan, math.nan, math.nan, math.nan)
    idle = replace(totals(0.0, requests=5, unserved=5), wait_s=nan, utilization=math.nan)
    first = base.policies[0]
    base.policies[0] = replace(first, per_model={**first.per_model, "model-b": idle})
    write_report(base, tmp_path / "out")
    text = (tmp_path / "out" / "report.json").read_text()
    assert "NaN" not in text
    model_b = json.loads(text)["policies"]["depthscale"]["models"]["model-b"]
    assert model_b["wait_s"]["p95"] is None
    assert model_b["utilization"] is None
    assert model_b["unserved"] == 5
    assert "n/a" in (tmp_path / "out" / "report.md").read_text()


def test_markdown_has_the_summary_table(written: Path) -> None:
    md = (written / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| policy | cost |"))
    assert header.endswith("| saves vs business-hours | saves vs hindsight |")
    row = next(line for line in md.splitlines() if line.startswith("| depthscale |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["depthscale", "$35.00"]
    assert cells[-2:] == ["65.0%", "30.0%"]
    static_row = next(line for line in md.splitlines() if line.startswith("| static-peak |"))
    assert static_row.rstrip().endswith("| −20.0% | −140.0% |")
    assert "65.0% less than business-hours ($100.00)" in md
    assert "## Assumptions" in md
    assert "p4d.24xlarge at $21.96/h" in md


def test_html_is_self_contained_with_inline_svg(written: Path) -> None:
    html = (written / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    # One cost-versus-wait chart and one over-time figure per policy, all inline.
    assert html.count("<svg") == 1 + 4
    for forbidden in ("<script", "<link", "<img", "@import", "<iframe"):
        assert forbidden not in html.lower(), forbidden
    # SVG namespace declarations are identifiers, not fetched; nothing else may point off-page.
    fetched = re.findall(r"""(?:src|href)\s*=\s*["']?(?!#)([^"'\s>]+)""", html)
    assert fetched == []
    assert "url(http" not in html
    assert "How to read this" in html
    for name in ("depthscale", "business-hours", "hindsight", "static-peak"):
        assert f'id="policy-{name}"' in html


def test_same_result_same_bytes(tmp_path: Path) -> None:
    write_report(result(), tmp_path / "one")
    write_report(result(), tmp_path / "two")
    for name in REPORT_FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_failed_render_leaves_previous_report_untouched(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(result(), out)
    before = {name: (out / name).read_bytes() for name in REPORT_FILES}
    broken = result()
    bad_series = replace(series(1.0), nodes=np.zeros(3))  # lengths disagree: plotting fails
    first = broken.policies[-1]
    broken.policies[-1] = replace(first, series={"model-a": bad_series})
    with pytest.raises(ValueError, match="static-peak/model-a: nodes has 3 samples"):
        write_report(broken, out)
    assert {name: (out / name).read_bytes() for name in REPORT_FILES} == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_failed_render_creates_nothing(tmp_path: Path) -> None:
    broken = result()
    bad_series = replace(series(1.0), queue_depth=np.zeros(5))
    broken.policies[0] = replace(broken.policies[0], series={"model-b": bad_series})
    with pytest.raises(ValueError, match="depthscale/model-b: queue_depth has 5 samples"):
        write_report(broken, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_chart_reduction_keeps_bursts_and_means() -> None:
    # 2,400 one-minute samples: a single one-sample burst of 500 must survive the reduction to
    # at most MAX_POINTS points when counts reduce by maximum; rates reduce by mean.
    t = np.arange(2400) * 60.0
    depth = np.zeros(2400)
    depth[1001] = 500.0
    kept_t, kept = reduce(t, depth, "max")
    assert len(kept) <= MAX_POINTS
    assert kept.max() == 500.0
    rate = np.tile([1.0, 3.0], 1200)  # mean 2 over every pair
    _, mean = reduce(t, rate, "mean")
    assert np.allclose(mean, 2.0)
    assert kept_t[0] == 0.0
    assert kept_t[1] == 120.0  # buckets of two samples


def test_markdown_has_a_table_per_model(written: Path) -> None:
    md = (written / "report.md").read_text()
    for model, cost in (("model-a", "$20.00"), ("model-b", "$15.00")):
        section = md.split(f"## Model {model}\n", 1)[1].split("\n## ", 1)[0]
        row = next(line for line in section.splitlines() if line.startswith("| depthscale |"))
        assert row.split("|")[2].strip() == cost


# -- the verdict, the fluid ideal and the chart's labels ------------------------------------------


def graded(name: str, kind: str, cost: float, p95: float, attainment: float) -> PolicyResult:
    """A one-model policy result with the given cost, p95 wait and SLO attainment."""
    figures = replace(totals(cost, p95=p95), slo_attainment=attainment)
    return PolicyResult(
        name=name, kind=kind, total=figures, per_model={"m": figures}, series={"m": series(1.0)}
    )


def verdict_run(*policies: PolicyResult, warnings: list[str] | None = None) -> SimulationResult:
    return SimulationResult(
        trace="t.csv",
        duration_s=POINTS * STEP_S,
        seed=0,
        slo_wait_s=30.0,
        step_s=STEP_S,
        policies=list(policies),
        slo_attainment=0.99,
        ideal_cost_usd={"m": 20.0},
        warnings=warnings or [],
    )


def test_verdict_names_the_cheapest_policy_meeting_the_slo(tmp_path: Path) -> None:
    run = verdict_run(
        graded("cheap-but-slow", "depthscale", 30.0, p95=95.0, attainment=0.90),
        graded("depthscale", "depthscale", 50.0, p95=4.0, attainment=0.995),
        graded("office-hours", "schedule", 80.0, p95=45.0, attainment=0.93),
        graded("trailing", "trailing-schedule", 100.0, p95=2.0, attainment=0.999),
        graded("static-peak", "static-peak", 120.0, p95=0.0, attainment=1.0),
        warnings=["The trace is short."],
    )
    write_report(run, tmp_path)
    md = (tmp_path / "report.md").read_text().splitlines()
    # The first line after the title is the verdict: depthscale, not the cheaper policy that
    # misses; its savings against both time-based baselines, one of which misses the SLO.
    assert md[2].startswith("**Verdict: depthscale is the cheapest policy that meets the SLO")
    assert "$50.00, 2.50× the fluid ideal" in md[2]
    assert "37.5% less than office-hours ($80.00, which misses the SLO)" in md[2]
    assert "50.0% less than trailing ($100.00)" in md[2]
    flagged = [line for line in md if "SLO missed" in line]
    assert len(flagged) == 2
    assert "cheap-but-slow misses the SLO: p95 wait 95.0 s against the 30 s SLO" in flagged[0]
    assert "90.0% of requests waited ≤ 30 s (target 99%)" in flagged[0]
    assert "office-hours misses the SLO: p95 wait 45.0 s" in flagged[1]
    assert any("Warning." in line and "The trace is short." in line for line in md[:12])

    html = (tmp_path / "report.html").read_text()
    assert html.index("Verdict: depthscale") < html.index("<h2>")
    assert html.index("cheap-but-slow misses the SLO") < html.index("<h2>")

    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["verdict"]["policy"] == "depthscale"
    assert doc["ideal_cost_usd"] == 20.0
    assert doc["warnings"] == ["The trace is short."]
    entry = doc["policies"]["cheap-but-slow"]
    assert (entry["ideal_cost_usd"], entry["cost_vs_ideal"], entry["meets_slo"]) == (
        20.0,
        1.5,
        False,
    )
    assert doc["policies"]["depthscale"]["meets_slo"] is True
    assert doc["policies"]["depthscale"]["models"]["m"]["cost_vs_ideal"] == 2.5


def test_no_policy_meeting_the_slo_is_said_so(tmp_path: Path) -> None:
    run = verdict_run(
        graded("a", "depthscale", 30.0, p95=95.0, attainment=0.90),
        graded("b", "schedule", 80.0, p95=45.0, attainment=0.95),
    )
    write_report(run, tmp_path)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["verdict"]["policy"] is None
    assert doc["verdict"]["lines"][0].startswith("Verdict: no policy meets the SLO")
    assert "Closest: b, 95.0% within the SLO" in doc["verdict"]["lines"][0]


def test_a_model_missing_the_slo_fails_the_policy() -> None:
    from simulator.report.verdict import meets_slo

    good, bad = totals(10.0), replace(totals(10.0), slo_attainment=0.5)
    both = replace(totals(20.0), slo_attainment=0.995)
    policy = PolicyResult("p", "depthscale", both, {"a": good, "b": bad}, {})
    assert not meets_slo(policy, 0.9)
    assert meets_slo(replace(policy, per_model={"a": good, "b": good}), 0.9)


def _label_boxes(policies: list[PolicyResult], ideal: float | None) -> tuple[list[Any], list[Any]]:
    import matplotlib.pyplot as plt

    from simulator.report.figures import _STYLE, MARKER_AREA, cost_wait_plot, text_extent

    with plt.rc_context(_STYLE):
        fig, ax, labels = cost_wait_plot(policies, 30.0, ideal)
        renderer = fig.canvas.get_renderer()
        boxes = [text_extent(label, renderer) for label in labels]
        radius = math.sqrt(MARKER_AREA) / 2 * fig.dpi / 72.0
        dots = []
        for p in policies:
            x, y = ax.transData.transform((p.total.cost_usd, p.total.wait_s.p95))
            dots.append((x - radius, y - radius, x + radius, y + radius))
        plt.close(fig)
    return boxes, dots


def _apart(a: Any, b: Any) -> bool:
    ax0, ay0, ax1, ay1 = (a.x0, a.y0, a.x1, a.y1) if hasattr(a, "x0") else a
    bx0, by0, bx1, by1 = (b.x0, b.y0, b.x1, b.y1) if hasattr(b, "x0") else b
    return bool(ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(1.0, 1.3), st.floats(0.0, 3.0), st.integers(3, 28)),
        min_size=2,
        max_size=9,
    ),
    st.floats(0.5, 400.0),
)
def test_cost_wait_labels_never_overlap(
    points: list[tuple[float, float, int]], scale: float
) -> None:
    # Clustered points (costs within 30%, waits within 3 s) with names up to 28 characters:
    # the worst case for labels. No label's text may overlap another's or any dot.
    policies = [
        graded(f"p{i}-" + "x" * n, "depthscale", cost * scale, p95=wait, attainment=1.0)
        for i, (cost, wait, n) in enumerate(points)
    ]
    boxes, dots = _label_boxes(policies, ideal=scale)
    distinct = {(round(p.total.cost_usd, 2), round(p.total.wait_s.p95, 1)) for p in policies}
    assert len(boxes) == len(distinct)
    for i, box in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert _apart(box, other)
        for dot in dots:
            assert _apart(box, dot)
