"""The aggregated (per-second) engine against the per-request engine, on traces where both run.

For each trace, every policy of the default scenario runs twice: request by request through the
compiled FCFS queue, and per second through the fluid queue (``simulator.engine.fluid``). The
table gives each policy's cost and p95 wait in both modes and their gap. Agreement means cost
within 2% and p95 wait within 5% (or within 1 s, for waits near zero).

Traces (the ServeGen ones when the published directory is found), the same arrivals in both
modes (ServeGen's generator is seeded per client and window):
  - ServeGen m-small's first --days (2) at each of --rates (0.1, 0.2: about 20 M and 40 M
    requests, 115 and 230 req/s on average, where ``--engine auto`` starts to pick the
    aggregated mode for longer traces);
  - ServeGen m-small, all 14 days at --low-rate 0.01 (14 M requests, 12 req/s: one or two
    replicas, below where the aggregated mode is meant to run; shown for its error there);
  - the quick start's synthetic two-day trace (9 M requests, 52 req/s, 4x bursts).

    python benchmarks/aggregated_mode.py [--servegen DIR] [--days 2] [--rates 0.1,0.2]
        [--low-rate 0.01] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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


def first_days(directory: Path, days: int) -> Path:
    """A copy of a ServeGen directory cut to its first ``days`` days (window rows and the
    length distributions of those windows), in a temporary directory."""
    out = Path(tempfile.mkdtemp(prefix="servegen-head-")) / directory.name
    out.mkdir()
    end_s = days * 86400
    for path in directory.iterdir():
        if path.name.endswith("-trace.csv"):
            rows = [
                line
                for line in path.read_text().splitlines(keepends=True)
                if line.strip() and float(line.split(",", 1)[0]) < end_s
            ]
            (out / path.name).write_text("".join(rows))
        elif path.name.endswith("-dataset.json"):
            data = json.loads(path.read_text())
            kept = {k: v for k, v in data.items() if float(k) < end_s}
            (out / path.name).write_text(json.dumps(kept))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servegen", type=Path, default=DEFAULT_SERVEGEN)
    parser.add_argument("--days", type=int, default=2, help="ServeGen days for --rates")
    parser.add_argument("--rates", default="0.1,0.2", help="comma-separated ServeGen rates")
    parser.add_argument("--low-rate", type=float, default=0.01, help="0 to skip")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()

    from simulator.traces.bins import bins_from_trace
    from simulator.traces.loader import load_bins, load_trace
    from simulator.traces.synth import DAY_S, SynthModel, SynthSpec, synthesize

    results = []
    if args.servegen.is_dir():
        head = first_days(args.servegen, args.days)
        for rate in (float(r) for r in args.rates.split(",") if r):
            trace = load_trace(head, rate=rate, seed=0)
            bins = load_bins(head, rate=rate, seed=0)
            label = f"ServeGen m-small, first {args.days} days at rate {rate:g} ({len(trace):,} requests)"
            results.append(compare(label, trace, bins))
            del trace, bins
        if args.low_rate > 0:
            trace = load_trace(args.servegen, rate=args.low_rate, seed=0)
            bins = load_bins(args.servegen, rate=args.low_rate, seed=0)
            label = f"ServeGen m-small, 14 days at rate {args.low_rate:g} ({len(trace):,} requests)"
            print("\n(below the aggregated mode's range: not counted in the verdict)")
            compare(label, trace, bins)
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
