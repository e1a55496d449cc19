"""Request lengths of ServeGen clients: the ``chunk-N-dataset.json`` files.

Each file maps a window start (seconds, every 6 hours in the published data) to that window's
``input_tokens`` and ``output_tokens`` distributions, each a Python-literal dict
``{token_count: probability}`` written as a string (``"{}"`` where the client was idle). The
strings are parsed here by a small linear scanner, never evaluated: any other text is an error
naming the file and key.

A request in a trace window takes the distribution of the latest non-empty dataset window at or
before it (ServeGen's ``ClientPoolView._get_dataset_window``); a request before the first
non-empty one takes the first. As in ServeGen's ``_sample_data_batch``, one uniform draw per
request picks the quantile of both its input and its output length (the files give only the
marginals). A client without a dataset file gets ``DEFAULT_LENGTHS``: independent log-normals
with means 200 (input) and 180 (output) tokens and log-sigma 0.8, the ShareGPT mix the service
model is calibrated on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from simulator.traces.trace import TraceError

I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]

MAX_DATASET_BYTES = 256 * 1024 * 1024
"""Largest dataset file read (the published ones are under 4 MB)."""
MAX_ENTRIES = 1_000_000
"""Largest number of ``token: probability`` pairs in one distribution."""
_INT32_MAX = int(np.iinfo(np.int32).max)
FIELDS = ("input_tokens", "output_tokens")
_PAIR_RE = re.compile(r"\d+\s*:\s*[-+.\deE]+", re.ASCII)
_DICT_RE = re.compile(r"\s*\d+\s*:\s*[-+.\deE]+\s*(?:,\s*\d+\s*:\s*[-+.\deE]+\s*)*,?\s*", re.ASCII)


@dataclass(frozen=True, slots=True)
class Lengths:
    """One window's length distributions: sorted token counts and their cumulative
    probabilities (the last is 1)."""

    input_tokens: I32
    input_cdf: F64
    output_tokens: I32
    output_cdf: F64

    def sample(self, u: F64) -> tuple[I32, I32]:
        """Input and output tokens at quantiles ``u`` (uniform in [0, 1))."""
        return _quantile(self.input_tokens, self.input_cdf, u), _quantile(
            self.output_tokens, self.output_cdf, u
        )


def _quantile(tokens: I32, cdf: F64, u: F64) -> I32:
    index = np.minimum(np.searchsorted(cdf, u, side="right"), tokens.shape[0] - 1)
    picked: I32 = tokens[index]
    return picked


@dataclass(frozen=True, slots=True)
class LogNormalLengths:
    """Independent log-normal input and output tokens (means in tokens, at least 1)."""

    input_mean: float = 200.0
    output_mean: float = 180.0
    sigma: float = 0.8

    def sample(self, rng: np.random.Generator, n: int) -> tuple[I32, I32]:
        return (
            lognormal_tokens(rng, n, self.input_mean, self.sigma),
            lognormal_tokens(rng, n, self.output_mean, self.sigma),
        )

    def at_quantiles(self, u: F64) -> tuple[I32, I32]:
        """Input and output tokens at quantiles ``u`` of their log-normals (at least 1)."""
        normal = NormalDist()
        z = np.array([normal.inv_cdf(float(q)) for q in u])

        def tokens(mean: float) -> I32:
            mu = math.log(mean) - self.sigma * self.sigma / 2.0
            return np.maximum(np.rint(np.exp(mu + self.sigma * z)), 1).astype(np.int32)

        return tokens(self.input_mean), tokens(self.output_mean)


DEFAULT_LENGTHS = LogNormalLengths()


def lognormal_tokens(
    rng: np.random.Generator, n: int, mean: float, sigma: float
) -> npt.NDArray[np.int32]:
    """``n`` token counts from a log-normal with the given mean, at least 1."""
    mu = math.log(mean) - sigma * sigma / 2.0
    return np.maximum(np.rint(rng.lognormal(mu, sigma, size=n)), 1).astype(np.int32)


@dataclass(frozen=True, slots=True)
class ClientLengths:
    """A client's length distributions over time: ``starts_s[i]`` opens ``windows[i]``
    (non-empty windows only, increasing)."""

    starts_s: F64
    windows: tuple[Lengths, ...]

    def index_at(self, t_s: F64) -> npt.NDArray[np.int64]:
        """The window in force at each time: the latest starting at or before it, else the
        first."""
        found = np.searchsorted(self.starts_s, t_s, side="right") - 1
        return np.maximum(found, 0).astype(np.int64)


def parse_distribution(file: str, key: str, text: str) -> tuple[I32, F64] | None:
    """``"{token: probability, ...}"`` as sorted tokens and their CDF; None for ``"{}"``.

    Accepts exactly a flat dict of non-negative integer keys and finite non-negative numbers
    (a trailing comma allowed); the probabilities are normalised by their sum, which must be
    positive. Work is linear in the text's length.
    """
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise TraceError(file, None, f"{key}: expected a {{tokens: probability}} dict")
    inner = body[1:-1].strip()
    if not inner:
        return None
    if _DICT_RE.fullmatch(inner) is None:
        raise TraceError(file, None, f"{key}: {_first_bad_pair(inner)}")
    try:
        flat = np.asarray(inner.rstrip().rstrip(",").replace(":", ",").split(","), np.float64)
    except ValueError as exc:
        raise TraceError(file, None, f"{key}: {exc}") from None
    if flat.shape[0] > 2 * MAX_ENTRIES:
        raise TraceError(file, None, f"{key}: more than {MAX_ENTRIES:,} entries")
    if flat[0::2].max() > _INT32_MAX:
        raise TraceError(file, None, f"{key}: token count above {_INT32_MAX}")
    tokens, probs = flat[0::2].astype(np.int64), flat[1::2]
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise TraceError(file, None, f"{key}: probabilities must be finite and >= 0")
    total = float(probs.sum())
    if not total > 0:
        raise TraceError(file, None, f"{key}: probabilities sum to 0")
    order = np.argsort(tokens, kind="stable")
    cdf = np.cumsum(probs[order]) / total
    cdf[-1] = 1.0
    return tokens[order].astype(np.int32), cdf


def _first_bad_pair(inner: str) -> str:
    pairs = inner.split(",")
    if not pairs[-1].strip():
        pairs.pop()
    for pair in pairs:
        if _PAIR_RE.fullmatch(pair.strip()) is None:
            return f"expected token: probability, got {pair.strip()[:60]!r}"
    return "expected {token: probability, ...}"


def read_dataset(path: Path) -> ClientLengths | None:
    """A client's ``chunk-N-dataset.json``; None when every window is empty."""
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_DATASET_BYTES:
            raise TraceError(file, None, f"larger than {MAX_DATASET_BYTES // 2**20} MB")
        raw = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(file, None, f"cannot read: {exc}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        line = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
        raise TraceError(file, line, f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TraceError(file, None, "expected an object keyed by window start (seconds)")
    starts: list[float] = []
    windows: list[Lengths] = []
    for key, fields in raw.items():
        try:
            start = float(key)
        except ValueError:
            start = math.nan
        if not math.isfinite(start) or start < 0:
            raise TraceError(file, None, f"key {key!r}: expected a window start in seconds")
        if not isinstance(fields, dict) or not all(isinstance(fields.get(f), str) for f in FIELDS):
            raise TraceError(file, None, f"{key}: expected {' and '.join(FIELDS)} strings")
        inp = parse_distribution(file, f"{key}.input_tokens", fields["input_tokens"])
        out = parse_distribution(file, f"{key}.output_tokens", fields["output_tokens"])
        if inp is None or out is None:
            continue  # idle (ServeGen skips a window missing either field)
        starts.append(start)
        windows.append(Lengths(inp[0], inp[1], out[0], out[1]))
    if not windows:
        return None
    order = np.argsort(np.asarray(starts), kind="stable")
    sorted_starts = np.asarray(starts, dtype=np.float64)[order]
    if np.any(np.diff(sorted_starts) == 0):
        raise TraceError(file, None, "two windows share a start")
    return ClientLengths(sorted_starts, tuple(windows[i] for i in order))
