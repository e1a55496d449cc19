"""The demo's stand-in cluster: KEDA + HPA arithmetic and replicas that warm up, then serve."""

from __future__ import annotations

import pytest

from scaler.demo_cluster import ModelReplicas, hpa_replicas


@pytest.mark.parametrize(
    ("active", "metric", "target", "replicas"),
    [
        pytest.param(False, 7.0, 1.0, 0, id="inactive-is-zero-whatever-the-metric"),
        pytest.param(True, 0.0, 1.0, 1, id="active-is-at-least-one"),
        pytest.param(True, 3.0, 1.0, 3, id="replicas-mode-metric-is-replicas"),
        pytest.param(True, 120.0, 50.0, 3, id="pending-mode-ceil-of-pending-over-target"),
        pytest.param(True, 100.0, 50.0, 2, id="exact-multiple-not-rounded-up"),
    ],
)
def test_hpa_replicas(active: bool, metric: float, target: float, replicas: int) -> None:
    assert hpa_replicas(active, metric, target) == replicas


def test_replicas_serve_only_after_warmup() -> None:
    deployment = ModelReplicas(warmup_s=10.0, tasks_per_s=4.0)
    # t=0: the scaler asks for 3 replicas; they are all warming.
    deployment.scale_to(3, now_s=0.0)
    assert (deployment.ready(0.0), deployment.warming(0.0)) == (0, 3)
    assert deployment.capacity(now_s=5.0, dt_s=5.0) == 0
    # t=10: warm; a second of serving is 3 replicas x 4 tasks.
    assert (deployment.ready(10.0), deployment.warming(10.0)) == (3, 0)
    assert deployment.capacity(now_s=11.0, dt_s=1.0) == 12


def test_scale_down_removes_the_youngest_first() -> None:
    deployment = ModelReplicas(warmup_s=10.0, tasks_per_s=1.0)
    deployment.scale_to(2, now_s=0.0)  # ready at 10
    deployment.scale_to(4, now_s=8.0)  # two more, ready at 18
    # t=12: two serve, two warm; scaling to 3 drops a warming one.
    deployment.scale_to(3, now_s=12.0)
    assert (deployment.ready(12.0), deployment.warming(12.0)) == (2, 1)
    deployment.scale_to(0, now_s=13.0)
    assert (deployment.ready(13.0), deployment.warming(13.0)) == (0, 0)


def test_fractional_capacity_carries_over() -> None:
    deployment = ModelReplicas(warmup_s=0.0, tasks_per_s=1.0)
    deployment.scale_to(1, now_s=0.0)
    # four quarter-second ticks of one task a second: one whole task in all.
    served = [deployment.capacity(now_s=0.25 * i, dt_s=0.25) for i in range(1, 5)]
    assert served == [0, 0, 0, 1]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"warmup_s": -1.0, "tasks_per_s": 1.0}, "warmup_s", id="negative-warmup"),
        pytest.param({"warmup_s": 1.0, "tasks_per_s": 0.0}, "tasks_per_s", id="zero-rate"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ModelReplicas(**kwargs)
