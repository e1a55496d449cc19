"""Compiled ServeGen arrival generation: one row is one client's window.

A row with ``n`` requests draws ``n`` inter-arrival gaps from its fitted law (Gamma or Weibull,
``shape``/``scale``) and rescales them so that they sum to the window's length, as ServeGen's
``construct.py`` does. The window's requests arrive at the partial sums ``0, S_1, …, S_{n-1}``
of the rescaled gaps: the first at the window's opening, the n-th gap ending at its close.

Each row has its own random stream, seeded from (seed, client, window index), so a row's
arrivals do not depend on which other rows are generated, in what order, or on which thread:
the per-request trace and the per-second bins of the same rows hold the same arrivals, and a
client's arrivals are the same whether it is loaded alone or with the rest of its model.

The stream is SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014); Gamma variates use Marsaglia and Tsang's method ("A simple method for
generating gamma variables", ACM TOMS 26(3), 2000) with ``U^(1/a)`` boosting below shape 1,
normals the polar method, Weibull variates the inverse CDF. Compiled with numba, cached on disk.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import int64, njit, prange, uint64

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]

IDLE = 0
GAMMA = 1
WEIBULL = 2

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def row_seed(seed: int, client: int, window: int) -> int:
    """The 64-bit starting state of one client's window: SplitMix64 over the three integers."""
    state = 0
    for value in (seed, client, window):
        state = (state ^ (value & _MASK64)) + _GOLDEN & _MASK64
        z = state
        z = (z ^ (z >> 30)) * _MIX1 & _MASK64
        z = (z ^ (z >> 27)) * _MIX2 & _MASK64
        state = z ^ (z >> 31)
    return state


@njit(cache=True, inline="always")
def _next(s: np.uint64) -> tuple[np.uint64, float]:  # pragma: no cover - compiled
    """SplitMix64: the advanced state and a uniform double in (0, 1) (53 random bits)."""
    s = s + uint64(_GOLDEN)
    z = (s ^ (s >> uint64(30))) * uint64(_MIX1)
    z = (z ^ (z >> uint64(27))) * uint64(_MIX2)
    z = z ^ (z >> uint64(31))
    return s, (float(int64(z >> uint64(11))) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _draw(
    buf: F64, n: int, pattern: int, shape: float, scale: float, seed: int
) -> float:  # pragma: no cover
    """Fill ``buf[:n]`` with the row's gaps (seconds, before rescaling); their sum."""
    s = uint64(seed)
    total = 0.0
    if pattern == GAMMA:
        # Marsaglia-Tsang for Gamma(a, 1), a >= 1; below shape 1, Gamma(shape + 1) * U^(1/shape).
        boost = shape < 1.0
        a = shape + 1.0 if boost else shape
        d = a - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        inv = 1.0 / shape
        spare = 0.0
        have_spare = False
        for i in range(n):
            while True:
                if have_spare:
                    x = spare
                    have_spare = False
                else:  # the polar method: two normals per accepted pair
                    while True:
                        s, u1 = _next(s)
                        s, u2 = _next(s)
                        p = 2.0 * u1 - 1.0
                        q = 2.0 * u2 - 1.0
                        r = p * p + q * q
                        if r < 1.0:
                            break
                    f = math.sqrt(-2.0 * math.log(r) / r)
                    x = p * f
                    spare = q * f
                    have_spare = True
                v = 1.0 + c * x
                if v <= 0.0:
                    continue
                v = v * v * v
                s, u = _next(s)
                x2 = x * x
                if u < 1.0 - 0.0331 * x2 * x2:
                    break
                if math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
                    break
            g = d * v
            if boost:
                s, u = _next(s)
                g *= math.exp(math.log(u) * inv)
            g *= scale
            buf[i] = g
            total += g
    else:
        inv = 1.0 / shape
        for i in range(n):
            s, u = _next(s)
            g = scale * math.exp(math.log(-math.log(u)) * inv)
            buf[i] = g
            total += g
    return total


@njit(cache=True)
def arrival_times(
    start_s: F64,
    length_s: F64,
    n: I64,
    pattern: U8,
    shape: F64,
    scale: F64,
    seeds: U64,
    offsets: I64,
    out: F64,
) -> None:  # pragma: no cover - compiled
    """Row ``r``'s arrival times (seconds) into ``out[offsets[r] : offsets[r] + n[r]]``."""
    biggest = 1
    for r in range(n.shape[0]):
        biggest = max(biggest, n[r])
    buf = np.empty(biggest, dtype=np.float64)
    for r in range(start_s.shape[0]):
        count = n[r]
        if count == 0:
            continue
        total = _draw(buf, count, pattern[r], shape[r], scale[r], seeds[r])
        factor = length_s[r] / total if total > 0 else 0.0
        s = 0.0
        base = offsets[r]
        for i in range(count):
            out[base + i] = start_s[r] + s * factor
            s += buf[i]


@njit(cache=True, parallel=True)
def bin_arrivals(
    start_s: F64,
    length_s: F64,
    n: I64,
    pattern: U8,
    shape: F64,
    scale: F64,
    seeds: U64,
    lanes: I64,
    bin_s: float,
    out: F64,
) -> None:  # pragma: no cover - compiled
    """Add each row's arrivals to ``out[lane, bin]`` (``bin = floor(t / bin_s)``, clamped to
    the bins). ``lanes`` splits the rows into ``out.shape[0]`` contiguous runs, one per thread;
    the caller sums the lanes. The arrival times are exactly those of ``arrival_times``."""
    for lane in prange(out.shape[0]):
        lo = lanes[lane]
        hi = lanes[lane + 1]
        biggest = 1
        for r in range(lo, hi):
            biggest = max(biggest, n[r])
        buf = np.empty(biggest, dtype=np.float64)
        last = out.shape[1] - 1
        for r in range(lo, hi):
            count = n[r]
            if count == 0:
                continue
            total = _draw(buf, count, pattern[r], shape[r], scale[r], seeds[r])
            factor = length_s[r] / total if total > 0 else 0.0
            s = 0.0
            for i in range(count):
                k = int(np.floor((start_s[r] + s * factor) / bin_s))
                out[lane, min(max(k, 0), last)] += 1.0
                s += buf[i]
