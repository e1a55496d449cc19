"""Report figures: matplotlib (Agg backend) rendered to inline SVG text, no external resources.

Long series are reduced to at most ``MAX_POINTS`` points per line before plotting (rates by
bucket mean, counts by bucket maximum, so a short burst still shows), which keeps a week-long
report a few megabytes at most.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np

from simulator.results import FloatArray, PolicyResult, Series

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

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


SHARED_COLOR = "#555555"  # neutral dark grey, used nowhere else in the charts
"""A series several models share (the GPU nodes of one pool): no model's colour."""

KIND_WORDS = {
    "depthscale": "the depthscale scaler with other settings",
    "keda-native": "KEDA alone, one replica per scaleUpPending tasks",
    "schedule": "a schedule written by hand",
    "trailing-schedule": "a schedule sized from the previous week",
    "hindsight-schedule": "a schedule sized knowing the whole trace",
    "static-peak": "fixed replicas for the trace's busiest window",
    "static": "fixed replicas",
}
"""A policy kind in words, for chart titles."""


def figure_title(name: str, kind: str) -> str:
    """The policy's name and, unless the name is the kind's own, what kind of policy it is:
    ``seed-rule: the depthscale scaler with other settings``, not ``seed-rule (depthscale)``."""
    if name == kind == "depthscale" or kind not in KIND_WORDS:
        return name
    return f"{name}: {KIND_WORDS[kind]}"


def node_groups(series: Mapping[str, Series]) -> list[tuple[list[str], Series]]:
    """The models whose GPU-node series are identical (one node pool), each group once, in
    model-name order: (its models, the first one's series)."""
    groups: list[tuple[list[str], Series]] = []
    for model, s in sorted(series.items()):
        for models, first in groups:
            if np.array_equal(first.nodes, s.nodes):
                models.append(model)
                break
        else:
            groups.append(([model], s))
    return groups


def policy_figure(policy: PolicyResult, duration_s: float) -> str:
    """Four stacked panels for one policy, one colour per model: arrival rate (requests/s), queue
    depth (requests waiting), replicas (ready solid, desired by the HPA dashed) and GPU nodes of
    the model's pool (drawn once, in a neutral colour, for models sharing a pool)."""
    unit, label = _time_axis(duration_s)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(4, 1, figsize=(11, 7.5), sharex=True)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        color_of: dict[str, str] = {}
        for i, (model, series) in enumerate(sorted(policy.series.items())):
            _check_lengths(policy.name, model, series)
            color = color_of[model] = colors[i % len(colors)]
            _panel(axes[0], series, series.arrival_rps, "mean", unit, color, model)
            _panel(axes[1], series, series.queue_depth, "max", unit, color, model)
            _panel(axes[2], series, series.replicas_ready, "max", unit, color, model)
            _panel(axes[2], series, series.replicas_desired, "max", unit, color, model, "--")
        shared = False
        for models, series in node_groups(policy.series):
            if len(models) == 1:
                _panel(axes[3], series, series.nodes, "max", unit, color_of[models[0]], models[0])
            else:
                shared = True
                who = f"shared by {', '.join(models)}"
                _panel(axes[3], series, series.nodes, "max", unit, SHARED_COLOR, who)
        if shared:
            axes[3].legend(loc="upper right", frameon=False, fontsize="small")
        titles = (
            "arrivals (req/s)",
            "queue depth\n(waiting)",
            "replicas\n(solid ready,\ndashed desired)",
            "GPU nodes\n(model's pool)",
        )
        for ax, title in zip(axes, titles, strict=True):
            ax.set_ylabel(title)
            ax.set_ylim(bottom=0)
        for ax in axes[2:]:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_title(figure_title(policy.name, policy.kind), loc="left", fontweight="bold")
        axes[0].legend(
            loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(policy.series) or 1,
            frameon=False, borderaxespad=0.2,
        )  # fmt: skip
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


MARKER_AREA = 60.0  # scatter marker area, points^2
_RINGS = (16.0, 28.0, 42.0, 58.0, 76.0)  # leader-line distances tried, points
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0))


def cost_wait_figure(
    policies: Sequence[PolicyResult], slo_wait_s: float, ideal_usd: float | None = None
) -> str:
    """Every policy as one point: total cost (USD, x) against p95 queue wait (seconds, y), with
    the SLO as a horizontal line and the fluid ideal as a vertical one. Down and to the left is
    better; no two labels overlap (``cost_wait_plot``)."""
    with plt.rc_context(_STYLE):
        fig, _, _ = cost_wait_plot(policies, slo_wait_s, ideal_usd)
        return _svg(fig)


