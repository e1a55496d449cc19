"""One set of settings for the live run and the simulation of the same trace.

Everything here is in trace seconds (the trace's own clock, before compression) except where a
name says wall. The live side divides by ``time_scale``; the simulator runs in trace seconds. The
scenario the simulator runs is built here from the same numbers the live replicas, the live
scaler's trigger metadata and the live KEDA/HPA loop use, so the two cannot drift apart:

- the policy block (``ModelSpec.policy``) is the trigger metadata the live poller sends;
- the replicas' warm-up is ``startup_s`` (a node launches in 0 s: there is no node);
- the stand-in's service time, ``time_scale × (prefill × prompt tokens + decode × output
  tokens)``, is each request's ``service_s`` in the simulated trace;
- KEDA and the HPA are depthscale's own settings (``depthscale_control_plane``), and the scaler
  counts replicas from its own decisions (the demo has no Kubernetes API to ask).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from simulator.scenario import Scenario, depthscale_control_plane
from simulator.traces.trace import Trace
from worker.standin import StandinConfig

BrokerKind = Literal["redis", "rabbitmq"]
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
BROKER = "demo"
"""The broker's name in the trigger metadata (``broker``) and in the scaler's broker table."""
NAMESPACE = "demo"

_STANDIN = StandinConfig()


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """time_scale:   trace seconds per wall second, >= 1 (20: a trace's 20 minutes in one).
    slots:          batch slots per replica (stand-in ``--max-num-seqs``, worker
                    ``--concurrency``, the trigger's ``replicaConcurrency``), >= 1.
    warmup_s:       a replica's start, trace seconds: the stand-in's warm-up, and the policy's
                    ``warmupSeconds``, >= 0.
    window_s:       the policy's ``stabilizationWindowSeconds``, trace seconds, >= 0.
    max_replicas:   per model (``maxReplicas``), >= 1.
    tail_s:         trace seconds the run goes on after the last arrival, so the way back down
                    is seen, >= 0.
    prefill_s:      stand-in seconds per prompt token; decode_s: per output token (trace
                    seconds: the stand-in multiplies them by 1 / time_scale).
    sample_s:       trace seconds between two points of the replica series, > 0.
    broker:         ``redis`` (a private redis-server) or ``rabbitmq`` (a private vhost on
                    ``rabbitmq_url``).
    """

    time_scale: float = 20.0
    slots: int = 4
    warmup_s: float = 120.0
    window_s: float = 300.0
    max_replicas: int = 6
    tail_s: float = 480.0
    prefill_s: float = _STANDIN.prefill_seconds_per_token
    decode_s: float = _STANDIN.decode_seconds_per_token
    sample_s: float = 15.0
    broker: BrokerKind = "redis"
    rabbitmq_url: str = DEFAULT_RABBITMQ_URL

    def __post_init__(self) -> None:
        checks = [
            ("time_scale", self.time_scale >= 1, ">= 1"),
            ("slots", self.slots >= 1, ">= 1"),
            ("warmup_s", self.warmup_s >= 0, ">= 0"),
            ("window_s", self.window_s >= 0, ">= 0"),
            ("max_replicas", self.max_replicas >= 1, ">= 1"),
            ("tail_s", self.tail_s >= 0, ">= 0"),
            ("prefill_s", self.prefill_s >= 0, ">= 0"),
            ("decode_s", self.decode_s >= 0, ">= 0"),
            ("sample_s", self.sample_s > 0, "> 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name}: must be {rule}, got {getattr(self, name)}")

    def with_broker(self, broker: BrokerKind, rabbitmq_url: str | None = None) -> ReplaySettings:
        return replace(self, broker=broker, rabbitmq_url=rabbitmq_url or self.rabbitmq_url)

    @property
    def counts_in_flight(self) -> bool:
        """Whether the trigger sets ``includeUnacked``: on Redis the scaler reads the unacked
        hash; RabbitMQ needs its management API for that, which the demo's URL need not have."""
        return self.broker == "redis" or "management=" in self.rabbitmq_url

    def policy_block(self) -> dict[str, object]:
        """The models file's policy block, which is also the trigger metadata."""
        block: dict[str, object] = {
            "replicaConcurrency": self.slots,
            "maxReplicas": self.max_replicas,
            "warmupSeconds": self.warmup_s,
            "stabilizationWindowSeconds": self.window_s,
        }
        if self.counts_in_flight:
            block["includeUnacked"] = True
        return block

    def service_s(self, trace: Trace) -> np.ndarray:
        """Each request's service time on the stand-in, trace seconds."""
        out: np.ndarray = self.prefill_s * np.maximum(trace.input_tokens, 1).astype(
            np.float64
        ) + self.decode_s * np.maximum(trace.output_tokens, 1).astype(np.float64)
        return out

    def served_trace(self, trace: Trace) -> Trace:
        """The trace with the stand-in's service times (any measured ones are replaced: the
        live replicas can only serve tokens)."""
        return replace(trace, service_s=self.service_s(trace))

    def end_s(self, trace: Trace) -> float:
        """Where both runs stop, trace seconds: the last arrival plus the tail, on the grid."""
        step = self.sample_s
        return float(np.ceil((trace.duration_s + self.tail_s) / step) * step)

    def scenario(self, trace: Trace, startup_s: tuple[float, float] | None = None) -> Scenario:
        """The scenario the simulator runs. startup_s: a replica's start, (low, high) trace
        seconds, drawn uniformly per replica; None: the warm-up alone."""
        low, high = startup_s if startup_s is not None else (self.warmup_s, self.warmup_s)
        control = depthscale_control_plane().model_dump(by_alias=True)
        control["replicas_from"] = "decisions"
        return Scenario.model_validate(
            {
                "models": {
                    name: {
                        "served_model": name,
                        "trace_models": [name],
                        "node_pool": "standin",
                        "max_concurrency": self.slots,
                        "startup_s": {"low": low, "high": high},
                        "policy": self.policy_block(),
                    }
                    for name in trace.models
                },
                "node_pools": {
                    "standin": {
                        "instance_type": "standin",
                        "gpu_type": "none",
                        "gpus_per_node": 1,
                        "price_per_hour": {"on_demand": 1.0, "spot": 1.0},
                        "launch_s": {"low": 0.0, "high": 0.0},
                    }
                },
                "control_plane": control,
                "simulation": {
                    "duration_s": self.end_s(trace),
                    "sample_every_s": self.sample_s,
                    "warm_start": False,
                },
                "policies": [{"name": "depthscale", "kind": "depthscale"}],
            }
        )

    def metadata(self, scenario: Scenario, model: str) -> dict[str, str]:
        """The trigger metadata the live poller sends for ``model`` (the scenario's block)."""
        spec = scenario.models[model]
        return {
            "broker": BROKER,
            "queues": ",".join(spec.queues),
            "model": spec.name,
            **spec.policy.to_metadata(),
        }
