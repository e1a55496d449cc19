"""ServeGen as published: window files, a directory of clients as one model, the generator
(counts, rescaling, seeding), request lengths from the dataset files, the aggregated form."""

from __future__ import annotations

import contextlib
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.traces import TraceError, load_trace, merge
from simulator.traces import _servegen_kernel as kernel
from simulator.traces.bins import bins_from_trace
from simulator.traces.loader import detect_format, estimated_requests, load_bins
from simulator.traces.servegen import COMPONENT_SAMPLES, MIX_PERIOD_S, servegen_bins
from simulator.traces.servegen_lengths import parse_distribution

WINDOW = 600


def _row(
    start: int, count: int, pattern: str = "Gamma", shape: float = 0.5, scale: float = 3.0
) -> str:
    """A published row: the rate is the window's count / 600, as ServeGen writes it."""
    if count == 0:
        return f"{start},0,0,,0,0"
    return f"{start},{count / WINDOW!r},1.7,{pattern},{shape!r},{scale!r}"


def _client(path: Path, counts: list[int], pattern: str = "Gamma", shape: float = 0.5) -> Path:
    rows = [_row(i * WINDOW, c, pattern, shape) for i, c in enumerate(counts)]
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())  # CRLF, as published
    return path


def _dataset(path: Path, windows: dict[int, tuple[dict[int, float], dict[int, float]]]) -> Path:
    body = {
        str(start): {"input_tokens": str(inp), "output_tokens": str(out)}
        for start, (inp, out) in windows.items()
    }
    path.write_text(json.dumps(body, indent=2))
    return path


def _per_window(times: npt.NDArray[np.float64], windows: int) -> npt.NDArray[np.int64]:
    return np.bincount((times // WINDOW).astype(np.int64), minlength=windows)[:windows]


# --- the window files ----------------------------------------------------------------------


def test_a_published_file_loads_and_each_window_gets_exactly_its_count(tmp_path: Path) -> None:
    # Window 0: Gamma whose own mean gap (0.5 x 3 s = 1.5 s, 400 requests in 600 s) is far from
    # the rate's (0.1 s) - ServeGen rescales, so this row is fine. Window 1 idle, window 2
    # Weibull, window 3 idle with empty trailing fields.
    path = tmp_path / "chunk-7-trace.csv"
    rows = [_row(0, 6000), _row(600, 0), _row(1200, 250, "Weibull", 0.4, 0.01), "1800,0,,,,"]
    path.write_text("\r\n".join(rows) + "\r\n")
    assert detect_format(path) == "servegen"
    loaded = load_trace(path, seed=1)
    np.testing.assert_array_equal(_per_window(loaded.arrival_s, 4), [6000, 0, 250, 0])
    assert loaded.models == ("chunk-7-trace",)


def test_the_fitted_law_sets_burstiness_not_the_rate(tmp_path: Path) -> None:
    # Gamma shape 0.25 has cv 2; Weibull shape 1 is the exponential (cv 1). Rescaling by a
    # constant keeps the cv; the first arrival opens the window, the rest stay inside it.
    path = tmp_path / "c.csv"
    path.write_text(
        _row(0, 30000, "Gamma", 0.25, 40.0) + "\n" + _row(600, 30000, "Weibull", 1.0, 9.0)
    )
    times = load_trace(path, "servegen", seed=2).arrival_s
    for w in range(2):
        inside = times[(times >= w * WINDOW) & (times < (w + 1) * WINDOW)]
        assert inside[0] == w * WINDOW
        gaps = np.diff(inside)
        assert gaps.mean() == pytest.approx(WINDOW / 30000, rel=0.01)
        assert gaps.std() / gaps.mean() == pytest.approx(2.0 if w == 0 else 1.0, rel=0.05)


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(0, 3000), min_size=1, max_size=6),
    multiplier=st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0]),
)
def test_counts_are_ceil_of_multiplier_times_the_published_count(
    tmp_path_factory: pytest.TempPathFactory, counts: list[int], multiplier: float
) -> None:
    # The rate column is count / 600 in floating point; the product's rounding must not add a
    # request, so the exact answer is ceil(multiplier x count).
    if not any(counts):
        counts = [*counts, 1]
    path = _client(tmp_path_factory.mktemp("sg") / "chunk-0-trace.csv", counts)
    expected = [math.ceil(Fraction(multiplier) * c) for c in counts]
    assert estimated_requests(path, multiplier) == sum(expected)
    loaded = load_trace(path, seed=0, rate=multiplier)
    np.testing.assert_array_equal(_per_window(loaded.arrival_s, len(counts)), expected)


