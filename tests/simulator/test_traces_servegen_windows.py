"""ServeGen window files, one client: each window's rate and arrival pattern, seeded, bad rows
located."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from simulator.traces import TraceError, load_trace
from simulator.traces.servegen import mean_gap_s, weibull_shape_for_cv
from tests.simulator.trace_support import SAMPLES, write_file

SERVEGEN_HEADER = "t_seconds,rate_rps,cv,pattern,shape,scale\n"


def test_servegen_windows_produce_their_rates(tmp_path: Path) -> None:
    # 2 rps Gamma (cv 2, given as shape/scale), 0 rps, 5 rps Weibull (cv 0.5, derived).
    shape = 0.25
    path = write_file(
        tmp_path / "client.csv",
        SERVEGEN_HEADER
        + f"0,2.0,2.0,Gamma,{shape},{1 / (2.0 * shape)}\n"
        + "600,0,,Gamma,,\n"
        + "1200,5.0,0.5,Weibull,,\n",
    )
    loaded = load_trace(path, seed=1)
    counts = np.histogram(loaded.arrival_s, bins=[0, 600, 1200, 1800])[0]
    # Poisson-like bounds: 1200 and 3000 expected; a cv-2 renewal process has ~4x the variance.
    assert abs(counts[0] - 1200) < 5 * math.sqrt(4 * 1200)
    assert counts[1] == 0
    assert abs(counts[2] - 3000) < 5 * math.sqrt(3000)
    gaps = np.diff(loaded.arrival_s[loaded.arrival_s >= 1200])
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(0.5, abs=0.05)
    assert loaded.input_tokens.mean() == pytest.approx(200, rel=0.1)


def test_servegen_sample_mean_rate_matches_its_windows() -> None:
    path = SAMPLES / "servegen-client-sample.csv"
    rates = np.loadtxt(path, delimiter=",", skiprows=1, usecols=1)
    loaded = load_trace(path, seed=4)
    expected = float(rates.sum() * 600)
    assert abs(len(loaded) - expected) < 5 * math.sqrt(3 * expected)


def test_servegen_is_seeded(tmp_path: Path) -> None:
    path = SAMPLES / "servegen-client-sample.csv"
    first, again, other = (load_trace(path, seed=s) for s in (9, 9, 10))
    np.testing.assert_array_equal(first.arrival_s, again.arrival_s)
    assert len(first) != len(other) or not np.array_equal(first.arrival_s, other.arrival_s)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("600,2.0,1.0,Pareto,,", "pattern: must be Gamma or Weibull"),
        ("600,-1,1.0,Gamma,,", "rate_rps: must be >= 0"),
        ("600,2.0,,Weibull,,", "cv: not a number"),
        ("0,2.0,1.0,Gamma,,", "t_seconds must increase"),
        ("600,2.0,1.0", "expected 6 fields"),
    ],
)
def test_bad_servegen_rows_are_located(tmp_path: Path, row: str, problem: str) -> None:
    path = write_file(tmp_path / "c.csv", SERVEGEN_HEADER + "0,1.0,1.0,Gamma,,\n" + row + "\n")
    with pytest.raises(TraceError) as caught:
        load_trace(path, "servegen")
    assert caught.value.line == 3
    assert problem in caught.value.problem


@pytest.mark.parametrize("cv", [0.3, 1.0, 2.5])
def test_weibull_shape_for_cv_has_that_cv(cv: float) -> None:
    k = weibull_shape_for_cv(cv)
    g1, g2 = math.gamma(1 + 1 / k), math.gamma(1 + 2 / k)
    assert math.sqrt(g2 / g1**2 - 1) == pytest.approx(cv, rel=1e-6)
    assert mean_gap_s("weibull", 1.0, 1.0) == 1.0  # k = 1 is the exponential
