"""KEDA's activation and cooldown, narrated poll by poll (30 s apart)."""

from __future__ import annotations

from simulator.engine.keda import KedaController


def test_activation_at_zero_scales_to_one() -> None:
    keda = KedaController(cooldown_s=300.0)
    # Work arrives at zero replicas: KEDA scales to max(minReplicaCount, 1) = 1.
    assert keda.poll(0.0, True, 0) == 1
    # Active with replicas: the HPA's business, KEDA sets nothing.
    assert keda.poll(30.0, True, 1) is None


def test_activation_respects_min_replica_count() -> None:
    keda = KedaController(cooldown_s=300.0, min_replicas=0)
    assert keda.poll(0.0, True, 0) == 1
    # minReplicaCount 3 (and inactive, below it): KEDA brings the target up to 3.
    assert KedaController(cooldown_s=300.0, min_replicas=3).poll(0.0, False, 1) == 3


def test_cooldown_to_zero() -> None:
    keda = KedaController(cooldown_s=300.0)
    keda.poll(0.0, True, 0)
    keda.poll(30.0, True, 4)  # last active at 30
    # Inactive from t=60: nothing happens while 30 + 300 is not before now.
    for t in range(60, 331, 30):
        assert keda.poll(float(t), False, 4) is None, t
    # t=360: 330 < 360, the cooldown has passed: straight from 4 to 0 (keda#7770).
    assert keda.poll(360.0, False, 4) == 0


def test_activity_restarts_the_cooldown() -> None:
    keda = KedaController(cooldown_s=300.0)
    keda.poll(0.0, True, 0)
    keda.poll(200.0, False, 1)
    keda.poll(250.0, True, 1)  # active again at 250
    assert keda.poll(330.0, False, 1) is None  # 0 + 300 would have passed; 250 + 300 has not
    assert keda.poll(580.0, False, 1) == 0


def test_never_active_target_scales_to_zero_at_once() -> None:
    assert KedaController(cooldown_s=300.0).poll(0.0, False, 2) == 0


def test_min_replica_count_blocks_scale_to_zero() -> None:
    keda = KedaController(cooldown_s=300.0, min_replicas=1)
    keda.poll(0.0, True, 1)
    assert keda.poll(1000.0, False, 1) is None