def test_the_old_headered_form_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_text("t_seconds,rate_rps,cv,pattern,shape,scale\n0,2.0,2.0,Gamma,,\n600,0,,,,\n")
    np.testing.assert_array_equal(_per_window(load_trace(path).arrival_s, 2), [1200, 0])


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("600,0.5,1.0,Pareto,1,1", "pattern: must be Gamma or Weibull"),
        ("600,0.5,1.0,,0,0", "pattern: must be Gamma or Weibull"),
        ("600,0.5,1.0,Gamma,0,2", "shape: must be > 0"),
        ("600,x,1.0,Gamma,1,2", "rate_rps: not a number"),
        ("0,0.5,1.0,Gamma,1,2", "t_seconds must increase"),
        ("600,0.5,1.0,Gamma", "expected 6 fields"),
    ],
)
def test_bad_published_rows_name_their_line(tmp_path: Path, row: str, problem: str) -> None:
    path = tmp_path / "chunk-1-trace.csv"
    path.write_text("0,1.0,1.0,Gamma,1.0,1.0\r\n" + row + "\r\n")
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == 2
    assert problem in caught.value.problem


# --- the generator -------------------------------------------------------------------------


def _ks(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    both = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), both, side="right") / a.size
    fb = np.searchsorted(np.sort(b), both, side="right") / b.size
    return float(np.abs(fa - fb).max())


@pytest.mark.parametrize(
    ("pattern", "shape"),
    [
        (kernel.GAMMA, 0.05),
        (kernel.GAMMA, 0.3),
        (kernel.GAMMA, 1.0),
        (kernel.GAMMA, 4.5),
        (kernel.WEIBULL, 0.2),
        (kernel.WEIBULL, 1.0),
        (kernel.WEIBULL, 3.0),
    ],
)
def test_the_kernel_draws_the_law_numpy_draws(pattern: int, shape: float) -> None:
    # Same distribution as numpy's reference samplers: KS distance under the 0.1% critical
    # value for two samples of 20,000 (1.95 x sqrt(2 / n) = 0.0195).
    n, scale = 20_000, 2.5
    ours = np.empty(n)
    kernel._draw(ours, n, pattern, shape, scale, kernel.row_seed(11, 0, 0))
    rng = np.random.default_rng(5)
    if pattern == kernel.GAMMA:
        reference = rng.gamma(shape, scale, n)
    else:
        reference = rng.weibull(shape, n) * scale
    assert _ks(ours, reference) < 0.0195


def test_same_seed_same_arrivals_and_another_seed_others(tmp_path: Path) -> None:
    path = _client(tmp_path / "chunk-3-trace.csv", [500, 0, 800])
    first, again, other = (load_trace(path, seed=s).arrival_s for s in (4, 4, 5))
    np.testing.assert_array_equal(first, again)
    assert first.shape == other.shape
    assert not np.array_equal(first, other)


def test_a_directory_is_one_model_holding_all_its_clients(tmp_path: Path) -> None:
    model = tmp_path / "m-tiny"
    model.mkdir()
    _client(model / "chunk-0-trace.csv", [300, 0, 100])
    _client(model / "chunk-5-trace.csv", [0, 700, 50], "Weibull")
    (model / "notes.txt").write_text("not a client")
    assert detect_format(model) == "servegen"
    together = load_trace(model, seed=8)
    assert together.models == ("m-tiny",)
    np.testing.assert_array_equal(_per_window(together.arrival_s, 3), [300, 700, 150])
    # A client's arrivals do not depend on the company it is loaded in.
    alone = merge([load_trace(model / f"chunk-{n}-trace.csv", seed=8) for n in (0, 5)])
    np.testing.assert_array_equal(together.arrival_s, alone.arrival_s)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"0,0,0,,0,0\r600,0,0,,0,0\r", ":1: line ends in a bare CR"),
        (b"0,0,0,,0,0\n\x00\x01\x02", ":2: binary content"),
    ],
)
def test_a_client_file_that_is_not_text_fails_in_one_line(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    _client(tmp_path / "chunk-0-trace.csv", [10])
    (tmp_path / "chunk-1-trace.csv").write_bytes(content)
    with pytest.raises(TraceError) as caught:
        load_trace(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'chunk-1-trace.csv'}{problem}")


def test_a_directory_without_clients_or_with_a_stray_dataset_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"without chunk-N-trace\.csv"):
        load_trace(tmp_path)
    _client(tmp_path / "chunk-0-trace.csv", [10])
    _dataset(tmp_path / "chunk-2-dataset.json", {0: ({5: 1.0}, {6: 1.0})})
    with pytest.raises(TraceError, match=r"no chunk-2-trace\.csv beside it"):
        load_trace(tmp_path)


