"""``depthscale tune``: search the depthscale policy's knobs on a trace, score each setting with
the simulation engine, and keep the cost-versus-SLO frontier.

The search is successive halving (Jamieson and Talwalkar, "Non-stochastic Best Arm
Identification and Hyperparameter Optimization", AISTATS 2016) over a seeded random sample of
``SPACE``: every candidate is scored on a prefix of the trace, the best third goes on to a
prefix three times longer, and so on up to the whole trace. Only whole-trace scores make the
frontier and the recommendation, so what is printed is what ``depthscale simulate`` of the
written models file reports.

A candidate is a set of overrides of the models' ``policy:`` blocks, in the ScaledObject
metadata spelling, applied to every model of the scenario alike (``replicaConcurrency`` as a
fraction of each model's ``max_concurrency``). Candidates run in worker processes (one trace
copy each, inherited at fork); the result does not depend on how many.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from policies.queue_depth import QueueDepthPolicy
from simulator.report.verdict import meets_slo
from simulator.scenario import PolicySpec, PolicyThresholds, Scenario
from simulator.traces.bins import ArrivalBins
from simulator.traces.synth import DAY_S
from simulator.traces.trace import Trace
from simulator.traces.transform import window

Data = Trace | ArrivalBins


@dataclass(frozen=True, slots=True)
class Knob:
    """One searched key of the ``policy:`` block.

    key:     the ScaledObject metadata key (``PolicyThresholds`` alias).
    values:  the values tried; for ``replicaConcurrency`` fractions of ``max_concurrency``.
    integer: the key takes whole numbers.
    meaning: one line for the report and docs.
    """

    key: str
    values: tuple[float, ...]
    meaning: str
    integer: bool = False


SPACE: tuple[Knob, ...] = (
    Knob(
        "replicaConcurrency",
        (0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        "tasks one replica carries, as a fraction of the model's max_concurrency",
        integer=True,
    ),
    Knob(
        "stabilizationWindowSeconds",
        (180.0, 300.0, 600.0, 900.0),
        "seconds the low condition holds before a scale-down step",
    ),
    Knob("growthWindowSeconds", (60.0, 120.0, 300.0), "seconds the load is averaged over"),
    Knob("bufferReplicas", (0.0, 1.0, 2.0), "warm spare replicas while active", integer=True),
    Knob("scaleUpFactor", (1.5, 2.0, 3.0, 4.0), "largest scale-up step, times the ready replicas"),
    Knob("headroom", (0.0, 0.1, 0.15, 0.25), "spare capacity for ramps, share of the load"),
    Knob(
        "seasonalFraction",
        (0.0, 0.5, 0.8, 1.0),
        "share of the load the same time of earlier hours and days carried, kept as a floor",
    ),
)
"""Every knob the tuner may search; ``space()`` keeps those the policy block has."""

DOWN_PER_UP = 0.1
"""``scaleDownPending`` set with each ``scaleUpPending`` tried (the presets' 5 for 50)."""


def policy_keys() -> frozenset[str]:
    """The ``policy:`` block's keys (ScaledObject metadata spelling), read from the model."""
    return frozenset(f.alias or name for name, f in PolicyThresholds.model_fields.items())


def space() -> tuple[Knob, ...]:
    """The knobs of ``SPACE`` the policy block accepts (read at run time)."""
    keys = policy_keys()
    return tuple(k for k in SPACE if k.key in keys)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One setting: ``index`` (0 is the scenario's own, unchanged) and knob key -> value."""

    index: int
    values: tuple[tuple[str, float], ...] = ()

    def overrides(self, max_concurrency: int) -> dict[str, Any]:
        """Policy-block keys for a model with ``max_concurrency`` batch slots per replica."""
        integer = {k.key for k in SPACE if k.integer}
        out: dict[str, Any] = {}
        for key, value in self.values:
            if key == "replicaConcurrency":
                out[key] = max(1, round(value * max_concurrency))
            elif key in integer:
                out[key] = round(value)
            else:
                out[key] = float(value)
            if key == "scaleUpPending":
                out["scaleDownPending"] = float(value) * DOWN_PER_UP
        return out

    def label(self) -> str:
        if not self.values:
            return "as configured"
        return ", ".join(f"{k}={v:g}" for k, v in self.values)


class TuneError(ValueError):
    """The scenario cannot be tuned; the message names the key at fault."""


def tuned_entry(scenario: Scenario) -> PolicySpec:
    """The depthscale policy entry being tuned: the one named ``depthscale``, else the first of
    kind depthscale, else a new plain entry of that name."""
    kinds = [p for p in scenario.policies if p.kind == "depthscale"]
    named = [p for p in kinds if p.name == "depthscale"]
    if named or kinds:
        return (named or kinds)[0]
    return PolicySpec(name="depthscale", kind="depthscale")


def apply(scenario: Scenario, candidate: Candidate) -> Scenario:
    """``scenario`` with ``candidate`` in every model's ``policy:`` block. The tuned entry's own
    params move into the block too (and leave the entry), so the policy block alone says what
    runs; the entry is added if the scenario had none. ``TuneError`` when a model refuses."""
    entry = tuned_entry(scenario)
    models = {}
    for name, model in scenario.models.items():
        merged = {
            **model.policy.model_dump(by_alias=True, exclude_none=True),
            **entry.params,
            **candidate.overrides(model.max_concurrency),
        }
        try:
            policy = PolicyThresholds.model_validate(merged)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise TuneError(f"models.{name}.policy: {problem}") from None
        models[name] = model.model_copy(update={"policy": policy})
    plain = entry.model_copy(update={"params": {}})
    policies = tuple(plain if p.name == entry.name else p for p in scenario.policies)
    if entry.name not in {p.name for p in scenario.policies}:
        policies = (*policies, plain)
    return scenario.model_copy(update={"models": models, "policies": policies})


def sample(scenario: Scenario, budget: int, seed: int) -> list[Candidate]:
    """The scenario's own setting, then up to ``budget - 1`` distinct settings drawn uniformly
    from ``space()`` with ``seed``; settings a model refuses (e.g. more buffer replicas than
    ``maxReplicas`` allows) are skipped."""
    knobs = space()
    rng = np.random.default_rng(seed)
    out = [Candidate(0)]
    seen: set[tuple[tuple[str, float], ...]] = set()
    tries = 0
    while len(out) < budget and tries < 50 * budget:
        tries += 1
        values = tuple((k.key, k.values[int(rng.integers(len(k.values)))]) for k in knobs)
        if values in seen:
            continue
        seen.add(values)
        candidate = Candidate(len(out), values)
        try:
            apply(scenario, candidate)
        except TuneError:
            continue
        out.append(candidate)
    return out


@dataclass(frozen=True, slots=True)
class Score:
    """One candidate's run over the first ``horizon_s`` seconds of the trace.

    cost_usd:      node cost, USD.
    ideal_usd:     the fluid ideal of the same traffic, USD (0 when not computed).
    attainment:    the worst model's share of requests waiting <= the SLO, 0..1.
    p95_wait_s:    95th percentile queue wait over all requests, seconds.
    node_launches: GPU nodes launched; scale_events: HPA target changes.
    meets:         the target is met: every model met the SLO attainment (and, when the search
                   sets one, the launch rate is within its limit).
    launch_rate:   GPU node launches per model per hour, on average over the horizon.
    """

    index: int
    horizon_s: float
    cost_usd: float
    ideal_usd: float
    attainment: float
    p95_wait_s: float
    node_launches: int
    scale_events: int
    meets: bool
    launch_rate: float = 0.0

    @property
    def times_ideal(self) -> float | None:
        return self.cost_usd / self.ideal_usd if self.ideal_usd > 0 else None


def prefix(data: Data, horizon_s: float) -> Data:
    """The first ``horizon_s`` seconds of the traffic (all of it when that is longer)."""
    if horizon_s >= data.duration_s:
        return data
    if isinstance(data, ArrivalBins):
        bins = math.ceil(horizon_s / data.bin_s - 1e-9)
        return dataclasses.replace(data, counts=np.ascontiguousarray(data.counts[:, :bins]))
    return window(data, 0.0, horizon_s)


def evaluate(data: Data, scenario: Scenario, candidate: Candidate, horizon_s: float) -> Score:
    """Run ``candidate`` over the first ``horizon_s`` seconds, as ``depthscale simulate`` runs
    the tuned entry of the written models file."""
    from simulator.engine import run  # the compiled engine loads only when a run starts

    tuned = apply(scenario, candidate)
    name = tuned_entry(tuned).name
    objects: dict[str, Any] = {
        m: QueueDepthPolicy(model.policy.to_policy_config(), label=name)
        for m, model in tuned.models.items()
    }
    result = run(prefix(data, horizon_s), tuned, [(name, "depthscale", objects)])
    policy = result.policies[0]
    shares = [t.slo_attainment for t in policy.per_model.values()] or [policy.total.slo_attainment]
    return Score(
        index=candidate.index,
        horizon_s=horizon_s,
        cost_usd=policy.total.cost_usd,
        ideal_usd=sum(result.ideal_cost_usd.values()),
        attainment=min(shares),
        p95_wait_s=policy.total.wait_s.p95,
        node_launches=policy.total.node_launches,
        scale_events=policy.total.scale_events,
        meets=meets_slo(policy, scenario.slo_attainment),
        launch_rate=policy.total.node_launches / len(tuned.models) / (horizon_s / 3600.0),
    )


# --- workers ------------------------------------------------------------------------------------

_WORKER: tuple[Data, Scenario] | None = None


def _init_worker(data: Data, scenario: Scenario) -> None:
    global _WORKER
    _WORKER = (data, scenario)


def _evaluate_task(task: tuple[Candidate, float]) -> Score:
    assert _WORKER is not None, "worker not initialised"
    return evaluate(_WORKER[0], _WORKER[1], *task)


Evaluate = Callable[[Sequence[tuple[Candidate, float]], Callable[[], None]], list[Score]]


@contextmanager
def evaluator(data: Data, scenario: Scenario, workers: int) -> Iterator[Evaluate]:
    """A function scoring (candidate, horizon) tasks in order, calling ``done()`` after each.
    ``workers`` > 1: that many processes, forked where the platform can (the trace is inherited,
    not copied), else spawned with a pickled copy each."""
    if workers <= 1:

        def serial(
            tasks: Sequence[tuple[Candidate, float]], done: Callable[[], None]
        ) -> list[Score]:
            out = []
            for candidate, horizon_s in tasks:
                out.append(evaluate(data, scenario, candidate, horizon_s))
                done()
            return out

        yield serial
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Pool(workers, initializer=_init_worker, initargs=(data, scenario)) as pool:

        def parallel(
            tasks: Sequence[tuple[Candidate, float]], done: Callable[[], None]
        ) -> list[Score]:
            out = []
            for score in pool.imap(_evaluate_task, tasks):
                out.append(score)
                done()
            return out

        yield parallel


# --- the search ---------------------------------------------------------------------------------

ETA = 3
"""Successive halving keeps a third of the candidates at each rung."""
RUNGS = 3
"""Rungs of successive halving; the last runs the whole trace."""
MIN_FINAL = 4
"""Candidates (besides the scenario's own) that reach the whole trace, at least."""


def horizons(duration_s: float, rungs: int = RUNGS, eta: int = ETA) -> list[float]:
    """Trace prefix per rung, seconds: the whole trace divided by ``eta`` per rung below the
    last, never shorter than a day (or the whole of a shorter trace)."""
    floor = min(duration_s, DAY_S)
    return [max(duration_s / eta ** (rungs - 1 - r), floor) for r in range(rungs)]


def rung_sizes(sampled: int, rungs: int = RUNGS, eta: int = ETA) -> list[int]:
    """Sampled candidates scored per rung (the scenario's own setting comes on top)."""
    sizes = [sampled]
    for _ in range(rungs - 1):
        sizes.append(min(sizes[-1], max(MIN_FINAL, math.ceil(sizes[-1] / eta))))
    return sizes


def feasible_first(scores: Sequence[Score]) -> list[Score]:
    """Those meeting the SLO by cost, then the rest by attainment (higher first)."""
    ok = sorted((s for s in scores if s.meets), key=lambda s: (s.cost_usd, s.index))
    rest = sorted((s for s in scores if not s.meets), key=lambda s: (-s.attainment, s.index))
    return ok + rest


def dominates(a: Score, b: Score) -> bool:
    """``a`` is no worse than ``b`` in cost, attainment and p95 wait, and better in one."""
    no_worse = (
        a.cost_usd <= b.cost_usd and a.attainment >= b.attainment and a.p95_wait_s <= b.p95_wait_s
    )
    better = a.cost_usd < b.cost_usd or a.attainment > b.attainment or a.p95_wait_s < b.p95_wait_s
    return no_worse and better


def frontier(scores: Sequence[Score]) -> list[Score]:
    """The Pareto set (no other score dominates), cheapest first."""
    front = [s for s in scores if not any(dominates(o, s) for o in scores)]
    return sorted(front, key=lambda s: (s.cost_usd, s.index))


def layers(scores: Sequence[Score]) -> list[Score]:
    """Non-dominated sorting: the frontier, then the frontier of the rest, and so on."""
    left, out = list(scores), []
    while left:
        front = frontier(left)
        out += front
        chosen = {s.index for s in front}
        left = [s for s in left if s.index not in chosen]
    return out


def survivors(scores: Sequence[Score], keep: int) -> list[int]:
    """Indices of the ``keep`` candidates going on: alternately the next by feasibility and
    cost and the next by Pareto layer, so the cheap and the safe ends of the frontier both
    survive."""
    orders = [feasible_first(scores), layers(scores)]
    out: list[int] = []
    position = [0, 0]
    while len(out) < min(keep, len(scores)):
        for which, order in enumerate(orders):
            while position[which] < len(order) and order[position[which]].index in out:
                position[which] += 1
            if position[which] < len(order) and len(out) < keep:
                out.append(order[position[which]].index)
    return out


def cheapest_meeting(scores: Sequence[Score]) -> Score | None:
    """The cheapest score meeting the SLO (lowest index on a tie), or None."""
    ok = [s for s in scores if s.meets]
    return min(ok, key=lambda s: (s.cost_usd, s.index), default=None)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A search's result. ``full``: whole-trace scores (the frontier's material);
    ``rungs``: (horizon seconds, candidates scored) per rung; ``chosen``: the cheapest whole-trace
    score meeting the target, or None; ``max_launch_rate``: the launch limit of the target (GPU
    node launches per model-hour), None for none."""

    candidates: list[Candidate]
    full: list[Score]
    frontier: list[Score]
    chosen: Score | None
    rungs: list[tuple[float, int]]
    max_launch_rate: float | None = None

    def candidate(self, index: int) -> Candidate:
        return self.candidates[index]


def search(
    data: Data,
    scenario: Scenario,
    budget: int,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    max_launch_rate: float | None = None,
) -> Outcome:
    """``search_with`` in ``workers`` processes."""
    with evaluator(data, scenario, workers) as score_all:
        return search_with(score_all, data, scenario, budget, progress, max_launch_rate)


def search_with(
    score_all: Evaluate,
    data: Data,
    scenario: Scenario,
    budget: int,
    progress: Callable[[int, int], None] | None = None,
    max_launch_rate: float | None = None,
) -> Outcome:
    """Successive halving over ``budget`` sampled settings (``sample`` with the scenario's
    seed), scored by ``score_all`` (an ``evaluator``). ``progress(done, total)`` after each
    evaluation. ``max_launch_rate``: a setting meets the target only if it also launches at
    most this many GPU nodes per model-hour."""
    candidates = sample(scenario, max(budget, 1), scenario.seed)
    spans = horizons(data.duration_s)
    sizes = rung_sizes(len(candidates) - 1)  # the scenario's own setting runs at every rung
    total = sum(size + 1 for r, size in enumerate(sizes) if r == 0 or spans[r] != spans[r - 1])
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    cache: dict[tuple[int, float], Score] = {}
    alive = [c.index for c in candidates]
    rungs: list[tuple[float, int]] = []
    for r, horizon in enumerate(spans):
        todo = [(candidates[i], horizon) for i in alive if (i, horizon) not in cache]
        for score in score_all(todo, tick):
            if max_launch_rate is not None and score.launch_rate > max_launch_rate:
                score = dataclasses.replace(score, meets=False)
            cache[(score.index, horizon)] = score
        rungs.append((horizon, len(alive)))
        if r + 1 < len(spans):
            here = [cache[(i, horizon)] for i in alive]
            kept = survivors([s for s in here if s.index != 0], sizes[r + 1])
            alive = [0, *kept]
    if progress is not None:
        progress(total, total)
    whole = spans[-1]
    full = sorted((s for (_, h), s in cache.items() if h == whole), key=lambda s: s.index)
    chosen = cheapest_meeting(full)
    return Outcome(candidates, full, frontier(full), chosen, rungs, max_launch_rate)


def with_target(scenario: Scenario, slo_wait_s: float | None, attainment: float | None) -> Scenario:
    """``scenario`` with the SLO the tuner aims at (unchanged where None)."""
    update: dict[str, Any] = {}
    if slo_wait_s is not None:
        update["slo_wait_s"] = slo_wait_s
    if attainment is not None:
        update["slo_attainment"] = attainment
    return scenario.model_copy(update=update)
