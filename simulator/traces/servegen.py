"""ServeGen per-client window files: ``t_seconds,rate_rps,cv,pattern,shape,scale``.

Each row describes one window (10 minutes in the published data) starting at ``t_seconds``:
the mean arrival rate (requests/s), the coefficient of variation of inter-arrival times, and
the renewal process fitted to them (``pattern`` Gamma or Weibull with ``shape`` and ``scale``,
inter-arrival times in seconds). A window lasts until the next row's ``t_seconds`` (the last
one ``window_s``). Arrivals are drawn from each window's fitted process, seeded.

When ``shape``/``scale`` are empty they are derived from ``rate_rps`` and ``cv`` (Gamma:
shape = 1/cv², scale = 1/(rate·shape); Weibull: the shape whose cv matches, scale from the
mean). When given, their mean inter-arrival time must agree with ``rate_rps`` within 10%,
or the row is rejected as inconsistent.

The files carry no token counts: input/output tokens are drawn from log-normal distributions
(means ``input_tokens_mean``/``output_tokens_mean``, default the ~200/~180 ShareGPT mix of
DESIGN.md §6). Windows are few (144 a day), so rows are read with the csv module; requests are
generated with vectorised numpy.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from simulator.traces._collect import Collector
from simulator.traces.trace import Trace, TraceError

COLUMNS = ("t_seconds", "rate_rps", "cv", "pattern", "shape", "scale")
RATE_TOLERANCE = 0.10
"""Largest relative gap allowed between ``rate_rps`` and the rate its shape/scale imply."""


@dataclass(frozen=True, slots=True)
class Window:
    """One window's renewal process: inter-arrival times ~ pattern(shape, scale), seconds."""

    line: int
    start_s: float
    rate_rps: float
    pattern: str  # "gamma" or "weibull"
    shape: float
    scale: float

    @property
    def mean_gap_s(self) -> float:
        return mean_gap_s(self.pattern, self.shape, self.scale)

    def gaps(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        if self.pattern == "gamma":
            return rng.gamma(self.shape, self.scale, size=n)
        return rng.weibull(self.shape, size=n) * self.scale


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


def matches(header: list[str]) -> bool:
    return {"t_seconds", "rate_rps"} <= {n.strip().lower() for n in header}


def read_windows(path: Path) -> list[Window]:
    """The file's windows, validated; ``TraceError`` naming the line of the first bad row."""
    file = str(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise TraceError(
                file, 1, f"missing column {', '.join(missing)} (need {','.join(COLUMNS)})"
            )
        position = {c: header.index(c) for c in COLUMNS}
        windows: list[Window] = []
        for fields in reader:
            line = reader.line_num
            if not any(field.strip() for field in fields):
                raise TraceError(file, line, "empty line")
            if len(fields) != len(header):
                raise TraceError(file, line, f"expected {len(header)} fields, got {len(fields)}")
            row = {c: fields[position[c]].strip() for c in COLUMNS}
            window = _window(file, line, row)
            if windows and window.start_s <= windows[-1].start_s:
                raise TraceError(file, line, "t_seconds must increase from row to row")
            windows.append(window)
    return windows


def _number(file: str, line: int, key: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(file, line, f"{key}: not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise TraceError(file, line, f"{key}: must be {'>' if positive else '>='} 0, got {text}")
    return value


def _window(file: str, line: int, row: dict[str, str]) -> Window:
    start = _number(file, line, "t_seconds", row["t_seconds"])
    rate = _number(file, line, "rate_rps", row["rate_rps"])
    pattern = row["pattern"].lower()
    if rate == 0:
        return Window(line, start, 0.0, "gamma", 1.0, 1.0)
    if pattern not in ("gamma", "weibull"):
        raise TraceError(file, line, f"pattern: must be Gamma or Weibull, got {row['pattern']!r}")
    if row["shape"] or row["scale"]:
        shape = _number(file, line, "shape", row["shape"], positive=True)
        scale = _number(file, line, "scale", row["scale"], positive=True)
        implied = 1.0 / mean_gap_s(pattern, shape, scale)
        if abs(implied - rate) > RATE_TOLERANCE * rate:
            raise TraceError(
                file,
                line,
                f"{row['pattern']}(shape={shape:g}, scale={scale:g}) gives {implied:.4g} req/s "
                f"but rate_rps is {rate:g} (more than {RATE_TOLERANCE:.0%} apart)",
            )
        return Window(line, start, rate, pattern, shape, scale)
    cv = _number(file, line, "cv", row["cv"], positive=True)
    if pattern == "gamma":
        shape = 1.0 / (cv * cv)
        return Window(line, start, rate, pattern, shape, 1.0 / (rate * shape))
    shape = weibull_shape_for_cv(cv)
    return Window(line, start, rate, pattern, shape, 1.0 / (rate * math.gamma(1.0 + 1.0 / shape)))


def arrivals(
    windows: list[Window], rng: np.random.Generator, window_s: float
) -> npt.NDArray[np.float64]:
    """Arrival times (seconds) of every window's renewal process, in order.

    Each window starts afresh: its first arrival comes a uniform fraction of one gap after the
    window opens (no arrivals pile up on window edges), then gaps follow the fitted law until
    the window closes.
    """
    parts: list[npt.NDArray[np.float64]] = []
    for i, window in enumerate(windows):
        end = windows[i + 1].start_s if i + 1 < len(windows) else window.start_s + window_s
        length = end - window.start_s
        if window.rate_rps == 0 or length <= 0:
            continue
        expected = window.rate_rps * length
        gaps = window.gaps(rng, int(expected * 1.2 + 10.0 * math.sqrt(expected) + 10))
        gaps[0] *= rng.random()
        times = np.cumsum(gaps)
        while times[-1] < length:
            more = np.cumsum(window.gaps(rng, int(expected * 0.2) + 10)) + times[-1]
            times = np.concatenate([times, more])
        parts.append(window.start_s + times[: int(np.searchsorted(times, length))])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def lognormal_tokens(
    rng: np.random.Generator, n: int, mean: float, sigma: float
) -> npt.NDArray[np.int32]:
    """``n`` token counts from a log-normal with the given mean, at least 1."""
    mu = math.log(mean) - sigma * sigma / 2.0
    return np.maximum(np.rint(rng.lognormal(mu, sigma, size=n)), 1).astype(np.int32)


def load(
    path: Path,
    model: str,
    seed: int,
    *,
    window_s: float = 600.0,
    input_tokens_mean: float = 200.0,
    output_tokens_mean: float = 180.0,
    token_sigma: float = 0.8,
) -> Trace:
    rng = np.random.default_rng(seed)
    times = arrivals(read_windows(path), rng, window_s)
    n = times.shape[0]
    collector = Collector(path.name)
    collector.add(
        np.zeros(n, dtype=np.int32),
        lognormal_tokens(rng, n, input_tokens_mean, token_sigma),
        lognormal_tokens(rng, n, output_tokens_mean, token_sigma),
        arrival_s=times,
    )
    return collector.finish([model])
