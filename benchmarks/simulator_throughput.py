"""Simulator throughput: the 7-day, 3-model, 10 M-request synthetic trace through the engine.

Prints, for the depthscale policy under the default scenario:
  - kernel compile (or on-disk cache load) time, measured apart from the run;
  - trace generation time (not part of the simulation);
  - simulation wall time, CPU time, requests simulated per second, peak RSS;
and then a comparison with a straightforward SimPy model of the same system
(benchmarks/simpy_reference.py) on a smaller trace: same control loop, same policy, the
per-request queue in SimPy instead of the compiled kernel; wait statistics must agree.

Targets: >= 1 M requests/s, the 10 M trace in <= 15 s, peak RSS <= 2 GB.

Then, beside it, the real thing at its real size: ``depthscale simulate`` on the published
ServeGen m-small model at full rate (43 clients, 14 days, about 1.4 billion requests; the
aggregated engine, every default policy), run as a user runs it, in a child process: wall time
and the child's peak RSS. Targets: <= 15 minutes and <= 3 GB on a 2-core machine.

    python benchmarks/simulator_throughput.py [--requests N] [--simpy-requests N] [--cold]
        [--servegen DIR | --skip-servegen]

``--cold`` points numba at an empty cache directory first, so the compile time is a true
first compile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


DEFAULT_SERVEGEN = (
    Path(__file__).resolve().parent.parent.parent / "shared/data/traces/servegen_m_small"
)


def full_rate_servegen(directory: Path) -> None:
    """``depthscale simulate DIR`` at full rate in a child process: wall time, peak RSS."""
    if not directory.is_dir():
        print(f"\n{directory}: not found, full-rate ServeGen run skipped")
        return
    out = Path(tempfile.mkdtemp(prefix="servegen-full-"))
    command = [sys.executable, "-c", "from scaler.cli import main; main()"]
    command += ["simulate", str(directory), "--out", str(out), "--no-progress"]
    print(f"\nfull-rate ServeGen m-small: depthscale {' '.join(command[3:])}")
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if done.returncode != 0:
        print(f"  failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return
    report = json.loads((out / "report.json").read_text())
    print(f"  {report['trace']}")
    print(f"  wall {wall / 60:.1f} min, peak RSS {child_mb:,.0f} MB")
    hours = report["duration_s"] / 3600.0
    for name, policy in report["policies"].items():
        print(
            f"  {name:<20} ${policy['cost_usd']:>10,.0f}  {policy['cost_vs_ideal']:.2f}x ideal  "
            f"SLO {100 * policy['slo_attainment']:.2f}%  "
            f"node launches {policy['node_launches'] / hours:.2f}/h"
        )
    ok = wall <= 15 * 60 and child_mb <= 3 * 1024
    print(f"  targets (<= 15 min, <= 3 GB): {'met' if ok else 'NOT met'}")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--simpy-requests", type=int, default=300_000)
    parser.add_argument("--simpy-days", type=float, default=1.0)
    parser.add_argument("--cold", action="store_true", help="compile into an empty numba cache")
    parser.add_argument("--servegen", type=Path, default=DEFAULT_SERVEGEN)
    parser.add_argument("--skip-servegen", action="store_true")
    args = parser.parse_args()
    if args.cold:
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cache-")
    if not args.skip_servegen:
        # First, while this process is small: a forked child counts its parent's pages in its
        # peak RSS until it execs.
        full_rate_servegen(args.servegen)

    import numpy as np

    from simulator import engine
    from simulator.engine import kernel
    from simulator.scenario import default_scenario
    from simulator.traces.synth import benchmark_trace

    t0 = time.perf_counter()
    kernel.warm_up()
    compile_s = time.perf_counter() - t0
    print(f"kernel compile/cache load: {compile_s:.2f} s{' (cold cache)' if args.cold else ''}")

    t0 = time.perf_counter()
    trace = benchmark_trace(requests=args.requests, days=args.days)
    print(
        f"trace: {len(trace):,} requests, {len(trace.models)} models, {args.days:g} days, "
        f"generated in {time.perf_counter() - t0:.2f} s (peak RSS so far {_rss_mb():.0f} MB)"
    )
    scenario = default_scenario(trace.models)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = engine.run(trace, scenario)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    total = result.policies[0].total
    print(
        f"engine: {wall:.2f} s wall, {cpu:.2f} s CPU, {len(trace) / wall / 1e6:.2f} M requests/s "
        f"(wall), {len(trace) / cpu / 1e6:.2f} M/s (CPU), peak RSS {_rss_mb():.0f} MB"
    )
    print(
        f"  served {total.served:,}, unserved {total.unserved:,}, wait mean {total.wait_s.mean:.3f}"
        f" s p99 {total.wait_s.p99:.3f} s, cost ${total.cost_usd:,.0f}"
    )
    ok = len(trace) / wall >= 1e6 and wall <= 15.0 and _rss_mb() <= 2048.0
    print(f"targets (>= 1 M/s, <= 15 s, <= 2 GB): {'met' if ok else 'NOT met'}")
    del result, trace

    if args.simpy_requests <= 0:
        return
    from benchmarks.simpy_reference import SimpyQueue
    from simulator.engine.loop import simulate
    from simulator.engine.queue import ModelQueue
    from simulator.engine.setup import default_policies, per_model, plan

    small = benchmark_trace(requests=args.simpy_requests, days=args.simpy_days)
    small_scenario = default_scenario(small.models)
    the_plan = plan(small, small_scenario)
    names = [m.name for m in the_plan.models]
    timings: dict[str, float] = {}
    starts: dict[str, list[np.ndarray]] = {}
    for label, factory in (("compiled", ModelQueue), ("simpy", SimpyQueue)):
        policies = per_model(default_policies(small_scenario)[0], names)
        t0 = time.perf_counter()
        run = simulate(the_plan, policies, make_queue=factory)
        timings[label] = time.perf_counter() - t0
        starts[label] = [q.start_times().copy() for q in run.queues]
    print(
        f"SimPy comparison on {len(small):,} requests over {args.simpy_days:g} day(s): "
        f"compiled {timings['compiled']:.2f} s, SimPy {timings['simpy']:.2f} s "
        f"({timings['simpy'] / timings['compiled']:.0f}x slower)"
    )
    for name, model, fast, slow in zip(
        names, the_plan.models, starts["compiled"], starts["simpy"], strict=True
    ):
        same_served = np.array_equal(np.isnan(fast), np.isnan(slow))
        served = ~np.isnan(fast)
        diff = float(np.max(np.abs(fast[served] - slow[served]), initial=0.0))
        waits = fast[served] - model.arrival_s[served]
        waits_simpy = slow[~np.isnan(slow)] - model.arrival_s[~np.isnan(slow)]
        print(
            f"  {name}: same requests served: {same_served}; largest start-time difference "
            f"{diff:.2e} s; mean wait {waits.mean():.4f} s vs {waits_simpy.mean():.4f} s; "
            f"p99 {np.percentile(waits, 99):.4f} s vs {np.percentile(waits_simpy, 99):.4f} s"
        )


if __name__ == "__main__":
    main()
