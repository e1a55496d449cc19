"""The demo's built-in traffic: a quiet stretch, a burst, quiet again, for one model.

Arrivals are a Poisson process with a piecewise-constant rate (requests/s, trace seconds), token
counts log-normal; the same seed gives the same trace. ``depthscale trace synth`` writes longer
and richer traces for ``depthscale replay``.
"""

from __future__ import annotations

import numpy as np

from simulator.traces.trace import Trace, build_trace

MODEL = "llama-3-8b"
SEGMENTS: tuple[tuple[float, float, float], ...] = ((0.0, 300.0, 0.0625), (300.0, 720.0, 0.3),
                                                    (720.0, 1200.0, 0.0625))  # fmt: skip
"""(start s, end s, requests/s): 5 quiet minutes, a 7-minute burst at about five times the rate,
8 quiet minutes."""
INPUT_TOKENS = 200.0
OUTPUT_TOKENS = 1600.0
"""Long answers (32 s each on the stand-in's default decode speed) and few requests: the live
side's cost per task (broker round trips, the worker's fetch, the HTTP call, the result write)
is a small share of each task's time even at x20 on a loaded machine."""
TOKEN_SIGMA = 0.5


def burst_trace(seed: int = 7) -> Trace:
    """The built-in trace (about 180 requests over 20 minutes)."""
    rng = np.random.default_rng(seed)
    arrivals = np.concatenate(
        [np.sort(rng.uniform(a, b, rng.poisson(rate * (b - a)))) for a, b, rate in SEGMENTS]
    )
    n = arrivals.size
    tokens_in = np.maximum(rng.lognormal(np.log(INPUT_TOKENS), TOKEN_SIGMA, n), 1)
    tokens_out = np.maximum(rng.lognormal(np.log(OUTPUT_TOKENS), TOKEN_SIGMA, n), 1)
    return build_trace(
        arrivals,
        np.zeros(n, dtype=np.int32),
        [MODEL],
        tokens_in.astype(np.int32),
        tokens_out.astype(np.int32),
        source=f"built-in burst (seed {seed})",
    )
