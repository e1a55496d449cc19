"""The tuner's pure parts: the search space, sampling, the frontier, successive halving's
bookkeeping, and how a setting lands in the models' policy blocks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.scenario import PolicySpec, Scenario, default_scenario
from simulator.traces.bins import ArrivalBins, LengthMix
from simulator.traces.synth import DAY_S
from simulator.traces.trace import build_trace
from simulator.tune import (
    DOWN_PER_UP,
    MIN_FINAL,
    SPACE,
    Candidate,
    Score,
    TuneError,
    apply,
    cheapest_meeting,
    dominates,
    frontier,
    horizons,
    layers,
    policy_keys,
    prefix,
    rung_sizes,
    sample,
    search_with,
    space,
    survivors,
    tuned_entry,
)


def score(index: int, cost: float, attainment: float, p95: float, meets: bool) -> Score:
    return Score(index, 1.0, cost, 1.0, attainment, p95, 0, 0, meets)


scores_strategy = st.lists(
    st.tuples(
        st.integers(1, 20).map(float),
        st.sampled_from([0.9, 0.95, 0.99, 1.0]),
        st.integers(0, 5).map(float),
    ),
    min_size=1,
    max_size=25,
).map(lambda rows: [score(i, c, a, p, a >= 0.99) for i, (c, a, p) in enumerate(rows)])


# --- the frontier -----------------------------------------------------------------------------


@given(scores_strategy)
def test_frontier_holds_exactly_the_undominated(scores: list[Score]) -> None:
    front = frontier(scores)
    members = {s.index for s in front}
    for s in scores:
        beaten = any(dominates(o, s) for o in scores)
        assert (s.index in members) == (not beaten)
    assert [s.cost_usd for s in front] == sorted(s.cost_usd for s in front)


def test_dominance_needs_one_strict_improvement() -> None:
    a = score(0, 10, 0.99, 3, True)
    assert not dominates(a, a)
    assert dominates(score(1, 9, 0.99, 3, True), a)  # cheaper, otherwise equal
    assert dominates(score(2, 10, 0.995, 3, True), a)  # more requests within the SLO
    assert dominates(score(3, 10, 0.99, 2, True), a)  # shorter p95 wait
    assert not dominates(score(4, 9, 0.98, 3, False), a)  # cheaper but worse attainment


@given(scores_strategy)
def test_layers_order_every_score_once_frontier_first(scores: list[Score]) -> None:
    order = layers(scores)
    assert sorted(s.index for s in order) == sorted(s.index for s in scores)
    assert order[: len(frontier(scores))] == frontier(scores)


@given(scores_strategy)
def test_cheapest_meeting_is_the_cheapest_of_those_meeting(scores: list[Score]) -> None:
    best = cheapest_meeting(scores)
    meeting = [s for s in scores if s.meets]
    if not meeting:
        assert best is None
    else:
        assert best is not None
        assert best.meets
        assert best.cost_usd == min(s.cost_usd for s in meeting)


@given(scores_strategy, st.integers(1, 30))
def test_survivors_keep_the_cheapest_meeting_and_the_frontier_head(
    scores: list[Score], keep: int
) -> None:
    kept = survivors(scores, keep)
    assert len(kept) == min(keep, len(scores)) == len(set(kept))
    best = cheapest_meeting(scores)
    if best is not None:
        cheapest = [s.index for s in scores if s.meets and s.cost_usd == best.cost_usd]
        assert kept[0] in cheapest
    if keep >= 2 and len(scores) >= 2:
        assert {s.index for s in frontier(scores)} & set(kept)


# --- successive halving's schedule --------------------------------------------------------------


@given(st.floats(60.0, 40 * DAY_S))
def test_horizons_grow_to_the_whole_trace_and_never_below_a_day(duration: float) -> None:
    spans = horizons(duration)
    assert spans[-1] == pytest.approx(duration)
    assert spans == sorted(spans)
    assert all(h >= min(duration, DAY_S) - 1e-9 for h in spans)


def test_fourteen_days_run_on_a_ninth_then_a_third() -> None:
    spans = horizons(14 * DAY_S)
    assert spans == pytest.approx([14 * DAY_S / 9, 14 * DAY_S / 3, 14 * DAY_S])


@given(st.integers(0, 500))
def test_rung_sizes_shrink_by_a_third_down_to_the_minimum(sampled: int) -> None:
    sizes = rung_sizes(sampled)
    assert sizes[0] == sampled
    assert all(b <= a for a, b in itertools.pairwise(sizes))
    assert all(b >= min(a, MIN_FINAL) for a, b in itertools.pairwise(sizes))
    assert all(b <= max(MIN_FINAL, math.ceil(a / 3)) for a, b in itertools.pairwise(sizes))


# --- the space, sampling, and applying a setting ------------------------------------------------


def scenario(**policy: object) -> Scenario:
    base = default_scenario(["chat"])
    data = base.model_dump(by_alias=True)
    data["models"]["chat"]["policy"].update(policy)
    data["models"]["chat"]["max_concurrency"] = 100
    return Scenario.model_validate(data)


def test_space_is_read_from_the_policy_block() -> None:
    keys = policy_keys()
    assert {"replicaConcurrency", "scaleUpFactor", "stabilizationWindowSeconds"} <= keys
    assert all(k.key in keys for k in space())
    assert [k.key for k in space()] == [k.key for k in SPACE if k.key in keys]


def test_samples_are_seeded_distinct_and_start_with_the_scenario_own() -> None:
    sc = scenario()
    first, again, other = sample(sc, 30, 7), sample(sc, 30, 7), sample(sc, 30, 8)
    assert first == again
    assert first != other
    assert first[0] == Candidate(0)
    assert len(first) == 30
    assert [c.index for c in first] == list(range(30))
    assert len({c.values for c in first}) == 30
    allowed = {k.key: set(k.values) for k in space()}
    for c in first[1:]:
        assert {k for k, _ in c.values} == set(allowed)
        assert all(v in allowed[k] for k, v in c.values)


def test_samples_skip_settings_a_model_refuses() -> None:
    # maxReplicas 2 leaves room for at most one buffer replica.
    sc = scenario(maxReplicas=2)
    for c in sample(sc, 40, 0)[1:]:
        assert dict(c.values)["bufferReplicas"] <= 1


def test_overrides_scale_concurrency_and_set_the_down_threshold() -> None:
    c = Candidate(
        3, (("replicaConcurrency", 0.7), ("scaleUpPending", 25.0), ("bufferReplicas", 1.0))
    )
    assert c.overrides(256) == {
        "replicaConcurrency": 179,
        "scaleUpPending": 25.0,
        "scaleDownPending": 25.0 * DOWN_PER_UP,
        "bufferReplicas": 1,
    }
    assert isinstance(c.overrides(256)["bufferReplicas"], int)


def test_apply_moves_the_entry_params_into_every_policy_block() -> None:
    data = default_scenario(["chat", "code"]).model_dump(by_alias=True)
    data["policies"] = [
        {"name": "seedy", "kind": "depthscale", "params": {"preset": "seed"}},
        {"name": "depthscale", "kind": "depthscale", "params": {"scaleUpPending": 80}},
        {"name": "peak", "kind": "static-peak"},
    ]
    data["models"]["code"]["max_concurrency"] = 64
    sc = Scenario.model_validate(data)
    tuned = apply(sc, Candidate(1, (("replicaConcurrency", 0.5), ("lookaheadSeconds", 0.0))))
    assert tuned_entry(tuned).name == "depthscale"
    assert [p.params for p in tuned.policies] == [{"preset": "seed"}, {}, {}]
    chat = tuned.models["chat"]
    assert chat.policy.to_policy_config().scale_up_pending == 80
    assert chat.policy.to_policy_config().lookahead_s == 0
    assert chat.policy.to_policy_config().replica_concurrency == 128
    assert tuned.models["code"].policy.to_policy_config().replica_concurrency == 32
    assert sc.models["code"].policy.replica_concurrency == 256  # the input is left alone


def test_apply_adds_an_entry_when_the_scenario_has_none() -> None:
    sc = scenario().model_copy(update={"policies": (PolicySpec(name="peak", kind="static-peak"),)})
    tuned = apply(sc, Candidate(0))
    assert [p.name for p in tuned.policies] == ["peak", "depthscale"]


def test_apply_names_the_model_a_bad_setting_breaks() -> None:
    sc = scenario(maxReplicas=1)
    with pytest.raises(TuneError, match=r"models\.chat\.policy: .*bufferReplicas"):
        apply(sc, Candidate(1, (("bufferReplicas", 2.0),)))


# --- prefixes -----------------------------------------------------------------------------------


def test_prefix_of_requests_and_of_bins() -> None:
    arrivals = np.array([0.5, 10.0, 99.0, 100.0, 250.0])
    tokens = np.full(5, 10, np.int32)
    trace = build_trace(arrivals, np.zeros(5, np.int32), ["m"], tokens, tokens)
    cut = prefix(trace, 100.0)
    assert list(cut.arrival_s) == [0.5, 10.0, 99.0]
    assert prefix(trace, 1e9) is trace
    counts = np.arange(12, dtype=np.float64).reshape(1, 12)
    mix = LengthMix(3600.0, np.ones((1, 1), np.int32), np.ones((1, 1), np.int32))
    bins = ArrivalBins(("m",), counts, (mix,))
    assert list(prefix(bins, 5.0).counts[0]) == [0, 1, 2, 3, 4]
    assert list(prefix(bins, 4.5).counts[0]) == [0, 1, 2, 3, 4]


# --- successive halving with a stand-in for the engine ------------------------------------------


def fake_scores(tasks: Sequence[tuple[Candidate, float]], done: Callable[[], None]) -> list[Score]:
    """A made-up but deterministic landscape: bigger scale-up steps cost more and wait less,
    longer windows launch fewer nodes."""
    out = []
    for candidate, horizon in tasks:
        values = dict(candidate.values) or {"scaleUpFactor": 2.0, "stabilizationWindowSeconds": 600}
        factor, window_s = values["scaleUpFactor"], values["stabilizationWindowSeconds"]
        cost = horizon / 3600 * (10 + factor + 1000 / window_s) + candidate.index * 1e-6
        attainment = min(1.0, 0.97 + 0.01 * factor)
        out.append(
            Score(
                candidate.index,
                horizon,
                cost,
                cost / 2,
                attainment,
                60 / factor,
                0,
                0,
                attainment >= 0.99,
                launch_rate=600 / window_s,
            )
        )
        done()
    return out


def two_weeks() -> ArrivalBins:
    mix = LengthMix(3600.0, np.ones((1, 1), np.int32), np.ones((1, 1), np.int32))
    return ArrivalBins(("chat",), np.ones((1, int(14 * DAY_S))), (mix,))


def test_halving_scores_fewer_on_longer_prefixes_and_chooses_from_the_whole_trace() -> None:
    calls: list[tuple[int, int]] = []
    outcome = search_with(
        fake_scores, two_weeks(), scenario(), 30, lambda d, t: calls.append((d, t))
    )
    assert [n for _, n in outcome.rungs] == [30, 11, 5]  # 29 sampled -> 10 -> 4, plus the own
    assert [h for h, _ in outcome.rungs] == pytest.approx(horizons(14 * DAY_S))
    assert calls[-1][0] == calls[-1][1] == 30 + 11 + 5
    assert all(s.horizon_s == pytest.approx(14 * DAY_S) for s in outcome.full)
    assert 0 in {s.index for s in outcome.full}
    assert outcome.chosen == cheapest_meeting(outcome.full)
    assert outcome.frontier == frontier(outcome.full)


def test_a_launch_limit_rules_out_settings_that_launch_more() -> None:
    free = search_with(fake_scores, two_weeks(), scenario(), 30)
    assert free.chosen is not None
    limit = free.chosen.launch_rate - 1e-9
    bound = search_with(fake_scores, two_weeks(), scenario(), 30, None, limit)
    assert bound.max_launch_rate == limit
    assert all(s.launch_rate <= limit for s in bound.full if s.meets)
    assert bound.chosen is None or bound.chosen.launch_rate <= limit
    assert bound.chosen != free.chosen
