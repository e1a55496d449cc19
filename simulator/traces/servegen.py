"""ServeGen clients: per-window arrival laws (``chunk-N-trace.csv``), one model per directory.

ServeGen (alibaba/ServeGen; Xiang et al., "ServeGen: Workload Characterization and Generation of
Large Language Model Serving in Production", arXiv:2505.09999) publishes each model's traffic as
one pair of files per client N: ``chunk-N-trace.csv`` and, for most clients,
``chunk-N-dataset.json`` (request lengths, see ``servegen_lengths``). A window file has no
header and one row per 600-second window::

    window_start_s, rate, cv, pattern, shape, scale

``rate`` is the window's requests per second (published as count / 600), ``pattern`` ``Gamma`` or
``Weibull`` with that law's ``shape`` and ``scale`` fitted to the inter-arrival times. Idle
windows have rate 0 and an empty pattern (the last fields empty or 0). The older headered form
(``t_seconds,rate_rps,cv,pattern,shape,scale``, any column order, shape and scale may be empty
and are then derived from ``rate_rps`` and ``cv``) is read too.

Generation follows ServeGen's ``servegen/construct.py``: per client and window,
``n = ceil(multiplier × rate × window length)`` gaps from the fitted law, rescaled to sum to
the window's length. The rate column sets how many requests, the law only their burstiness, so
a law whose own mean disagrees with the rate (common in the published files) is fine. The
window's n requests arrive at the rescaled partial sums 0, S_1, …, S_{n-1}; ServeGen puts them
at S_1, …, S_n and its ``< end`` filter drops the one on the window's end, so it yields one
request fewer in most windows. Rounding in ``rate × 600`` never adds a request (a relative
1e-12 is taken off before the ceiling). A directory's clients are superposed into one model
named after the directory. ``load`` returns the requests; ``servegen_bins`` the per-second
counts of exactly the same arrivals without holding them (``_servegen_kernel``).
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt

from simulator.traces import _servegen_kernel as kernel
from simulator.traces._text import check_text
from simulator.traces.bins import ArrivalBins, LengthMix
from simulator.traces.servegen_lengths import DEFAULT_LENGTHS, ClientLengths, read_dataset
from simulator.traces.trace import DEFAULT_EPOCH_S, Trace, TraceError, build_trace

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

COLUMNS = ("t_seconds", "rate_rps", "cv", "pattern", "shape", "scale")
"""Column names of the headered form; the published form has these six fields, no header."""
WINDOW_S = 600.0
"""Length of the last window (every other lasts until the next row), seconds."""
MIX_PERIOD_S = 6 * 3600.0
"""Period of the aggregated form's length mix: ServeGen's dataset windows, seconds."""
COMPONENT_SAMPLES = 1024
"""(input, output) pairs per component of the length mix (one client over one of its dataset
windows), at evenly spaced quantiles."""
_CHUNK_RE = re.compile(r"chunk-(\d+)-trace\.csv")
_ROUNDING = 1e-12
_PATTERNS = {"gamma": kernel.GAMMA, "weibull": kernel.WEIBULL}

Progress = Callable[[int, int], None]
"""Called as ``progress(requests generated so far, total requests)``."""


@dataclass(frozen=True, eq=False)
class Client:
    """One client's windows as columns (idle windows have pattern ``IDLE``).

    number:   N of ``chunk-N-trace.csv`` (0 for a file named otherwise); seeds its arrivals.
    start_s:  window starts, seconds, increasing.
    length_s: window lengths, seconds (until the next row; the last ``WINDOW_S``).
    rate_rps: requests per second.
    pattern, shape, scale: the inter-arrival law (``_servegen_kernel`` codes).
    lengths:  request lengths from the dataset file, or None (``DEFAULT_LENGTHS``).
    """

    file: str
    number: int
    start_s: F64
    length_s: F64
    rate_rps: F64
    pattern: npt.NDArray[np.uint8]
    shape: F64
    scale: F64
    lengths: ClientLengths | None = None

    def requests(self, multiplier: float = 1.0) -> I64:
        """Requests per window: ``ceil(multiplier × rate × length)``, 0 when idle."""
        expected = multiplier * self.rate_rps * self.length_s * (1.0 - _ROUNDING)
        counts = np.ceil(expected).astype(np.int64)
        counts[self.pattern == kernel.IDLE] = 0
        return counts


def mean_gap_s(pattern: str, shape: float, scale: float) -> float:
    """Mean inter-arrival time of Gamma(shape, scale) or Weibull(shape, scale), seconds."""
    if pattern == "gamma":
        return shape * scale
    return scale * math.gamma(1.0 + 1.0 / shape)


def weibull_shape_for_cv(cv: float) -> float:
    """The Weibull shape k with coefficient of variation ``cv`` (bisection; cv falls as k grows)."""

    def cv_of(k: float) -> float:
        g1 = math.gamma(1.0 + 1.0 / k)
        return math.sqrt(max(math.gamma(1.0 + 2.0 / k) / (g1 * g1) - 1.0, 0.0))

    low, high = 0.05, 50.0
    for _ in range(100):
        mid = math.sqrt(low * high)
        if cv_of(mid) > cv:
            low = mid
        else:
            high = mid
    return math.sqrt(low * high)


# --- detection -----------------------------------------------------------------------------


def matches(header: list[str]) -> bool:
    """The headered form's first line, or a published (headerless) row."""
    if {"t_seconds", "rate_rps"} <= {n.strip().lower() for n in header}:
        return True
    return is_window_row(header)


