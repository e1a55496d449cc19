"""The per-policy chart: a title that says what the policy is, and a shared node pool drawn in
no model's colour."""

from __future__ import annotations

from dataclasses import replace

import matplotlib.colors
import numpy as np

from simulator.report.figures import SHARED_COLOR, figure_title, node_groups, policy_figure
from tests.simulator.test_report import POINTS, STEP_S, policy, series


def test_a_title_names_the_policy_and_its_kind_in_words() -> None:
    assert figure_title("depthscale", "depthscale") == "depthscale"
    assert figure_title("seed-rule", "depthscale") == (
        "seed-rule: the depthscale scaler with other settings"
    )
    assert (
        figure_title("business-hours", "schedule") == "business-hours: a schedule written by hand"
    )
    assert figure_title("mine", "unknown-kind") == "mine"


def test_models_on_one_pool_share_one_node_series() -> None:
    one = series(4.0)
    other = replace(one, nodes=one.nodes + 1)  # another pool: other node counts
    same_pool = replace(other, nodes=one.nodes.copy())
    assert [m for m, _ in node_groups({"b": one, "a": other})] == [["a"], ["b"]]
    assert [m for m, _ in node_groups({"b": one, "a": same_pool, "c": other})] == [
        ["a", "b"],
        ["c"],
    ]


def test_a_shared_pool_is_drawn_in_the_neutral_colour_and_says_whose_it_is() -> None:
    grey = matplotlib.colors.to_hex(SHARED_COLOR)
    pooled = policy("depthscale", "depthscale", 1.0, 1.0, p95=1.0)
    a_nodes = pooled.series["model-a"].nodes
    separate = replace(
        pooled,
        series={
            "model-a": pooled.series["model-a"],
            "model-b": replace(pooled.series["model-b"], nodes=a_nodes + 1),
        },
    )
    svg = policy_figure(separate, POINTS * STEP_S)
    assert grey not in svg
    assert "shared by" not in svg
    pooled = replace(
        pooled,
        series={m: replace(s, nodes=np.array(a_nodes)) for m, s in pooled.series.items()},
    )
    svg = policy_figure(pooled, POINTS * STEP_S)
    assert grey in svg
    assert "shared by model-a, model-b" in svg
