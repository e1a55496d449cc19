"""The aggregated (per-second) engine against the per-request engine, on traces where both run.

For each trace, every policy of the default scenario runs twice: request by request through the
compiled FCFS queue, and per second through the fluid queue (``simulator.engine.fluid``). The
table gives each policy's cost and p95 wait in both modes and their gap. Agreement means cost
within 2% and p95 wait within 5% (or within 1 s, for waits near zero).

Traces (the ServeGen ones when the published directory is found):
  - ServeGen m-small at --rate 0.01 (about 14 M requests over 14 days), the same arrivals in
    both modes (the generator is seeded per client and window);
  - the quick start's synthetic two-day trace (9 M requests, bursts).

    python benchmarks/aggregated_mode.py [--servegen DIR] [--rates 0.01] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_SERVEGEN = ROOT.parent / "shared" / "data" / "traces" / "servegen_m_small"

COST_GAP = 0.02
P95_GAP = 0.05
P95_FLOOR_S = 1.0


def compare(label: str, trace: object, bins: object) -> bool:
    from simulator.engine import run
    from simulator.policyset import build_policies
    from simulator.scenario import default_scenario
    from simulator.simulate import busiest_minute_rps

    scenario = default_scenario(trace.models, peak_rps=busiest_minute_rps(trace))  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    per_request = run(trace, scenario, build_policies(scenario, trace))  # type: ignore[arg-type]
    t1 = time.perf_counter()
    aggregated = run(bins, scenario, build_policies(scenario, bins))  # type: ignore[arg-type]
    t2 = time.perf_counter()
    print(f"\n{label}: per-request {t1 - t0:.0f} s, aggregated {t2 - t1:.0f} s")
    print(
        f"{'policy':<20} {'cost req':>10} {'cost agg':>10} {'gap':>7} "
        f"{'p95 req':>8} {'p95 agg':>8} {'gap':>7} {'SLO req':>8} {'SLO agg':>8}  agree"
    )
    every = True
    for a, b in zip(per_request.policies, aggregated.policies, strict=True):
        cost_gap = b.total.cost_usd / a.total.cost_usd - 1.0 if a.total.cost_usd else 0.0
        pa, pb = a.total.wait_s.p95, b.total.wait_s.p95
        p95_gap = (pb - pa) / pa if pa > 0 else 0.0
        agree = abs(cost_gap) <= COST_GAP and abs(pb - pa) <= max(P95_GAP * pa, P95_FLOOR_S)
        every &= agree
        print(
            f"{a.name:<20} {a.total.cost_usd:>10,.0f} {b.total.cost_usd:>10,.0f} "
            f"{100 * cost_gap:>+6.1f}% {pa:>8.1f} {pb:>8.1f} {100 * p95_gap:>+6.1f}% "
            f"{100 * a.total.slo_attainment:>7.2f}% {100 * b.total.slo_attainment:>7.2f}%  "
            f"{'yes' if agree else 'NO'}"
        )
    return every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servegen", type=Path, default=DEFAULT_SERVEGEN)
    parser.add_argument("--rates", default="0.01", help="comma-separated ServeGen rates")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()

    from simulator.traces.bins import bins_from_trace
    from simulator.traces.loader import load_bins, load_trace
    from simulator.traces.synth import DAY_S, SynthModel, SynthSpec, synthesize

    results = []
    if args.servegen.is_dir():
        for rate in (float(r) for r in args.rates.split(",")):
            trace = load_trace(args.servegen, rate=rate, seed=0)
            bins = load_bins(args.servegen, rate=rate, seed=0)
            label = f"ServeGen m-small at rate {rate:g} ({len(trace):,} requests)"
            results.append(compare(label, trace, bins))
            del trace, bins
    else:
        print(f"{args.servegen}: not found, ServeGen comparison skipped")
    if not args.skip_synthetic:
        models = (SynthModel("llama-3-8b", mean_rps=40.0), SynthModel("mistral-7b", mean_rps=12.0))
        trace = synthesize(SynthSpec(models=models, duration_s=2 * DAY_S, seed=7))
        label = f"quick-start synthetic ({len(trace):,} requests, bursts)"
        results.append(compare(label, trace, bins_from_trace(trace)))
    print(
        f"\nagreement (cost within {COST_GAP:.0%}, p95 within {P95_GAP:.0%} or "
        f"{P95_FLOOR_S:g} s): {'all policies' if all(results) else 'NOT all policies'}"
    )


if __name__ == "__main__":
    main()