def is_window_row(fields: Sequence[str]) -> bool:
    """A published row: six fields, numeric start and rate, pattern Gamma, Weibull or empty."""
    if len(fields) != len(COLUMNS):
        return False
    try:
        float(fields[0])
        float(fields[1])
    except ValueError:
        return False
    return fields[3].strip().lower() in ("", "gamma", "weibull")


def trace_files(directory: Path) -> list[tuple[int, Path]]:
    """The directory's ``chunk-N-trace.csv`` files as (N, path), by N."""
    found = []
    for path in directory.iterdir():
        match = _CHUNK_RE.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and bool(trace_files(path))


# --- reading -------------------------------------------------------------------------------


def read_client(path: Path, number: int = 0, *, with_lengths: bool = True) -> Client:
    """One window file (either form), with the sibling ``chunk-N-dataset.json`` if any."""
    file = str(path)
    check_text(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(enumerate(csv.reader(f), start=1))
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(file, None, f"cannot read: {exc}") from None
    except csv.Error as exc:
        raise TraceError(file, None, f"malformed CSV: {exc}") from None
    position = {c: i for i, c in enumerate(COLUMNS)}
    width = len(COLUMNS)
    if rows and not is_window_row(rows[0][1]):
        header = [h.strip().lower() for h in rows[0][1]]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise TraceError(
                file, 1, f"missing column {', '.join(missing)} (need {','.join(COLUMNS)})"
            )
        position = {c: header.index(c) for c in COLUMNS}
        width = len(header)
        rows = rows[1:]
    fast = _fast_columns([fields for _, fields in rows], position, width)
    if fast is None:  # something is off: find the first bad line, or derive shape and scale
        fast = _slow_columns(file, rows, position, width)
    start_s, rate_rps, patterns, shape, scale = fast
    if not patterns.size:
        raise TraceError(file, None, "no windows")
    length_s = np.diff(start_s, append=start_s[-1] + WINDOW_S)
    lengths = None
    if with_lengths:
        dataset = path.with_name(f"chunk-{number}-dataset.json")
        if _CHUNK_RE.fullmatch(path.name) and dataset.is_file():
            lengths = read_dataset(dataset)
    return Client(
        file=file,
        number=number,
        start_s=start_s,
        length_s=length_s,
        rate_rps=rate_rps,
        pattern=patterns,
        shape=shape,
        scale=scale,
        lengths=lengths,
    )


_Columns = tuple[F64, F64, npt.NDArray[np.uint8], F64, F64]


def _fast_columns(rows: list[list[str]], position: dict[str, int], width: int) -> _Columns | None:
    """The columns, vectorised; None when any row needs the row-by-row path."""
    if any(len(fields) != width for fields in rows):
        return None
    cols = list(zip(*rows, strict=True)) if rows else [()] * width
    try:
        start = np.asarray(cols[position["t_seconds"]], dtype=np.float64)
        rate = np.asarray(cols[position["rate_rps"]], dtype=np.float64)
        shape = np.asarray([x.strip() or "nan" for x in cols[position["shape"]]], np.float64)
        scale = np.asarray([x.strip() or "nan" for x in cols[position["scale"]]], np.float64)
    except ValueError:
        return None
    codes = {"": kernel.IDLE, **_PATTERNS}
    try:
        pattern = np.asarray(
            [codes[p.strip().lower()] for p in cols[position["pattern"]]], dtype=np.uint8
        )
    except KeyError:
        return None
    active = rate > 0
    laws = shape[active], scale[active]
    good = (
        np.isfinite(start).all()
        and np.isfinite(rate).all()
        and (start >= 0).all()
        and (rate >= 0).all()
        and bool(np.all(np.diff(start) > 0))
        and bool(np.all(pattern[active] != kernel.IDLE))
        and all(bool(np.all(np.isfinite(x) & (x > 0))) for x in laws)
    )
    if not good:
        return None
    pattern[~active] = kernel.IDLE
    shape[~active] = 0.0
    scale[~active] = 0.0
    return start, rate, pattern, shape, scale


def _slow_columns(
    file: str, rows: list[tuple[int, list[str]]], position: dict[str, int], width: int
) -> _Columns:
    """Row by row: a ``TraceError`` at the first bad line, shape and scale derived from cv where
    the old headered form leaves them empty."""
    columns: list[list[float]] = [[] for _ in range(4)]
    patterns: list[int] = []
    for line, fields in rows:
        if not any(field.strip() for field in fields):
            raise TraceError(file, line, "empty line")
        if len(fields) != width:
            raise TraceError(file, line, f"expected {width} fields, got {len(fields)}")
        row = {c: fields[position[c]].strip() for c in COLUMNS}
        start, rate, pattern, shape, scale = _window(file, line, row)
        if columns[0] and start <= columns[0][-1]:
            raise TraceError(file, line, "t_seconds must increase from row to row")
        for column, value in zip(columns, (start, rate, shape, scale), strict=True):
            column.append(value)
        patterns.append(pattern)
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    return arrays[0], arrays[1], np.asarray(patterns, dtype=np.uint8), arrays[2], arrays[3]


def _number(file: str, line: int, key: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(file, line, f"{key}: not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise TraceError(file, line, f"{key}: must be {'>' if positive else '>='} 0, got {text}")
    return value


def _window(file: str, line: int, row: dict[str, str]) -> tuple[float, float, int, float, float]:
    """(start, rate, pattern code, shape, scale) of one row."""
    start = _number(file, line, "t_seconds", row["t_seconds"])
    rate = _number(file, line, "rate_rps", row["rate_rps"])
    if rate == 0:
        return start, 0.0, kernel.IDLE, 0.0, 0.0
    pattern = row["pattern"].lower()
    if pattern not in _PATTERNS:
        raise TraceError(file, line, f"pattern: must be Gamma or Weibull, got {row['pattern']!r}")
    code = _PATTERNS[pattern]
    if row["shape"] or row["scale"]:
        shape = _number(file, line, "shape", row["shape"], positive=True)
        scale = _number(file, line, "scale", row["scale"], positive=True)
        return start, rate, code, shape, scale
    cv = _number(file, line, "cv", row["cv"], positive=True)
    if pattern == "gamma":
        shape = 1.0 / (cv * cv)
        return start, rate, code, shape, 1.0 / (rate * shape)
    shape = weibull_shape_for_cv(cv)
    return start, rate, code, shape, 1.0 / (rate * math.gamma(1.0 + 1.0 / shape))


def read_model(path: Path, *, with_lengths: bool = True) -> list[Client]:
    """A directory's clients (by N), or one window file as a one-client model."""
    if path.is_dir():
        files = trace_files(path)
        if not files:
            raise TraceError(str(path), None, "no chunk-N-trace.csv files in this directory")
        for extra in sorted(path.glob("chunk-*-dataset.json")):
            twin = extra.with_name(extra.name.replace("-dataset.json", "-trace.csv"))
            if not twin.is_file():
                raise TraceError(str(extra), None, f"no {twin.name} beside it")
        return [read_client(p, n, with_lengths=with_lengths) for n, p in files]
    match = _CHUNK_RE.fullmatch(path.name)
    return [read_client(path, int(match.group(1)) if match else 0, with_lengths=with_lengths)]


def estimated_requests(path: Path, multiplier: float = 1.0) -> int:
    """Exactly the requests ``load`` would generate: the sum of ``ceil(multiplier × rate ×
    length)`` over every client's windows (window files only are read)."""
    return int(sum(int(c.requests(multiplier).sum()) for c in read_model(path, with_lengths=False)))


# --- generation ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Rows:
    """Every active client-window, by start time: the generation kernel's input."""

    start_s: F64
    length_s: F64
    n: I64
    pattern: npt.NDArray[np.uint8]
    shape: F64
    scale: F64
    seeds: npt.NDArray[np.uint64]
    client: I64  # index into the client list
    window: I64  # row of the client's file

    @property
    def total(self) -> int:
        return int(self.n.sum())


def _rows(clients: Sequence[Client], multiplier: float, seed: int) -> _Rows:
    if not multiplier >= 0 or not math.isfinite(multiplier):
        raise ValueError(f"rate multiplier must be >= 0, got {multiplier}")
    parts: dict[str, list[npt.NDArray[np.generic]]] = {k: [] for k in _Rows.__dataclass_fields__}
    for index, client in enumerate(clients):
        n = client.requests(multiplier)
        active = np.flatnonzero(n > 0)
        parts["start_s"].append(client.start_s[active])
        parts["length_s"].append(client.length_s[active])
        parts["n"].append(n[active])
        parts["pattern"].append(client.pattern[active])
        parts["shape"].append(client.shape[active])
        parts["scale"].append(client.scale[active])
        seeds = [kernel.row_seed(seed, client.number, int(w)) for w in active]
        parts["seeds"].append(np.asarray(seeds, dtype=np.uint64))
        parts["client"].append(np.full(active.shape[0], index, dtype=np.int64))
        parts["window"].append(active.astype(np.int64))
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(joined["start_s"], kind="stable")
    return _Rows(**{k: np.ascontiguousarray(v[order]) for k, v in joined.items()})


def _model_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def load(path: Path, model: str | None = None, seed: int = 0, *, multiplier: float = 1.0) -> Trace:
    """Every request of the model (one file or a directory of clients), seeded.

    model:      the trace's model name (default: the directory's name, or the file's stem).
    multiplier: scales every window's request count inside the generator (``--rate``).
    """
    clients = read_model(path)
    rows = _rows(clients, multiplier, seed)
    offsets = np.concatenate([[0], np.cumsum(rows.n)]).astype(np.int64)
    times = np.empty(rows.total, dtype=np.float64)
    kernel.arrival_times(
        rows.start_s, rows.length_s, rows.n, rows.pattern, rows.shape, rows.scale,
        rows.seeds, offsets, times,
    )  # fmt: skip
    inputs = np.empty(rows.total, dtype=np.int32)
    outputs = np.empty(rows.total, dtype=np.int32)
    for index, client in enumerate(clients):
        mine = np.flatnonzero(rows.client == index)  # this client's rows, in time order
        if not mine.size:
            continue
        spans = [np.arange(offsets[r], offsets[r + 1]) for r in mine]
        where = np.concatenate(spans)
        rng = np.random.default_rng([seed % 2**64, client.number, 1])
        inp, out = _client_lengths(client, rows.start_s[mine], rows.n[mine], rng)
        inputs[where], outputs[where] = inp, out
    return build_trace(
        times,
        np.zeros(rows.total, dtype=np.int32),
        [model or _model_name(path)],
        inputs,
        outputs,
        source=path.name,
    )


def _client_lengths(
    client: Client, starts: F64, counts: I64, rng: np.random.Generator
) -> tuple[I32, I32]:
    """Tokens for ``counts[i]`` requests in the windows starting at ``starts[i]`` (increasing)."""
    total = int(counts.sum())
    if client.lengths is None:
        return DEFAULT_LENGTHS.sample(rng, total)
    window = np.repeat(client.lengths.index_at(starts), counts)  # non-decreasing
    u = rng.random(total)
    inputs = np.empty(total, dtype=np.int32)
    outputs = np.empty(total, dtype=np.int32)
    for w in np.unique(window):
        lo, hi = np.searchsorted(window, [w, w + 1])
        inputs[lo:hi], outputs[lo:hi] = client.lengths.windows[int(w)].sample(u[lo:hi])
    return inputs, outputs


# --- the aggregated form -------------------------------------------------------------------


def servegen_bins(
    path: Path,
    *,
    rate: float = 1.0,
    seed: int = 0,
    bin_s: float = 1.0,
    progress: Progress | None = None,
    model: str | None = None,
) -> ArrivalBins:
    """Per-``bin_s`` arrival counts of exactly the arrivals ``load`` generates, without holding
    them: window by window, in memory proportional to the number of bins. The length mix
    follows the clients window by window (``_mix``)."""
    if not bin_s > 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s}")
    clients = read_model(path)
    rows = _rows(clients, rate, seed)
    end_s = max(float(c.start_s[-1] + c.length_s[-1]) for c in clients)
    n_bins = max(1, math.ceil(end_s / bin_s))
    lanes = max(1, min(numba.get_num_threads(), 8))
    sums = np.zeros((lanes, n_bins), dtype=np.float64)
    total = rows.total
    if not total:
        raise TraceError(str(path), None, "the trace has no requests")
    done = 0
    if progress is not None:
        progress(0, total)
    for lo, hi in _batches(rows.n, parts=100):
        bounds = _split(rows.n[lo:hi], lanes) + lo
        kernel.bin_arrivals(
            rows.start_s, rows.length_s, rows.n, rows.pattern, rows.shape, rows.scale,
            rows.seeds, bounds, bin_s, sums,
        )  # fmt: skip
        done += int(rows.n[lo:hi].sum())
        if progress is not None:
            progress(done, total)
    counts = sums.sum(axis=0)
    del sums
    mix = _mix(clients, rows, n_windows=max(1, math.ceil(end_s / WINDOW_S)))
    return ArrivalBins(
        models=(model or _model_name(path),),
        counts=counts.reshape(1, n_bins),
        mixes=(mix,),
        bin_s=bin_s,
        epoch_s=DEFAULT_EPOCH_S,
        source=path.name,
    )


def _batches(n: I64, parts: int) -> list[tuple[int, int]]:
    """Row ranges of about ``1/parts`` of the requests each (whole rows)."""
    if not n.size:
        return []
    cuts = np.searchsorted(np.cumsum(n), np.linspace(0, n.sum(), parts + 1)[1:-1], side="right")
    edges = np.unique(np.concatenate([[0], cuts, [n.size]]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _split(n: I64, lanes: int) -> I64:
    """Boundaries of ``lanes`` contiguous runs of rows with about equal requests."""
    cum = np.cumsum(n)
    cuts = np.searchsorted(cum, np.arange(1, lanes) * (cum[-1] / lanes), side="left")
    return np.concatenate([[0], cuts, [n.size]]).astype(np.int64)


def _mix(clients: Sequence[Client], rows: _Rows, n_windows: int) -> LengthMix:
    """The model's request lengths window by window, as ServeGen's clients send them.

    Components: each client's length distribution over each of its dataset windows (6 hours),
    ``COMPONENT_SAMPLES`` (input, output) pairs at evenly spaced quantiles (input and output
    drawn at the same quantile, as the generator does; stratified, so a component's mean is
    exact to a fraction of a percent), and one component for the documented default lengths.
    Weights: per 10-minute window, each component's share of the window's requests, so the mix
    follows which clients are busy from window to window; a window without requests takes the
    nearest earlier one's mix. ``n_windows``: the trace's 10-minute windows."""
    quantiles = (np.arange(COMPONENT_SAMPLES) + 0.5) / COMPONENT_SAMPLES
    dataset = np.full(rows.n.shape[0], -1, dtype=np.int64)
    for index, client in enumerate(clients):
        mine = rows.client == index
        if client.lengths is not None and mine.any():
            dataset[mine] = client.lengths.index_at(rows.start_s[mine])
    # Component ids: (client, dataset window) pairs; every default-length row shares one.
    keys = np.where(dataset >= 0, rows.client * (1 << 20) + dataset, -1)
    unique, component = np.unique(keys, return_inverse=True)
    inputs = np.zeros((unique.size, COMPONENT_SAMPLES), dtype=np.int32)
    outputs = np.zeros((unique.size, COMPONENT_SAMPLES), dtype=np.int32)
    for c, key in enumerate(unique.tolist()):
        if key < 0:
            inputs[c], outputs[c] = DEFAULT_LENGTHS.at_quantiles(quantiles)
        else:
            lengths = clients[key >> 20].lengths
            assert lengths is not None
            inputs[c], outputs[c] = lengths.windows[key & ((1 << 20) - 1)].sample(quantiles)
    window = np.minimum((rows.start_s // WINDOW_S).astype(np.int64), n_windows - 1)
    weights = np.zeros((n_windows, unique.size))
    np.add.at(weights, (window, component.ravel()), rows.n.astype(np.float64))
    busy = weights.sum(axis=1) > 0
    weights[busy] /= weights[busy].sum(axis=1, keepdims=True)
    source = _nearest_filled(busy)
    return LengthMix(
        period_s=WINDOW_S, input_tokens=inputs, output_tokens=outputs, weights=weights[source]
    )


def _nearest_filled(filled: npt.NDArray[np.bool_]) -> I64:
    """For each period, itself if filled, else the latest filled before it, else the first."""
    index = np.where(filled, np.arange(filled.size), -1)
    latest = np.maximum.accumulate(index)
    first = int(np.argmax(filled))
    return np.where(latest >= 0, latest, first).astype(np.int64)
