"""Online traffic: the models file's ``online`` block, what each side sees of a mixed queue, the
HPA's max over its metrics, and a run where only the prometheus trigger keeps online requests
within the SLO."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine import EngineError, run
from simulator.engine.hpa import HpaController, HpaSpec
from simulator.engine.online import MixedQueue, Scrapes
from simulator.engine.setup import plan
from simulator.scenario import Scenario, ScenarioError, default_scenario, parse_scenario
from simulator.traces.bins import bins_from_trace
from simulator.traces.trace import Trace
from tests.simulator.engine_support import one_model_trace, scenario

MODELS = """
models:
  m:
    served_model: m
    node_pool: p
    max_concurrency: 64
{online}
    policy:
{policy}
node_pools:
  p: {{instance_type: g6.xlarge}}
"""


def _file(online: str = "", policy: str = "      maxReplicas: 4") -> str:
    return MODELS.format(online=online, policy=policy)


# ---- the models file ------------------------------------------------------------------------


@given(share=st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
@settings(max_examples=40, deadline=None)
def test_any_share_in_zero_to_one_is_taken(share: float) -> None:
    parsed = parse_scenario(_file(f"    online: {{share: {share!r}}}"))
    model = parsed.models["m"]
    assert model.online.share == share
    assert model.served_online == (share > 0)
    # Online models keep a replica: the gateway cannot wake one at zero.
    assert model.policy.to_policy_config().min_replicas == (1 if share > 0 else 0)


@given(
    share=st.one_of(
        st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
        st.floats(min_value=1.0 + 1e-9, allow_nan=False, allow_infinity=False),
    )
)
@settings(max_examples=40, deadline=None)
def test_a_share_outside_zero_to_one_is_refused_by_name(share: float) -> None:
    text = _file(f"    online: {{share: {share!r}}}")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "models.yaml")
    assert caught.value.path == "models.m.online.share"
    line = caught.value.line
    assert line is not None
    assert text.splitlines()[line - 1].strip().startswith("online:")


@pytest.mark.parametrize(
    ("online", "path"),
    [
        ("    online: {share: 0.5, target_per_replica: 0}", "models.m.online.target_per_replica"),
        ("    online: {share: 0.5, shared: 0.1}", "models.m.online.shared"),
        ("    online: {share: yes please}", "models.m.online.share"),
    ],
)
def test_a_bad_online_block_names_its_field(online: str, path: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_file(online), "models.yaml")
    assert caught.value.path == path


def test_an_online_model_may_not_ask_for_zero_replicas() -> None:
    text = _file("    online: {share: 0.2}", "      minReplicas: 0")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "models.yaml")
    assert caught.value.path == "models.m.policy.minReplicas"
    assert "gateway" in caught.value.problem


def test_the_target_defaults_to_the_slots_at_the_target_utilization() -> None:
    # 64 slots at the default target utilization 0.8: 51.2, rounded down.
    parsed = parse_scenario(_file("    online: {share: 0.2}"))
    assert parsed.models["m"].online.target_per_replica == 51
    explicit = parse_scenario(_file("    online: {share: 0.2, target_per_replica: 40}"))
    assert explicit.models["m"].online.target_per_replica == 40
    # A higher minReplicas stays as written.
    kept = parse_scenario(_file("    online: {share: 0.2}", "      minReplicas: 3"))
    assert kept.models["m"].policy.to_policy_config().min_replicas == 3


def test_the_aggregated_engine_refuses_an_online_share() -> None:
    trace = one_model_trace(np.arange(0.0, 60.0), 1.0)
    online = scenario(policy={"maxReplicas": 2})
    data = online.model_dump(by_alias=True, exclude_none=True)
    data["models"]["m"]["online"] = {"share": 0.5}
    data["models"]["m"]["policy"].pop("minReplicas", None)
    with pytest.raises(EngineError, match=r"^models\.m\.online\.share: the aggregated engine"):
        plan(bins_from_trace(trace, 1.0), Scenario.model_validate(data))


# ---- what each side sees --------------------------------------------------------------------


@given(
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=60),
    services=st.lists(st.floats(0.1, 20.0), min_size=60, max_size=60),
    online=st.lists(st.booleans(), min_size=60, max_size=60),
    concurrency=st.integers(1, 4),
    replicas=st.integers(1, 3),
    at=st.floats(0.0, 120.0),
)
@settings(max_examples=80, deadline=None)
def test_counts_split_the_queue_by_who_sees_it(
    gaps: list[float],
    services: list[float],
    online: list[bool],
    concurrency: int,
    replicas: int,
    at: float,
) -> None:
    n = len(gaps)
    arrival = np.cumsum(gaps)
    service = np.array(services[:n])
    mask = np.array(online[:n])
    queue = MixedQueue(arrival, service, concurrency, mask)
    for _ in range(replicas):
        queue.add_replica(0.0)
    queue.advance(at)
    seen = queue.counts(at)
    # Independent oracle: per request, from its arrival, start and service alone.
    start = queue.start_times()
    started = ~np.isnan(start)
    arrived = arrival < at
    running = started & (start <= at) & (start + service > at)
    assert seen.pending == int(np.sum(arrived & ~started & ~mask))
    assert seen.waiting == int(np.sum(arrived & ~started & mask))
    assert seen.in_flight == int(np.sum(running & ~mask))
    assert seen.running == int(np.sum(running))
    assert seen.running == queue.in_flight(at)  # the slots' own count agrees
    assert seen.gauges == seen.running + seen.waiting


def test_a_held_query_sees_the_highest_scrape_of_its_window() -> None:
    # Scrapes every 15 s at 7.5 s past; the query holds 60 s, no lag.
    scrapes = Scrapes(lag_s=0.0, hold_s=60.0)
    for at, value in [(7.5, 5.0), (22.5, 50.0), (37.5, 20.0), (52.5, 10.0), (67.5, 10.0)]:
        scrapes.record(at, value)
    assert scrapes.seen(70.0) == 50.0  # 22.5 s is within the last minute
    # At 90 s the window (30, 90] opens with the 22.5 s scrape still in effect (until 37.5 s).
    assert scrapes.seen(90.0) == 50.0
    # At 100 s the window (40, 100] opens under the 37.5 s scrape: 20.
    assert scrapes.seen(100.0) == 20.0
    scrapes.record(82.5, 80.0)
    assert scrapes.seen(82.5) == 20.0  # not yet in at its own instant
    assert scrapes.seen(83.0) == 80.0  # up at once


def test_a_query_sees_the_last_scrape_before_it_and_its_lag() -> None:
    scrapes = Scrapes(lag_s=5.0)
    assert scrapes.seen(100.0) is None  # nothing scraped yet: KEDA reads no value
    scrapes.record(7.5, 10.0)
    scrapes.record(22.5, 30.0)
    # 12.5 s after the first scrape, lag 5 s: the first is in.
    assert scrapes.seen(12.5 + 0.01) == 10.0
    assert scrapes.seen(12.5) is None  # exactly at the lag's end: not yet
    # The second scrape shows from 27.5 s on.
    assert scrapes.seen(27.5) == 10.0
    assert scrapes.seen(30.0) == 30.0


# ---- the HPA's max over its metrics ---------------------------------------------------------


def _oracle(current: int, metrics: list[tuple[float, float]], tolerance: float) -> int:
    """kubernetes pkg/controller/podautoscaler, written from the source: for each External
    AverageValue metric, GetExternalPerPodMetricReplicas (usage and target as milli-quantities;
    ratio = usage / (target × current); within the tolerance keep ``current``, else
    ceil(usage / target)); then computeReplicasForMetrics keeps the largest proposal."""
    replicas = 0
    for usage, target in metrics:
        # KEDA hands the HPA resource.Quantity values; the HPA reads them as MilliValue().
        usage_m = int(usage * 1000)
        target_m = int(target * 1000)
        ratio = usage_m / (target_m * current)
        proposal = current if abs(ratio - 1.0) <= tolerance else math.ceil(usage_m / target_m)
        if replicas == 0 or proposal > replicas:
            replicas = proposal
    return replicas


@given(
    current=st.integers(1, 50),
    metrics=st.lists(
        st.tuples(st.floats(0.0, 20_000.0), st.sampled_from([1.0, 51.0, 204.0, 0.5])),
        min_size=1,
        max_size=3,
    ),
    tolerance=st.sampled_from([0.0, 0.1]),
)
@settings(max_examples=200, deadline=None)
def test_the_hpa_takes_the_largest_proposal_of_its_metrics(
    current: int, metrics: list[tuple[float, float]], tolerance: float
) -> None:
    from simulator.engine.hpa import DEFAULT_DOWN, DEFAULT_UP, Direction

    up = Direction(DEFAULT_UP.window_s, DEFAULT_UP.rules, tolerance=tolerance)
    down = Direction(DEFAULT_DOWN.window_s, DEFAULT_DOWN.rules, tolerance=tolerance)
    hpa = HpaController(HpaSpec(1, 10_000_000, up, down))
    (usage, target), *others = metrics
    step = hpa.sync(0.0, current, usage, target, others)
    assert step.proposal == _oracle(current, metrics, tolerance)


# ---- a run ----------------------------------------------------------------------------------


def _ramp_trace(seed: int = 1) -> Trace:
    """Three hours: 10 requests/s, up to 40 over half an hour, 40 min there, back down."""
    rng = np.random.default_rng(seed)
    span = 3 * 3600
    rate = np.interp(np.arange(span), [0, 1800, 3600, 6000, 7800, span], [10, 10, 40, 40, 10, 10])
    counts = rng.poisson(rate)
    arrival = np.concatenate([np.sort(rng.uniform(i, i + 1, c)) for i, c in enumerate(counts)])
    tokens = np.full(arrival.size, 200, dtype=np.int32), np.full(arrival.size, 180, np.int32)
    return Trace(
        arrival_s=arrival,
        model=np.zeros(arrival.size, dtype=np.int32),
        models=("m",),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
    )


def _online_scenario(share: float, trigger: bool) -> Scenario:
    """The default scenario (A100 replicas, 256 slots, 19 req/s each) with ``share`` online."""
    data: dict[str, Any] = default_scenario(["m"]).model_dump(by_alias=True, exclude_none=True)
    model = data["models"]["m"]
    model["online"] = {"share": share, "trigger": trigger}
    model["policy"].pop("minReplicas", None)
    data["policies"] = [{"name": "depthscale", "kind": "depthscale"}]
    return Scenario.model_validate(data)


@pytest.fixture(scope="module")
def ramp() -> Trace:
    return _ramp_trace()


def test_online_requests_meet_the_slo_only_with_the_prometheus_trigger(ramp: Trace) -> None:
    # 60 % of the traffic online. With the trigger the HPA sees vLLM's gauges and sizes for all
    # the work; without it the policy sizes for the Celery 40 % (plus what backs up in the
    # broker), and the online requests queue inside vLLM.
    with_trigger = run(ramp, _online_scenario(0.6, trigger=True)).policies[0]
    without = run(ramp, _online_scenario(0.6, trigger=False)).policies[0]
    seen = with_trigger.routes["m"]["online"]
    blind = without.routes["m"]["online"]
    assert seen.requests == blind.requests > 0.55 * len(ramp)
    assert seen.slo_attainment >= 0.99
    assert with_trigger.routes["m"]["celery"].slo_attainment >= 0.99
    assert blind.slo_attainment < 0.95
    assert blind.wait_s.p99 > 30.0


def test_a_model_served_only_online_is_sized_by_the_trigger_alone(ramp: Trace) -> None:
    # Every request online: the scaler sees nothing at all and asks for its minimum.
    with_trigger = run(ramp, _online_scenario(1.0, trigger=True)).policies[0]
    without = run(ramp, _online_scenario(1.0, trigger=False)).policies[0]
    assert with_trigger.routes["m"]["celery"].requests == 0
    assert with_trigger.routes["m"]["online"].slo_attainment >= 0.99
    assert without.routes["m"]["online"].slo_attainment < 0.5
    # Without the trigger the one replica minReplicas keeps is all there is: at 40 requests/s
    # against 19 per replica, the queue never drains.
    assert without.series["m"].replicas_desired.max() == 1


def test_the_report_gives_each_routes_waits(ramp: Trace) -> None:
    from simulator.report.markdown import render_markdown
    from simulator.report.summary import report_document

    result = run(ramp, _online_scenario(0.3, trigger=False))
    model = report_document(result)["policies"]["depthscale"]["models"]["m"]
    routes = model["routes"]
    assert set(routes) == {"celery", "online"}
    assert routes["celery"]["requests"] + routes["online"]["requests"] == model["requests"]
    assert 0.25 < routes["online"]["requests"] / model["requests"] < 0.35
    # The model's attainment is the two routes' weighted together.
    weighted = sum(r["slo_attainment"] * r["requests"] for r in routes.values())
    assert weighted / model["requests"] == pytest.approx(model["slo_attainment"], abs=1e-9)
    online = routes["online"]
    assert f"online {100 * online['slo_attainment']:.1f}% within the SLO" in render_markdown(result)
