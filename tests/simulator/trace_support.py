"""Helpers shared by the trace tests: the bundled samples, a small trace, a file written inline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from simulator.traces import Trace, build_trace

SAMPLES = Path(__file__).resolve().parents[2] / "simulator" / "data" / "traces"
GENERIC_HEADER = "arrival_s,model,input_tokens,output_tokens\n"
GOOD_ROW = "1.0,m,10,20\n"


def write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def small_trace(arrival: list[float], model: list[int], models: tuple[str, ...]) -> Trace:
    """A trace of the given arrivals (seconds) and model indices; request i has 10 + i input
    and 100 + i output tokens, so a test can tell the requests apart after sorting."""
    n = len(arrival)
    return build_trace(
        np.array(arrival, np.float64),
        np.array(model, np.int32),
        models,
        np.arange(n, dtype=np.int32) + 10,
        np.arange(n, dtype=np.int32) + 100,
    )


def hourly_counts(trace: Trace) -> npt.NDArray[np.int64]:
    """Requests per hour of the first day."""
    return np.bincount((trace.arrival_s // 3600).astype(np.int64), minlength=24)[:24]
