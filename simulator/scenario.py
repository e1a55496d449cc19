"""The scenario ("models file"): models, GPU node pools, control plane, SLO and policies to compare.

One YAML file feeds the simulator and the rendered manifests, so a capacity plan and a deployment
cannot disagree. Names follow what the manifests use: model names are Kubernetes Service names,
policy thresholds use the scaler's ScaledObject metadata keys (``scaleUpPending``...), HPA behavior
uses the Kubernetes field names (``stabilizationWindowSeconds``, ``periodSeconds``...).

Defaults, with their sources (KEDA and Kubernetes defaults: kedacore/keda v2.20: externalscaler.proto and the metrics adapter, kubernetes pkg/controller/podautoscaler; the vLLM v0.6 performance blog):
  - KEDA pollingInterval 30 s, cooldownPeriod 300 s; HPA sync 15 s, tolerance 0.1 up and down,
    behavior defaults of the Kubernetes HPA (up: window 0 s, max(4 Pods, 100 %) per 15 s;
    down: window 300 s, 100 % per 15 s).
  - GPU node launch-to-ready 180-300 s uniform; empty nodes consolidated after 900 s; spot
    interruption notice 120 s.
  - Replica service model calibrated from vLLM's published figures (~200 input / ~180 output
    tokens): Llama-3-8B ≈19 req/s per 1×A100, ≈37 per 1×H100; Llama-3-70B ≈8.5 per 4×A100,
    ≈17 per 4×H100.

``load_scenario(path)`` raises ``ScenarioError`` whose message reads
``models.yaml:12: models.llama-3-8b.gpus_per_replica: must be >= 1, got 0``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from policies.config import Mode, QueueDepthConfig, Rule
from policies.observe import ReplicasFrom
from scaler.metadata import MetadataError, parse_metadata
from simulator import kube_defaults as kube
from simulator.prices import PriceTableError, lookup
from simulator.traces.bins import LengthMix

# Kubernetes Service names are DNS-1035 labels: they must start with a letter.
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CELERY_QUEUE = re.compile(r"^[A-Za-z0-9_.:@-]+$")

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class ScenarioError(ValueError):
    """A scenario file is invalid. ``file``, ``line`` (1-based, or None), ``path`` (dotted key
    path, e.g. ``models.llama-3-8b.gpus_per_replica``) and ``problem`` locate it."""

    def __init__(self, file: str, line: int | None, path: str, problem: str) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")
        self.file = file
        self.line = line
        self.path = path
        self.problem = problem


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1035 label (lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters)"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Range(_Strict):
    """A duration drawn uniformly from [low, high] seconds; a bare number in YAML means low = high."""

    low: NonNegFloat
    high: NonNegFloat

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, data: Any) -> Any:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"low": data, "high": data}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.high < self.low:
            raise ValueError(f"high ({self.high:g}) must be >= low ({self.low:g})")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2.0

    def sample(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        """``n`` draws, seconds."""
        return rng.uniform(self.low, self.high, size=n)


class ServiceModel(_Strict):
    """How long a request holds one of a replica's batch slots, from its token counts.

    A replica at full batch (``max_concurrency`` requests at once) completes ``throughput_rps``
    requests per second of the calibration mix (``calibration_input_tokens`` in,
    ``calibration_output_tokens`` out), so a calibration request holds its slot for
    ``max_concurrency / throughput_rps`` seconds. Other requests scale with their token cost
    ``input_token_weight × input + output`` (a prompt token costs a fraction of a generated one:
    prefill runs in parallel, decode one token per step).

    throughput_rps:            requests/s per replica at full batch, > 0.
    calibration_input_tokens:  mean prompt tokens of the calibration mix, > 0.
    calibration_output_tokens: mean generated tokens of the calibration mix, > 0.
    input_token_weight:        cost of one prompt token in generated-token units, >= 0.
    min_service_s:             floor on any request's service time, seconds, >= 0.
    """

    throughput_rps: PositiveFloat = 19.0
    calibration_input_tokens: PositiveFloat = 200.0
    calibration_output_tokens: PositiveFloat = 180.0
    input_token_weight: NonNegFloat = 0.1
    min_service_s: NonNegFloat = 0.05

    def service_s(
        self,
        input_tokens: npt.NDArray[np.int32],
        output_tokens: npt.NDArray[np.int32],
        max_concurrency: int,
    ) -> npt.NDArray[np.float64]:
        """Seconds each request holds a batch slot (vectorised over requests)."""
        per_request = max_concurrency / self.throughput_rps
        w = self.input_token_weight
        unit = w * self.calibration_input_tokens + self.calibration_output_tokens
        cost = w * input_tokens.astype(np.float64) + output_tokens.astype(np.float64)
        return np.maximum(per_request * cost / unit, self.min_service_s)


class PolicyThresholds(_Strict):
    """The queue-depth policy's knobs under the scaler's ScaledObject metadata keys.

    Every key is optional; unset keys take the ``preset``'s values (``depthscale``, the default:
    ``policies.config.DEPTHSCALE``; or ``seed``). ``includeUnacked`` is the broker read's option:
    with it the scaler (and so the simulated scaler) counts in-flight tasks.
    """

    scale_up_pending: float | None = Field(None, alias="scaleUpPending")
    scale_down_pending: float | None = Field(None, alias="scaleDownPending")
    stabilization_window_s: float | None = Field(None, alias="stabilizationWindowSeconds")
    warmup_s: float | None = Field(None, alias="warmupSeconds")
    lookahead_s: float | None = Field(None, alias="lookaheadSeconds")
    growth_window_s: float | None = Field(None, alias="growthWindowSeconds")
    min_replicas: int | None = Field(None, alias="minReplicas")
    max_replicas: int | None = Field(None, alias="maxReplicas")
    scale_down_step: int | None = Field(None, alias="scaleDownStep")
    scale_down_period_s: float | None = Field(None, alias="scaleDownPeriodSeconds")
    scale_up_on_in_flight: bool | None = Field(None, alias="scaleUpOnInFlight")
    scale_up_factor: float | None = Field(None, alias="scaleUpFactor")
    preset: Literal["depthscale", "seed"] | None = None
    include_unacked: bool | None = Field(None, alias="includeUnacked")
    replica_concurrency: int | None = Field(None, alias="replicaConcurrency")
    buffer_replicas: int | None = Field(None, alias="bufferReplicas")
    mode: Mode | None = None
    rule: Rule | None = None
    headroom: float | None = None
    react_to_recent: bool | None = Field(None, alias="reactToRecent")
    seasonal_fraction: float | None = Field(None, alias="seasonalFraction")
    seasonal_periods_s: tuple[float, ...] | None = Field(None, alias="seasonalPeriodsSeconds")
    seasonal_slot_s: float | None = Field(None, alias="seasonalSlotSeconds")
    seasonal_decay: float | None = Field(None, alias="seasonalDecay")

    @model_validator(mode="after")
    def _valid_config(self) -> Self:
        self.to_policy_config()
        return self

    def to_policy_config(self) -> QueueDepthConfig:
        """The policy's config, parsed from ``to_metadata()`` by the scaler's own metadata parser
        (``scaler.metadata``): one parser, one set of defaults, presets and limits for the live
        scaler and the simulated one. ValueError names the metadata key at fault."""
        try:
            parsed = parse_metadata({"broker": "models-file", "queues": "q", **self.to_metadata()})
        except MetadataError as exc:
            raise ValueError(f"{exc.key}: {exc.problem}") from None
        return parsed.config

    def to_metadata(self) -> dict[str, str]:
        """The set keys as ScaledObject trigger metadata (all values strings, as KEDA sends them)."""
        out: dict[str, str] = {}
        for key, value in self.model_dump(by_alias=True, exclude_none=True).items():
            if isinstance(value, Mode | Rule):
                out[key] = value.value
            elif isinstance(value, list | tuple):
                out[key] = ",".join(
                    str(int(v)) if float(v).is_integer() else repr(float(v)) for v in value
                )
            elif isinstance(value, bool):
                out[key] = "true" if value else "false"
            elif isinstance(value, str):
                out[key] = value
            elif isinstance(value, float) and not value.is_integer():
                out[key] = repr(value)
            else:
                out[key] = str(int(value))
        return out


class Online(_Strict):
    """Traffic clients send through the gateway straight to vLLM, never through Celery.

    Online requests are not tasks: the scaler never counts them. A model served online gets a
    second ScaledObject trigger, KEDA's ``prometheus`` scaler on vLLM's own gauges
    (``vllm:num_requests_running + vllm:num_requests_waiting`` summed over the model's pods,
    ``metricType: AverageValue``), and keeps at least one replica (docs/online.md).

    share:              share of the model's requests that arrive online, in [0, 1]; 0 (the
                        default) = none: no second trigger, and the model may scale to zero.
    target_per_replica: the prometheus trigger's ``threshold``: requests running or waiting in
                        vLLM per replica, > 0. None = the replica's ``max_concurrency`` × the
                        file's ``target_utilization``, rounded down (at least 1).
    trigger:            false simulates the online traffic with no trigger seeing it (the
                        deployment before this trigger existed), to measure what the trigger
                        buys; ``render`` refuses it.
    """

    share: float = Field(0.0, ge=0, le=1)
    target_per_replica: PositiveFloat | None = None
    trigger: bool = True


class ModelSpec(_Strict):
    """One served model: its Celery queues, its replicas and how they scale.

    name:             Kubernetes name of the Deployment/Service/ScaledObject (DNS-1035 label).
    served_model:     the model id vLLM serves and clients send (``model`` in the request body).
    queues:           Celery queue names holding this model's tasks (default: [name]).
    trace_models:     model names in traces that map to this model (default: name, served_model).
    gpus_per_replica: GPUs per replica (tensor-parallel size), >= 1.
    node_pool:        name of the node pool its replicas run on.
    max_concurrency:  requests one replica serves at once (vLLM ``max_num_seqs``), >= 1.
    service:          service-time model (ignored for requests with a measured ``service_s``).
    startup_s:        pod start-up, seconds (image pull + weight load) once a node is ready.
    policy:           the depthscale policy's thresholds for this model.
    online:           the share of its traffic sent online, through the gateway (``Online``);
                      a model served online keeps ``policy.minReplicas`` >= 1 (unset: 1).
    extra_args:       extra vLLM command-line arguments for the manifests.

    The manifests alone read these (the simulator does not):
    gpu_memory_utilization: share of each GPU's memory vLLM reserves at start
                      (``--gpu-memory-utilization``), in (0, 1]; the GPU memory alerts derive
                      their thresholds from it.
    max_model_len:    longest context (prompt + output) in tokens (``--max-model-len``), >= 1;
                      default 8192 (a model's own maximum, 128 k for Llama 3.1, may not fit the
                      KV cache of a small GPU at all).
    weights_gib:      size of the model's weights on disk, GiB, > 0; sizes the pod's
                      ``ephemeral-storage`` request and download volume, and the GKE boot disk.
                      None: only scratch is reserved and the download is not bounded (set it).
    weights_claim:    name of a ReadOnlyMany PersistentVolumeClaim already holding the Hugging
                      Face cache of the weights; mounted instead of downloading per pod.
    max_generation_s: longest one request may run, seconds, > 0 (the worker's
                      ``--max-generation-seconds``); bounds vLLM's drain and the pod's grace.
    """

    name: str
    served_model: str
    queues: tuple[str, ...] = ()
    trace_models: tuple[str, ...] = ()
    gpus_per_replica: int = Field(1, ge=1)
    node_pool: str
    max_concurrency: int = Field(256, ge=1)
    service: ServiceModel = ServiceModel()
    startup_s: Range = Range(low=60.0, high=180.0)
    policy: PolicyThresholds = Field(default_factory=lambda: PolicyThresholds.model_validate({}))
    online: Online = Field(default_factory=lambda: Online.model_validate({}))
    extra_args: tuple[str, ...] = ()
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int = Field(8192, ge=1)
    weights_gib: PositiveFloat | None = None
    weights_claim: str | None = None
    max_generation_s: PositiveFloat = 600.0

    _check_name = field_validator("name")(_dns_label)

    def mix_service_s(self, mix: LengthMix) -> npt.NDArray[np.float64]:
        """Service times (seconds) of a length mix's samples on this model's replicas, in the
        mix's shape: its measured ones, or the service model's from its token counts."""
        if mix.service_s is not None:
            return mix.service_s
        flat = self.service.service_s(
            mix.input_tokens.ravel(), mix.output_tokens.ravel(), self.max_concurrency
        )
        return flat.reshape(mix.input_tokens.shape)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for queue in value:
            if not _CELERY_QUEUE.match(queue):
                raise ValueError(f"queue name {queue!r} has characters outside [A-Za-z0-9_.:@-]")
        if len(set(value)) != len(value):
            raise ValueError("queue names must be unique")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> Self:
        if not self.queues:
            object.__setattr__(self, "queues", (self.name,))
        if not self.trace_models:
            names = (
                (self.name,) if self.served_model == self.name else (self.name, self.served_model)
            )
            object.__setattr__(self, "trace_models", names)
        if self.online.share > 0:
            # The gateway cannot wake a model at zero replicas: it answers 502.
            floor = self.policy.min_replicas
            if floor is not None and floor < 1:
                raise ValueError(
                    f"policy.minReplicas: must be >= 1 for a model served online "
                    f"(online.share {self.online.share:g}): the gateway cannot wake a model at "
                    f"zero replicas, got {floor}"
                )
            if floor is None:
                policy = PolicyThresholds.model_validate(
                    {**self.policy.model_dump(by_alias=True, exclude_none=True), "minReplicas": 1}
                )
                object.__setattr__(self, "policy", policy)
        return self

    @property
    def served_online(self) -> bool:
        """Some of its traffic arrives through the gateway (``online.share`` > 0)."""
        return self.online.share > 0


class WarmBuffer(_Strict):
    """Spare GPU nodes held by low-priority placeholder pods, preempted the moment a real replica
    needs the room (so that replica skips the node launch). Set exactly one of:

    target_utilization: keep enough nodes that used GPUs / all GPUs <= this, in (0, 1].
    nodes:              keep this many spare nodes, >= 0.
    """

    target_utilization: float | None = Field(None, gt=0, le=1)
    nodes: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.target_utilization is None) == (self.nodes is None):
            raise ValueError("set exactly one of target_utilization or nodes")
        return self


class Price(_Strict):
    """USD per node-hour."""

    on_demand: PositiveFloat
    spot: PositiveFloat


class NodePoolSpec(_Strict):
    """A pool of identical GPU nodes (a Karpenter NodePool or a GKE ComputeClass).

    name:                       pool name, DNS-1035 label.
    instance_type:              cloud instance type, e.g. p4d.24xlarge.
    gpu_type:                   GPU model (default from the price table).
    gpus_per_node:              GPUs per node (default from the price table), >= 1.
    price_per_hour:             on-demand and spot USD per node-hour (default: price table).
    capacity_type:              on-demand or spot (Karpenter's ``karpenter.sh/capacity-type``).
    reservation:                a capacity reservation tried before anything else (a GKE
                                reservation name; on EKS an ODCR the GPU EC2NodeClass selects),
                                priced at on-demand; None = none.
    launch_s:                   node launch-to-ready, seconds (GPU default 180-300).
    consolidate_after_s:        an empty node is removed after this many seconds, >= 0.
    spot_interruptions_per_hour: interruption rate per spot node (estimate), >= 0.
    spot_notice_s:              warning before a spot node is reclaimed, seconds, >= 0.
    max_nodes:                  cap on nodes in the pool (NodePool ``limits``), None = no cap.
    warm_buffer:                spare nodes held by placeholder pods, None = no buffer.
    """

    name: str
    instance_type: str
    gpu_type: str = ""
    gpus_per_node: int = Field(0, ge=0)
    price_per_hour: Price | None = None
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    reservation: str | None = None
    launch_s: Range = Range(low=180.0, high=300.0)
    consolidate_after_s: NonNegFloat = 900.0
    spot_interruptions_per_hour: NonNegFloat = 0.01
    spot_notice_s: NonNegFloat = 120.0
    max_nodes: int | None = Field(None, ge=1)
    warm_buffer: WarmBuffer | None = None

    _check_name = field_validator("name")(_dns_label)

    @model_validator(mode="after")
    def _from_price_table(self) -> Self:
        needs_table = self.price_per_hour is None or not self.gpu_type or self.gpus_per_node == 0
        if not needs_table:
            return self
        try:
            row = lookup(self.instance_type)
        except PriceTableError as exc:
            raise ValueError(f"instance_type: {exc}") from None
        if self.price_per_hour is None:
            price = Price(on_demand=row.on_demand_per_hour, spot=row.spot_per_hour)
            object.__setattr__(self, "price_per_hour", price)
        if not self.gpu_type:
            object.__setattr__(self, "gpu_type", row.gpu_type)
        if self.gpus_per_node == 0:
            object.__setattr__(self, "gpus_per_node", row.gpus)
        return self

    @property
    def hourly_usd(self) -> float:
        """USD per node-hour at this pool's capacity type."""
        price = self.price_per_hour
        assert price is not None  # filled by the validator
        return price.spot if self.capacity_type == "spot" else price.on_demand


class Keda(_Strict):
    """KEDA ScaledObject timing (seconds)."""

    polling_interval_s: PositiveFloat = Field(kube.KEDA_POLLING_INTERVAL_S, alias="pollingInterval")
    cooldown_period_s: NonNegFloat = Field(kube.KEDA_COOLDOWN_PERIOD_S, alias="cooldownPeriod")


class ScalingRule(_Strict):
    """One HPA rate-limit policy: at most ``value`` Pods (or percent of current) per period."""

    type: Literal["Pods", "Percent"]
    value: int = Field(ge=1)
    period_s: int = Field(alias="periodSeconds", ge=1, le=1800)


class ScalingBehavior(_Strict):
    """HPA ``behavior.scaleUp`` or ``scaleDown``: stabilization window and rate limits."""

    stabilization_window_s: int = Field(alias="stabilizationWindowSeconds", ge=0, le=3600)
    policies: tuple[ScalingRule, ...]
    select_policy: Literal["Max", "Min", "Disabled"] = Field("Max", alias="selectPolicy")
    tolerance: float = Field(kube.HPA_TOLERANCE, ge=0)


def _default_scale_up() -> ScalingBehavior:
    return ScalingBehavior.model_validate(kube.HPA_SCALE_UP)


def _default_scale_down() -> ScalingBehavior:
    return ScalingBehavior.model_validate(kube.HPA_SCALE_DOWN)


class Hpa(_Strict):
    """The HPA controller: sync period (seconds) and behavior (Kubernetes defaults).

    The tolerance lives per direction in ``scaleUp.tolerance`` / ``scaleDown.tolerance``
    (default 0.1 each), where Kubernetes 1.35 puts it.
    """

    sync_period_s: PositiveFloat = kube.HPA_SYNC_PERIOD_S
    scale_up: ScalingBehavior = Field(default_factory=_default_scale_up, alias="scaleUp")
    scale_down: ScalingBehavior = Field(default_factory=_default_scale_down, alias="scaleDown")


class Prometheus(_Strict):
    """The Prometheus of the monitoring stack, as the online trigger reads vLLM's gauges there.

    scrape_interval_s: seconds between two scrapes of each vLLM replica's ``/metrics`` (the
                       rendered PodMonitor's ``interval``), > 0. A query sees the gauges as last
                       scraped: up to this old.
    lag_s:             further seconds before a scraped sample is visible to the trigger's
                       query, >= 0: 0 for the raw gauges the rendered trigger queries; a
                       recording rule's evaluation interval if you point it at a recorded series.
    """

    scrape_interval_s: PositiveFloat = 15.0
    lag_s: NonNegFloat = 0.0


class ControlPlane(_Strict):
    """KEDA, the HPA, and where the scaler learns how many replicas run.

    replicas_from: ``serve --replicas-from`` of the deployed scaler. ``kubernetes`` (default, as
                   the manifests deploy it): at each evaluation the policy gets the ready and
                   warming replicas of the model's Deployment at that instant, read alongside
                   the queue as the live scaler reads them (one read per evaluation, so as fresh
                   as the evaluation). ``decisions``: no counts; the policy counts on its own
                   past decisions.
    prometheus:    where the online trigger reads vLLM's gauges (``Prometheus``).
    """

    keda: Keda = Field(default_factory=lambda: Keda.model_validate({}))
    hpa: Hpa = Hpa()
    replicas_from: ReplicasFrom = "kubernetes"
    prometheus: Prometheus = Prometheus()


PolicyKind = Literal[
    "depthscale",
    "keda-native",
    "schedule",
    "hindsight-schedule",
    "trailing-schedule",
    "static-peak",
    "static",
]


class PolicySpec(_Strict):
    """A policy to compare. ``params`` are kind-specific (``simulator/policyset.py`` documents
    them); ``static`` needs ``replicas``. ``control_plane``, when set, replaces the scenario's
    KEDA/HPA settings for this policy alone: KEDA-native scaling is what a team gets with
    Kubernetes' and KEDA's defaults, not with the settings depthscale's ScaledObjects use."""

    name: str
    kind: PolicyKind
    params: dict[str, Any] = Field(default_factory=dict)
    control_plane: ControlPlane | None = None

    @model_validator(mode="after")
    def _static_replicas(self) -> Self:
        if self.kind == "static":
            replicas = self.params.get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ValueError("kind static needs params.replicas, an integer >= 0")
        return self


def kubernetes_defaults() -> ControlPlane:
    """KEDA's and the HPA's out-of-the-box timing: cooldown 300 s, tolerance 0.1, a 300 s
    scale-down window (kedacore/keda v2.20: externalscaler.proto and the metrics adapter; kubernetes pkg/controller/podautoscaler)."""
    return ControlPlane()


def depthscale_control_plane() -> ControlPlane:
    """What depthscale's ScaledObjects set (manifests/, docs/scaler.md): the policy owns the
    10-minute window, so the HPA's scale-down window is 0 and its tolerance 0 both ways (or its
    one-replica steps from 10 replicas up are swallowed), and KEDA's cooldown is short (60 s)."""
    return ControlPlane.model_validate(
        {
            "keda": {"cooldownPeriod": 60},
            "hpa": {
                "scaleUp": {**_default_scale_up().model_dump(by_alias=True), "tolerance": 0},
                "scaleDown": {
                    **_default_scale_down().model_dump(by_alias=True),
                    "stabilizationWindowSeconds": 0,
                    "tolerance": 0,
                },
            },
        }
    )


def _default_policies() -> tuple[PolicySpec, ...]:
    return (
        PolicySpec(name="depthscale", kind="depthscale"),
        PolicySpec(name="seed-rule", kind="depthscale", params={"preset": "seed"}),
        PolicySpec(name="keda-native", kind="keda-native", control_plane=kubernetes_defaults()),
        PolicySpec(name="business-hours", kind="schedule"),
        PolicySpec(name="trailing-schedule", kind="trailing-schedule"),
        PolicySpec(name="hindsight-schedule", kind="hindsight-schedule"),
        PolicySpec(name="static-peak", kind="static-peak"),
    )


class Simulation(_Strict):
    """Run options.

    duration_s:      simulate this many seconds from the trace start, None = whole trace.
    sample_every_s:  interval of the time series in the report, seconds, > 0.
    warm_start:      every policy starts with the replicas it would run at t=0, already serving
                     (schedules and static counts provisioned, reactive policies sized for the
                     opening traffic); false starts every policy cold, with no replicas or nodes.
    """

    duration_s: PositiveFloat | None = None
    sample_every_s: PositiveFloat = 60.0
    warm_start: bool = True


DEFAULT_VLLM_IMAGE = (
    "vllm/vllm-openai:v0.31.0"
    "@sha256:c1c9f6fd5c109ba7f0546a59f5b2f15fb87f64c77782e90a27b648b42a8e67c3"
)
"""vLLM's OpenAI-compatible server image, v0.31.0, pinned by its multi-architecture index digest."""


class Vllm(_Strict):
    """The serving engine every model runs: one image, so one place to upgrade or pin it.

    image: the vLLM OpenAI-compatible server image, pinned by digest (``name:tag@sha256:...``).
    """

    image: str = DEFAULT_VLLM_IMAGE


class Scenario(_Strict):
    """The whole models file. ``models`` and ``node_pools`` are YAML mappings keyed by name.

    slo_wait_s:         a request meets the SLO when its queue wait is at most this, seconds,
                        >= 0.
    slo_attainment:     a policy meets the SLO when at least this share of every model's
                        requests meets it, in (0, 1].
    target_utilization: the busy share of a replica's batch slots that capacity is sized for, in
                        (0, 1]: trace-sized baselines, the warm start and the fluid ideal.
    seed:               seed for every random draw (start-up times, spot interruptions, thinning).
    vllm:               the serving engine (its image) every model's replicas run.
    """

    version: Literal[1] = 1
    vllm: Vllm = Vllm()
    models: dict[str, ModelSpec]
    node_pools: dict[str, NodePoolSpec]
    control_plane: ControlPlane = ControlPlane()
    slo_wait_s: NonNegFloat = 30.0
    slo_attainment: float = Field(0.99, gt=0, le=1)
    target_utilization: float = Field(0.8, gt=0, le=1)
    policies: tuple[PolicySpec, ...] = Field(default_factory=_default_policies)
    seed: int = 0
    simulation: Simulation = Simulation()

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for section in ("models", "node_pools"):
            entries = data.get(section)
            if isinstance(entries, Mapping):
                data[section] = {
                    key: ({"name": key, **value} if isinstance(value, Mapping) else value)
                    for key, value in entries.items()
                }
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        if not self.models:
            raise ValueError("models: at least one model is needed")
        for key, model in self.models.items():
            if model.name != key:
                raise ValueError(f"models.{key}.name: must equal its key, got {model.name!r}")
            pool = self.node_pools.get(model.node_pool)
            if pool is None:
                known = ", ".join(self.node_pools) or "none"
                raise ValueError(
                    f"models.{key}.node_pool: unknown node pool {model.node_pool!r} (known: {known})"
                )
            if model.served_online and model.online.target_per_replica is None:
                target = max(math.floor(model.max_concurrency * self.target_utilization), 1)
                online = model.online.model_copy(update={"target_per_replica": float(target)})
                object.__setattr__(model, "online", online)
            if model.gpus_per_replica > pool.gpus_per_node:
                raise ValueError(
                    f"models.{key}.gpus_per_replica: {model.gpus_per_replica} GPUs do not fit on "
                    f"a {pool.instance_type} node ({pool.gpus_per_node} GPUs)"
                )
        for key, pool in self.node_pools.items():
            if pool.name != key:
                raise ValueError(f"node_pools.{key}.name: must equal its key, got {pool.name!r}")
        _unique("queue", [(m.name, q) for m in self.models.values() for q in m.queues])
        _unique("trace model", [(m.name, t) for m in self.models.values() for t in m.trace_models])
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError(f"policies: names must be unique, got {names}")
        return self

    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    def model_for_trace_name(self, trace_name: str) -> ModelSpec:
        """The model serving requests labelled ``trace_name`` in a trace (KeyError if none)."""
        for model in self.models.values():
            if trace_name in model.trace_models:
                return model
        raise KeyError(
            f"trace model {trace_name!r} is served by no model of the scenario "
            "(add it to a model's trace_models)"
        )

    def trace_model_index(self, trace_names: Sequence[str]) -> npt.NDArray[np.int32]:
        """For each trace model name, the index of the scenario model serving it (in ``models``
        order); KeyError naming the first unmapped name."""
        order = {name: i for i, name in enumerate(self.models)}
        return np.array(
            [order[self.model_for_trace_name(n).name] for n in trace_names], dtype=np.int32
        )


def _unique(what: str, owners: list[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for owner, value in owners:
        if value in seen and seen[value] != owner:
            raise ValueError(f"{what} {value!r} belongs to both {seen[value]} and {owner}")
        seen[value] = owner


# ---------------------------------------------------------------------------------------------
# Loading, with errors that name the file, line and key path.


def load_scenario(path: str | Path) -> Scenario:
    """Parse and validate a scenario YAML file; ``ScenarioError`` on any problem."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), None, "", f"cannot read: {exc.strerror}") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Parse and validate scenario YAML ``text``; ``file`` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(file, line, "", f"invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(file, 1, "", "the file must be a YAML mapping")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, node, file) from None


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "missing": "is required",
    "extra_forbidden": "unknown key",
}


def _first_error(exc: ValidationError, node: yaml.Node | None, file: str) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    loc = [str(part) for part in err["loc"]]
    kind = err["type"]
    template = _MESSAGES.get(kind)
    if template is not None:
        problem = template.format(**err.get("ctx", {}))
        if kind not in ("missing", "extra_forbidden"):
            problem += f", got {err['input']!r}"
    else:
        problem = err["msg"].removeprefix("Value error, ")
        # Cross-field checks name their own path ("models.x.node_pool: ...").
        head, sep, rest = problem.partition(": ")
        if sep and re.fullmatch(r"[\w.-]+", head):
            loc, problem = loc + head.split("."), rest
    line = _line_of(node, loc)
    return ScenarioError(file, line, ".".join(loc), problem)


def _line_of(node: yaml.Node | None, loc: list[str]) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (None if the file had no nodes)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == part:
                    line = key_node.start_mark.line + 1
                    child = value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML in the file's own spelling (aliases, models keyed by name)."""
    data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
    for section in ("models", "node_pools"):
        for value in data[section].values():
            value.pop("name", None)
    return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# The default scenario: what ``depthscale simulate TRACE`` uses without ``--scenario``.

DEFAULT_INSTANCE_TYPE = "a2-highgpu-1g"
"""Default node: Google Cloud a2-highgpu-1g, 1×A100 40GB, on-demand (price from the table)."""
DEFAULT_REPLICA_CONCURRENCY = 256  # vLLM's max_num_seqs: a replica is full at 256 in flight


def dns_name(trace_name: str) -> str:
    """A DNS-1035 label derived from a trace's model name (``meta-llama/Llama-3-8B`` →
    ``meta-llama-llama-3-8b``)."""
    name = re.sub(r"[^a-z0-9]+", "-", trace_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return name[:63].rstrip("-")


DEFAULT_MAX_REPLICAS = 100
"""maxReplicas of the default scenario's models, unless the trace's busiest minute needs more."""


def default_max_replicas(peak_rps: float) -> int:
    """maxReplicas for a model whose busiest minute brings ``peak_rps`` requests/second: twice
    what that minute needs at the default replica's throughput (19 req/s), at least 100. A cap
    only stops a runaway; the user's own models file sets their budget."""
    need = math.ceil(2.0 * peak_rps / ServiceModel().throughput_rps)
    return max(DEFAULT_MAX_REPLICAS, need)


def default_scenario(
    model_names: Sequence[str], peak_rps: Mapping[str, float] | None = None
) -> Scenario:
    """The documented default: every trace model served by a Llama-3-8B-class vLLM replica on one
    A100 40GB (≈19 req/s at ~200 in / ~180 out tokens, max 256 concurrent), one replica per
    on-demand a2-highgpu-1g node (1 GPU, $3.6734/h: cost follows GPU-hours, not the rounding of
    8-GPU nodes), the seed's thresholds (up above 50 pending per replica, down below 5,
    10-minute window, 5-minute warm-up), workers acking late so the scaler counts in-flight tasks
    (``includeUnacked``) against the 256 slots (``replicaConcurrency``), and the KEDA/HPA
    settings depthscale's ScaledObjects use (``depthscale_control_plane``). Compared: depthscale,
    the seed's rule as first stated, KEDA-native on Kubernetes defaults, business hours, the
    trailing schedule (sized from the previous week), the hindsight schedule and static peak.
    """
    if not model_names:
        raise ValueError("default_scenario needs at least one model name")
    models: dict[str, Any] = {}
    for trace_name in model_names:
        name = dns_name(trace_name)
        if name in models:
            name = dns_name(f"{name}-{len(models)}")
        models[name] = {
            "served_model": trace_name,
            "trace_models": [trace_name],
            "node_pool": "a100",
            "gpus_per_replica": 1,
            "policy": {
                "includeUnacked": True,
                "replicaConcurrency": DEFAULT_REPLICA_CONCURRENCY,
                "maxReplicas": default_max_replicas((peak_rps or {}).get(trace_name, 0.0)),
            },
        }
    return Scenario.model_validate(
        {
            "models": models,
            "node_pools": {"a100": {"instance_type": DEFAULT_INSTANCE_TYPE}},
            "control_plane": depthscale_control_plane().model_dump(by_alias=True),
        }
    )
