"""Tuner speed: ``depthscale tune`` end to end on a ServeGen directory (14 days) at a rate.

Prints the wall time of the whole command (loading, every candidate run, the report), the
load average before and after (the machine may be shared), and the command's own output.

Target (issue 8): a 14-day trace at --rate 0.05 tunes in <= 10 minutes on two cores.

    python benchmarks/tune_speed.py SERVEGEN_DIR [--rate 0.05] [--budget 81] [--workers 2] [--out DIR]

SERVEGEN_DIR is a directory of ServeGen chunk files (chunk-N-trace.csv, chunk-N-dataset.json;
github.com/alibaba/ServeGen).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--budget", type=int, default=81)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="Keep tune's output here.")
    args = parser.parse_args()
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or scratch
        command = [
            sys.executable,
            "-c",
            "from scaler.cli import main; main()",
            "tune",
            str(args.trace),
            f"--rate={args.rate}",
            f"--budget={args.budget}",
            f"--workers={args.workers}",
            f"--seed={args.seed}",
            "--no-progress",
            f"--out={out}",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, check=False, cwd=Path(__file__).resolve().parent.parent)
        took = time.perf_counter() - started
    after = os.getloadavg()
    print(
        f"tune {args.trace.name} --rate {args.rate:g} --budget {args.budget} "
        f"--workers {args.workers}: {took:,.1f} s wall (target <= {TARGET_S:,.0f} s: "
        f"{'met' if took <= TARGET_S else 'MISSED'}); exit {done.returncode}; "
        f"load average {before[0]:.1f} before, {after[0]:.1f} after"
    )
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