def cost_wait_plot(
    policies: Sequence[PolicyResult], slo_wait_s: float, ideal_usd: float | None = None
) -> tuple[Figure, Axes, list[Text]]:
    """The cost-versus-wait chart, with its point labels placed so that none overlaps another
    label, a point or the reference lines' captions (returned for inspection).

    Policies landing on the same point share one dot and one label. Each label tries spots next
    to its dot, then farther out with a leader line; a label that finds no free spot goes to a
    column right of the plot, with a leader line to its dot."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    points: dict[tuple[float, float], list[str]] = {}
    for policy in policies:
        cost, p95 = policy.total.cost_usd, policy.total.wait_s.p95
        if math.isfinite(cost) and math.isfinite(p95):
            points.setdefault((round(cost, 2), round(p95, 1)), []).append(policy.name)
    for i, (cost, p95) in enumerate(points):
        ax.scatter([cost], [p95], s=MARKER_AREA, color=colors[i % len(colors)], zorder=3)
    ideal = ideal_usd if ideal_usd is not None and ideal_usd > 0 else None
    top = max([p95 for _, p95 in points] + [slo_wait_s]) * 1.15 or 1.0
    right = max([cost for cost, _ in points] + [ideal or 0.0]) * 1.25 or 1.0
    ax.axhline(slo_wait_s, color="grey", linestyle=":", linewidth=1)
    captions = [
        ax.annotate(
            f"SLO {slo_wait_s:g} s", (0, slo_wait_s), xycoords=("axes fraction", "data"),
            textcoords="offset points", xytext=(4, 3), fontsize=7, color="grey",
        )
    ]  # fmt: skip
    if ideal is not None:
        ax.axvline(ideal, color="green", linestyle="--", linewidth=1)
        captions.append(
            ax.annotate(
                f"fluid ideal ${ideal:,.2f}", (ideal, 1), xycoords=("data", "axes fraction"),
                textcoords="offset points", xytext=(3, -3), ha="left", va="top", fontsize=7,
                color="green",
            )
        )  # fmt: skip
    ax.set_xlabel("cost (USD)")
    ax.set_ylabel("p95 queue wait (s)")
    ax.set_xlim(-0.02 * right, right)
    ax.set_ylim(-0.04 * top, top)
    ax.set_title("cost against p95 wait: lower left is better", loc="left")
    labels = _place_labels(
        fig, ax, [(xy, ", ".join(names)) for xy, names in points.items()], captions
    )
    return fig, ax, labels


def text_extent(label: Text, renderer: Any) -> Bbox:
    """The display box of a label's text alone (an annotation's own extent includes its leader
    line), pixels."""
    if isinstance(label, Annotation):
        label.update_positions(renderer)  # the text's place follows from its anchor and offset
    return Text.get_window_extent(label, renderer)


def _overlaps(a: Bbox, b: Bbox, pad: float = 1.0) -> bool:
    return bool(a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad)


def _place_labels(
    fig: Figure,
    ax: Axes,
    points: list[tuple[tuple[float, float], str]],
    captions: Sequence[Text],
) -> list[Text]:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    points_px = fig.dpi / 72.0
    # A dot's box with a few pixels to spare: an annotation's text can land a pixel or three
    # from where its first measurement put it once the figure is drawn.
    radius = math.sqrt(MARKER_AREA) / 2 * points_px + 4.0
    taken: list[Bbox] = [c.get_window_extent(renderer) for c in captions]
    for xy in (xy for xy, _ in points):
        px, py = ax.transData.transform(xy)
        taken.append(Bbox.from_extents(px - radius, py - radius, px + radius, py + radius))
    frame = fig.bbox
    candidates = [(6.0, 5.0), (6.0, -5.0), (-6.0, 5.0), (-6.0, -5.0), (0.0, 8.0), (0.0, -8.0)]
    candidates += [(ux * r, uy * r) for r in _RINGS for ux, uy in _DIRECTIONS]
    placed: list[Text] = []
    spill: list[tuple[tuple[float, float], str]] = []
    # Left to right, so that crowded clusters fill outwards in a stable order.
    for xy, text in sorted(points):
        label = None
        for dx, dy in candidates:
            far = abs(dx) > 10 or abs(dy) > 10
            trial = ax.annotate(
                text, xy, textcoords="offset points", xytext=(dx, dy), fontsize=8,
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6} if far else None,
            )  # fmt: skip
            box = text_extent(trial, renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
            if inside and box.y1 <= frame.y1 and not any(_overlaps(box, t) for t in taken):
                label = trial
                taken.append(box)
                break
            trial.remove()
        if label is None:
            spill.append((xy, text))
        else:
            placed.append(label)
    # No free spot near the dot: a column right of the plot, one row per label, top down.
    x_px = max([ax.bbox.x1] + [t.x1 for t in taken]) + 8.0
    y_px = ax.bbox.y1
    for xy, text in spill:
        x_ax, y_ax = ax.transAxes.inverted().transform((x_px, y_px))
        label = ax.annotate(
            text, xy, xytext=(x_ax, y_ax), textcoords="axes fraction", fontsize=8,
            ha="left", va="top", annotation_clip=False,
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6},
        )  # fmt: skip
        box = text_extent(label, renderer)
        taken.append(box)
        y_px = box.y0 - 3.0
        placed.append(label)
    return placed