# --- request lengths -----------------------------------------------------------------------


def test_lengths_come_from_the_window_in_force(tmp_path: Path) -> None:
    # Dataset windows every 6 h: 0 h idle ("{}"), 6 h one length, 12 h two. Trace windows at
    # 0 h (before any non-empty dataset window: the first one applies), 6 h, 12 h, 18 h (the
    # 12 h one still applies). One uniform draw picks both lengths' quantiles, so input 300
    # always comes with output 7 and input 500 with output 9.
    six = int(MIX_PERIOD_S)
    counts = [0] * 144
    for at in (0, 36, 72, 108):
        counts[at] = 400
    path = _client(tmp_path / "chunk-2-trace.csv", counts)
    _dataset(
        tmp_path / "chunk-2-dataset.json",
        {
            0: ({}, {}),
            six: ({100: 1.0}, {50: 1.0}),
            2 * six: ({300: 0.25, 500: 0.75}, {7: 0.25, 9: 0.75}),
        },
    )
    loaded = load_trace(path, seed=3)
    period = (loaded.arrival_s // six).astype(int)
    for p in (0, 1):
        assert set(loaded.input_tokens[period == p]) == {100}
        assert set(loaded.output_tokens[period == p]) == {50}
    later = period >= 2
    pairs = set(zip(loaded.input_tokens[later], loaded.output_tokens[later], strict=True))
    assert pairs == {(300, 7), (500, 9)}
    share = float(np.mean(loaded.input_tokens[later] == 500))
    assert share == pytest.approx(0.75, abs=4 * math.sqrt(0.75 * 0.25 / 800))


def test_a_client_without_a_dataset_gets_the_default_lengths(tmp_path: Path) -> None:
    loaded = load_trace(_client(tmp_path / "chunk-0-trace.csv", [20000]), seed=1)
    assert loaded.input_tokens.mean() == pytest.approx(200, rel=0.05)
    assert loaded.output_tokens.mean() == pytest.approx(180, rel=0.05)
    assert loaded.input_tokens.min() >= 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"0": {"input_tokens": "{1: 0.5, x: 0.5}", "output_tokens": "{}"}}', "0.input_tokens"),
        ('{"0": {"input_tokens": "{1: nan}", "output_tokens": "{2: 1}"}}', "0.input_tokens"),
        ('{"0": {"input_tokens": "__import__(\'os\')", "output_tokens": "{}"}}', "0.input_tokens"),
        ('{"0": {"input_tokens": "{1: 0}", "output_tokens": "{2: 1}"}}', "sum to 0"),
        (
            '{"0": {"input_tokens": "{1: 1}", "output_tokens": "{99999999999999999999: 1}"}}',
            "above",
        ),
        ('{"0": {"input_tokens": "{1: 1}"}}', "input_tokens and output_tokens"),
        ('{"soon": {"input_tokens": "{1: 1}", "output_tokens": "{2: 1}"}}', "window start"),
        ('{"0": ', "not JSON"),
    ],
)
def test_bad_dataset_files_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    _client(tmp_path / "chunk-4-trace.csv", [10])
    (tmp_path / "chunk-4-dataset.json").write_text(text)
    with pytest.raises(TraceError) as caught:
        load_trace(tmp_path)
    assert "chunk-4-dataset.json" in str(caught.value)
    assert problem in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 2**31 - 1), st.floats(1e-9, 1e3), min_size=1, max_size=40))
