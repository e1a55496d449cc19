"""Small builders for engine tests: one-model traces and scenarios with every delay explicit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.types import Decision, Observation, Reason
from simulator.scenario import Scenario
from simulator.traces.trace import Trace


def one_model_trace(arrival_s: Sequence[float] | npt.NDArray[np.float64], service_s: Any) -> Trace:
    """Model ``m``; ``service_s`` measured per request (a number applies to all)."""
    arrival = np.asarray(arrival_s, dtype=np.float64)
    n = arrival.shape[0]
    service = np.broadcast_to(np.asarray(service_s, dtype=np.float64), (n,)).copy()
    zeros = np.zeros(n, dtype=np.int32)
    return Trace(
        arrival_s=arrival,
        model=zeros,
        models=("m",),
        input_tokens=zeros,
        output_tokens=zeros,
        service_s=service,
    )


def scenario(
    *,
    concurrency: int = 1,
    gpus_per_replica: int = 1,
    gpus_per_node: int = 1,
    launch_s: float | dict[str, float] = 0.0,
    startup_s: float | dict[str, float] = 0.0,
    price: float = 1.0,
    policy: dict[str, Any] | None = None,
    pool: dict[str, Any] | None = None,
    control_plane: dict[str, Any] | None = None,
    duration_s: float | None = None,
    slo_wait_s: float = 30.0,
    seed: int = 0,
    warm_start: bool = False,
) -> Scenario:
    """One model ``m`` on one pool ``p`` of ``gpus_per_node``-GPU nodes at ``price`` USD/hour.
    Runs start cold (no replicas, no nodes) unless ``warm_start``: these tests narrate the
    engine's mechanics from an empty cluster."""
    data: dict[str, Any] = {
        "models": {
            "m": {
                "served_model": "m",
                "node_pool": "p",
                "max_concurrency": concurrency,
                "gpus_per_replica": gpus_per_replica,
                "startup_s": startup_s,
                "policy": policy or {},
            }
        },
        "node_pools": {
            "p": {
                "instance_type": "g5.xlarge",
                "gpu_type": "A10G",
                "gpus_per_node": gpus_per_node,
                "price_per_hour": {"on_demand": price, "spot": price / 2},
                "launch_s": launch_s,
                **(pool or {}),
            }
        },
        "slo_wait_s": slo_wait_s,
        "seed": seed,
        "simulation": {
            "duration_s": duration_s,
            "sample_every_s": 60.0,
            "warm_start": warm_start,
        },
    }
    if control_plane is not None:
        data["control_plane"] = control_plane
    return Scenario.model_validate(data)


@dataclass(frozen=True)
class Until:
    """A test policy: ``replicas`` while ``at_s < until_s``, then 0 (inactive)."""

    replicas: int
    until_s: float

    @property
    def name(self) -> str:
        return "until"

    @property
    def metric_target(self) -> float:
        return 1.0

    def initial_state(self) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        want = self.replicas if observation.at_s < self.until_s else 0
        return Decision(want, Reason.STATIC, "test", float(want)), None


@dataclass(frozen=True)
class Steps:
    """A test policy: ``steps`` is ((from_s, replicas), ...) in time order; before the first
    step it wants 0."""

    steps: tuple[tuple[float, int], ...]

    @property
    def name(self) -> str:
        return "steps"

    @property
    def metric_target(self) -> float:
        return 1.0

    def initial_state(self) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        want = 0
        for from_s, replicas in self.steps:
            if observation.at_s >= from_s:
                want = replicas
        return Decision(want, Reason.STATIC, "test", float(want)), None
