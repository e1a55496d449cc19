"""Report figures: matplotlib (Agg backend) rendered to inline SVG text, no external resources.

Long series are reduced to at most ``MAX_POINTS`` points per line before plotting (rates by
bucket mean, counts by bucket maximum, so a short burst still shows), which keeps a week-long
report a few megabytes at most.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np

from simulator.results import FloatArray, PolicyResult, Series

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MAX_POINTS = 1200
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable
    "svg.hashsalt": "depthscale",  # stable element ids: same result, same file
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def reduce(t_s: FloatArray, values: FloatArray, how: str) -> tuple[FloatArray, FloatArray]:
    """At most ``MAX_POINTS`` points: consecutive buckets of equal size, each represented by its
    first time and the ``how`` ("mean" or "max") of its values."""
    n = len(t_s)
    if n <= MAX_POINTS:
        return t_s, values
    size = math.ceil(n / MAX_POINTS)
    pad = (-n) % size
    vals = np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, size)
    reduced = np.nanmean(vals, axis=1) if how == "mean" else np.nanmax(vals, axis=1)
    return t_s[::size], reduced


def _time_axis(duration_s: float) -> tuple[float, str]:
    if duration_s > 3 * 86400:
        return 86400.0, "days from trace start"
    if duration_s > 3 * 3600:
        return 3600.0, "hours from trace start"
    return 60.0, "minutes from trace start"


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline in HTML


def policy_figure(policy: PolicyResult, duration_s: float) -> str:
    """Four stacked panels for one policy, one line per model: arrival rate (requests/s), queue
    depth (requests waiting), replicas (desired dashed, ready solid) and GPU nodes."""
    unit, label = _time_axis(duration_s)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(4, 1, figsize=(9, 7.2), sharex=True)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (model, series) in enumerate(sorted(policy.series.items())):
            _check_lengths(policy.name, model, series)
            color = colors[i % len(colors)]
            _panel(axes[0], series, series.arrival_rps, "mean", unit, color, model)
            _panel(axes[1], series, series.queue_depth, "max", unit, color, model)
            _panel(axes[2], series, series.replicas_ready, "max", unit, color, f"{model} ready")
            _panel(
                axes[2], series, series.replicas_desired, "max", unit, color, f"{model} desired",
                style="--",
            )  # fmt: skip
            _panel(axes[3], series, series.nodes, "max", unit, color, model)
        titles = ("arrivals (req/s)", "queue depth (waiting)", "replicas", "GPU nodes")
        for ax, title in zip(axes, titles, strict=True):
            ax.set_ylabel(title)
            ax.set_ylim(bottom=0)
        axes[0].set_title(f"{policy.name} ({policy.kind})", loc="left", fontweight="bold")
        axes[2].legend(loc="upper right", fontsize=7, ncol=2, frameon=False)
        if len(policy.series) > 1:
            axes[0].legend(loc="upper right", fontsize=7, frameon=False)
        axes[3].set_xlabel(label)
        fig.align_ylabels(axes)
        return _svg(fig)


def _check_lengths(policy: str, model: str, series: Series) -> None:
    n = len(series.t_s)
    for name in ("arrival_rps", "queue_depth", "replicas_desired", "replicas_ready", "nodes"):
        if len(getattr(series, name)) != n:
            raise ValueError(
                f"series {policy}/{model}: {name} has {len(getattr(series, name))} samples, "
                f"t_s has {n}"
            )


def _panel(
    ax: Axes,
    series: Series,
    values: FloatArray,
    how: str,
    unit: float,
    color: str,
    label: str,
    style: str = "-",
) -> None:
    t, v = reduce(series.t_s, values, how)
    x = t / unit
    if how == "mean":
        ax.plot(x, v, style, color=color, label=label, linewidth=1.1)
    else:
        ax.step(x, v, style, where="post", color=color, label=label, linewidth=1.1)


def cost_wait_figure(policies: Sequence[PolicyResult], slo_wait_s: float) -> str:
    """Every policy as one point: total cost (USD, x) against p95 queue wait (seconds, y), with
    the SLO as a horizontal line. Down and to the left is better."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, policy in enumerate(policies):
            cost, p95 = policy.total.cost_usd, policy.total.wait_s.p95
            if not (math.isfinite(cost) and math.isfinite(p95)):
                continue
            ax.scatter([cost], [p95], s=60, color=colors[i % len(colors)], zorder=3)
            ax.annotate(
                policy.name, (cost, p95), textcoords="offset points", xytext=(6, 5), fontsize=8
            )
        ax.axhline(slo_wait_s, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"SLO {slo_wait_s:g} s", (0, slo_wait_s), xycoords=("axes fraction", "data"),
            textcoords="offset points", xytext=(4, 3), fontsize=7, color="grey",
        )  # fmt: skip
        ax.set_xlabel("cost (USD)")
        ax.set_ylabel("p95 queue wait (s)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_title("cost against p95 wait: lower left is better", loc="left")
        return _svg(fig)