def test_a_python_literal_distribution_parses_to_its_cdf(pdf: dict[int, float]) -> None:
    tokens, cdf = parse_distribution("f", "k", str(pdf)) or (None, None)
    assert tokens is not None
    assert cdf is not None
    keys = sorted(pdf)
    np.testing.assert_array_equal(tokens, keys)
    probabilities = np.array([pdf[k] for k in keys]) / sum(pdf.values())
    np.testing.assert_allclose(np.diff(cdf, prepend=0.0), probabilities, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_a_trace_error(text: str) -> None:
    with contextlib.suppress(TraceError):
        parse_distribution("f", "k", "{" + text + "}")


# --- the aggregated form -------------------------------------------------------------------


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "m"
    model.mkdir()
    _client(model / "chunk-0-trace.csv", [900, 0, 2400, 10, 0, 77], "Gamma", 0.1)
    _client(model / "chunk-1-trace.csv", [0, 300, 1200, 0, 0, 5], "Weibull", 0.3)
    _dataset(model / "chunk-1-dataset.json", {0: ({40: 1.0}, {4: 1.0})})
    return model


@pytest.mark.parametrize(("rate", "bin_s"), [(1.0, 1.0), (0.5, 1.0), (2.0, 0.25), (1.0, 7.0)])
def test_bins_hold_exactly_the_generated_arrivals(
    tmp_path: Path, rate: float, bin_s: float
) -> None:
    model = _model(tmp_path)
    per_request = bins_from_trace(load_trace(model, seed=6, rate=rate), bin_s)
    reported: list[tuple[int, int]] = []
    aggregated = servegen_bins(
        model, rate=rate, seed=6, bin_s=bin_s, progress=lambda d, t: reported.append((d, t))
    )
    n = per_request.n_bins
    assert aggregated.n_bins == math.ceil(6 * WINDOW / bin_s) >= n
    np.testing.assert_array_equal(aggregated.counts[:, :n], per_request.counts)
    assert aggregated.counts[:, n:].sum() == 0
    assert reported[-1] == (aggregated.requests(), estimated_requests(model, rate))
    done = [d for d, _ in reported]
    assert done == sorted(done)


def test_the_aggregated_mix_weighs_clients_by_their_requests(tmp_path: Path) -> None:
    # Client 0 (default lengths, mean 200 in) sends 3,387 requests, client 1 (always 40 in, 4
    # out) 1,505. The mix has one component per client (and dataset window), weighted per
    # 10-minute window by that window's requests: over the trace, client 1 carries its share.
    bins = servegen_bins(_model(tmp_path), seed=2)
    mix = bins.mixes[0]
    assert mix.period_s == WINDOW
    assert mix.weights is not None
    per_window = np.add.reduceat(bins.counts[0], np.arange(0, bins.n_bins, int(WINDOW)))
    short = (mix.input_tokens == 40).all(axis=1) & (mix.output_tokens == 4).all(axis=1)
    assert short.sum() == 1
    share = float(per_window @ mix.weights[: per_window.size, short].ravel() / per_window.sum())
    assert share == pytest.approx(1505 / (1505 + 3387), rel=1e-9)
    default = mix.input_tokens[~short][0]
    assert default.shape == (COMPONENT_SAMPLES,)
    assert default.mean() == pytest.approx(200, rel=0.03)  # evenly spaced quantiles: near exact


def test_a_window_without_requests_repeats_the_previous_mix(tmp_path: Path) -> None:
    counts = [0] * 144
    counts[0], counts[100] = 200, 0  # only the first window has requests
    path = _client(tmp_path / "chunk-0-trace.csv", counts)
    _dataset(tmp_path / "chunk-0-dataset.json", {0: ({11: 1.0}, {12: 1.0})})
    mix = servegen_bins(path).mixes[0]
    assert mix.periods == 144
    np.testing.assert_allclose(mix.per_period(mix.input_tokens.mean(axis=1)), 11.0)


def test_bins_from_a_trace_sample_its_own_requests_per_hour(tmp_path: Path) -> None:
    # Two models; hour 0 holds model a's short requests, hour 2 its long ones, hour 1 none
    # (it repeats hour 0). Model b only has measured service times of 3 s.
    from simulator.traces import build_trace

    arrival = np.array([10.0, 20.0, 30.0, 7300.0, 7400.0, 9.5])
    model = np.array([0, 0, 0, 0, 0, 1], dtype=np.int32)
    tokens = np.array([5, 6, 7, 900, 901, 1], dtype=np.int32)
    service = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0])
    trace = build_trace(arrival, model, ("a", "b"), tokens, tokens, service)
    bins = bins_from_trace(trace, bin_s=10.0, seed=1)
    assert bins.counts.shape == (2, 741)
    assert bins.counts[0, [1, 2, 3, 730, 740]].tolist() == [1, 1, 1, 1, 1]
    assert bins.counts[1, 0] == 1
    assert bins.requests() == 6
    a, b = bins.mixes
    assert set(a.input_tokens[0]) <= {5, 6, 7}
    assert set(a.input_tokens[1]) <= {5, 6, 7}
    assert set(a.input_tokens[2]) <= {900, 901}
    assert a.service_s is not None
    assert set(a.service_s[2]) == {2.0}
    assert b.service_s is not None
    assert (b.service_s == 3.0).all()


def test_load_bins_aggregates_any_format(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,model,input_tokens,output_tokens\n0.5,x,1,2\n0.7,x,1,2\n3.2,y,1,2\n")
    bins = load_bins(path)
    assert bins.models == ("x", "y")
    assert bins.counts.tolist() == [[2, 0, 0, 0], [0, 0, 0, 1]]


def test_an_idle_model_has_no_requests_in_either_form(tmp_path: Path) -> None:
    path = _client(tmp_path / "chunk-0-trace.csv", [0, 0, 0])
    for load in (load_trace, servegen_bins):
        with pytest.raises(TraceError, match="no requests"):
            load(path)
