"""The depthscale policy on real traffic, and what each of its rules is worth.

For each trace, the default scenario (one-GPU A100 nodes, 256-slot vLLM replicas, the scaler
reading in-flight tasks and the Deployment's replicas) runs:

- the shipped ``depthscale`` preset, and the same with one rule turned off at a time
  (``-recent``: size on the window's mean only; ``-seasonal``: no seasonal floor;
  ``-headroom``: no spare capacity; ``-limit``: no scale-up limit), the threshold rule the
  preset used before (``threshold``) and the seed's rule (``seed``);
- the time-based baselines: business hours, the trailing schedule, the hindsight schedule and
  static peak.

Each line: cost, cost as a multiple of the fluid ideal, share of requests waiting at most 30 s,
and GPU node launches per hour. Traces: ServeGen m-small (the published 43-client directory) at
the given rates, replayed per second; the quick start's synthetic trace and the other shared
traces, request by request.

    python benchmarks/policy_ablation.py [--servegen DIR] [--rates 0.05,0.25,1] [--traces ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "traces"

BASELINES = ["business-hours", "trailing-schedule", "hindsight-schedule", "static-peak"]
VARIANTS: dict[str, dict[str, Any]] = {
    "depthscale": {},
    "-recent": {"react_to_recent": False},
    "-seasonal": {"seasonal_fraction": 0.0},
    "-headroom": {"headroom": 0.0},
    "-limit": {"scale_up_factor": None},
}


def entries(scenario: Any, traffic: Any) -> list[Any]:
    from policies.config import SEED, QueueDepthConfig
    from policies.queue_depth import QueueDepthPolicy
    from simulator.policyset import build_policies

    out: list[Any] = []
    for label, change in VARIANTS.items():
        per_model = {
            name: QueueDepthPolicy(
                dataclasses.replace(model.policy.to_policy_config(), **change), label=label
            )
            for name, model in scenario.models.items()
        }
        out.append((label, "depthscale", per_model))
    for label, preset in (("threshold", QueueDepthConfig()), ("seed", SEED)):
        per_model = {}
        for name, model in scenario.models.items():
            tuned = model.policy.to_policy_config()
            base = dataclasses.replace(
                preset,
                replica_concurrency=tuned.replica_concurrency,
                max_replicas=tuned.max_replicas,
                min_replicas=tuned.min_replicas,
            )
            per_model[name] = QueueDepthPolicy(base, label=label)
        out.append((label, "depthscale", per_model))
    return out + build_policies(scenario, traffic, BASELINES)


def run_one(label: str, traffic: Any) -> None:
    from simulator.engine import run
    from simulator.scenario import default_scenario
    from simulator.simulate import busiest_minute_rps

    scenario = default_scenario(traffic.models, peak_rps=busiest_minute_rps(traffic))
    t0 = time.perf_counter()
    result = run(traffic, scenario, entries(scenario, traffic))
    ideal = sum(result.ideal_cost_usd.values())
    hours = result.duration_s / 3600.0
    print(f"\n{label} ({time.perf_counter() - t0:.0f} s); fluid ideal ${ideal:,.2f}")
    print(f"{'policy':<20} {'cost':>11} {'x ideal':>8} {'SLO met':>8} {'launches/h':>11}")
    for p in result.policies:
        t = p.total
        print(
            f"{p.name:<20} {t.cost_usd:>11,.0f} {t.cost_usd / ideal:>8.2f} "
            f"{100 * t.slo_attainment:>7.2f}% {t.node_launches / hours:>11.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servegen", type=Path, default=SHARED / "servegen_m_small")
    parser.add_argument("--rates", default="0.05,0.25,1")
    parser.add_argument(
        "--traces",
        default="quickstart,azure_llm_2023_code.csv,mooncake_synthetic.jsonl",
        help="comma-separated: 'quickstart' and/or files under the shared traces folder",
    )
    args = parser.parse_args()

    from simulator.traces.loader import load_bins, load_trace
    from simulator.traces.synth import DAY_S, SynthModel, SynthSpec, synthesize

    if args.servegen.is_dir():
        for rate in (float(r) for r in args.rates.split(",") if r):
            bins = load_bins(args.servegen, rate=rate, seed=0)
            run_one(f"ServeGen m-small at rate {rate:g} ({bins.requests():,.0f} requests)", bins)
            del bins
    for name in (n for n in args.traces.split(",") if n):
        if name == "quickstart":
            models = (
                SynthModel("llama-3-8b", mean_rps=40.0),
                SynthModel("mistral-7b", mean_rps=12.0),
            )
            trace = synthesize(SynthSpec(models=models, duration_s=2 * DAY_S, seed=7))
        elif (SHARED / name).exists():
            trace = load_trace(SHARED / name)
        else:
            print(f"\n{name}: not found, skipped")
            continue
        run_one(f"{name} ({len(trace):,} requests)", trace)


if __name__ == "__main__":
    main()
