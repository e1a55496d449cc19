"""Traces: every format's loader, errors at the right line, ServeGen rates, transforms, synth."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import trace as trace_cli
from simulator.traces import (
    DEFAULT_EPOCH_S,
    SynthModel,
    SynthSpec,
    Trace,
    TraceError,
    benchmark_spec,
    build_trace,
    detect_format,
    load_trace,
    merge,
    rename_models,
    scale_rate,
    synthesize,
    time_scale,
    window,
    write_trace,
)
from simulator.traces.servegen import mean_gap_s, weibull_shape_for_cv

SAMPLES = Path(__file__).resolve().parents[2] / "simulator" / "data" / "traces"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _trace(arrival: list[float], model: list[int], models: tuple[str, ...]) -> Trace:
    n = len(arrival)
    return build_trace(
        np.array(arrival, np.float64),
        np.array(model, np.int32),
        models,
        np.arange(n, dtype=np.int32) + 10,
        np.arange(n, dtype=np.int32) + 100,
    )


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("synthetic-2d.parquet", "generic"),
        ("synthetic-1h.csv", "generic"),
        ("azure-conv-sample.csv", "azure"),
        ("mooncake-sample.jsonl", "mooncake"),
        ("burstgpt-sample.csv", "burstgpt"),
        ("servegen-client-sample.csv", "servegen"),
    ],
)
def test_bundled_samples_are_detected_and_load(name: str, fmt: str) -> None:
    path = SAMPLES / name
    assert detect_format(path) == fmt
    loaded = load_trace(path)
    assert len(loaded) > 1000
    assert loaded.arrival_s.dtype == np.float64
    assert bool(np.all(np.diff(loaded.arrival_s) >= 0))
    assert loaded.input_tokens.min() >= 0


def test_generic_csv_reads_the_columns_as_written(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        "model,arrival_s,input_tokens,output_tokens,service_s,note\n"
        "b,0.5,10,20,1.5,x\n"
        "a,0.25,11,21,2.5,y\n"
        "b,2,12,22,3.5,z\n",
    )
    loaded = load_trace(path)
    assert loaded.models == ("a", "b")
    assert list(loaded.arrival_s) == [0.25, 0.5, 2.0]
    assert list(loaded.model) == [0, 1, 1]
    assert list(loaded.input_tokens) == [11, 10, 12]
    assert list(loaded.output_tokens) == [21, 20, 22]
    assert loaded.service_s is not None
    assert list(loaded.service_s) == [2.5, 1.5, 3.5]
    assert loaded.epoch_s == DEFAULT_EPOCH_S


def test_generic_iso_timestamps_give_the_epoch_and_offsets(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        "timestamp,model,input_tokens,output_tokens\n"
        "2024-03-04T10:00:00Z,m,1,1\n"
        "2024-03-04 10:00:01.25,m,1,1\n"
        "2024-03-04T11:00:02+01:00,m,1,1\n",
    )
    loaded = load_trace(path, chunk_bytes=30)
    assert loaded.epoch_s == 1_709_546_400.0  # 2024-03-04T10:00:00Z
    assert list(loaded.arrival_s) == [0.0, 1.25, 2.0]


def test_crlf_line_endings_and_a_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"\xef\xbb\xbfarrival_s,model,input_tokens,output_tokens\r\n0.5,m,1,2\r\n1.5,m,3,4\r\n"
    )
    loaded = load_trace(path)
    assert list(loaded.arrival_s) == [0.5, 1.5]
    assert list(loaded.output_tokens) == [2, 4]
    path.write_bytes(path.read_bytes() + b"2.5,m,x,4\r\n")
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == 4


def test_parquet_native_timestamps_set_the_epoch(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array(
                [1_700_000_000_000_000, 1_700_000_002_500_000], pa.timestamp("us", "UTC")
            ),
            "model": ["m", "m"],
            "input_tokens": pa.array([1, 2], pa.int16()),
            "output_tokens": [3, 4],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    loaded = load_trace(tmp_path / "t.parquet")
    assert loaded.epoch_s == 1_700_000_000.0
    assert list(loaded.arrival_s) == [0.0, 2.5]
    assert list(loaded.input_tokens) == [1, 2]


def test_a_trace_without_requests_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", GENERIC_HEADER)
    with pytest.raises(TraceError, match="no requests"):
        load_trace(path)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_write_then_load_gives_back_the_same_trace(tmp_path: Path, suffix: str) -> None:
    original = synthesize(
        SynthSpec(models=(SynthModel("a", 0.5), SynthModel("b", 0.2)), duration_s=1800, seed=3)
    )
    with_service = build_trace(
        original.arrival_s,
        original.model,
        original.models,
        original.input_tokens,
        original.output_tokens,
        original.arrival_s % 7.0,
    )
    loaded = load_trace(write_trace(with_service, tmp_path / f"t{suffix}"), chunk_bytes=4096)
    assert loaded.models == with_service.models
    np.testing.assert_array_equal(loaded.arrival_s, with_service.arrival_s)
    np.testing.assert_array_equal(loaded.model, with_service.model)
    np.testing.assert_array_equal(loaded.input_tokens, with_service.input_tokens)
    np.testing.assert_array_equal(loaded.output_tokens, with_service.output_tokens)
    assert loaded.service_s is not None
    np.testing.assert_array_equal(loaded.service_s, with_service.service_s)


def test_azure_timestamps_keep_their_seven_fractional_digits(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "AzureLLMInferenceTrace_conv.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:50.9951691,879,251\n",
    )
    loaded = load_trace(path)
    assert loaded.models == ("AzureLLMInferenceTrace_conv",)
    assert loaded.epoch_s == pytest.approx(1_700_158_546.68059, abs=1e-6)
    np.testing.assert_allclose(loaded.arrival_s, [0.0, 4.314579, 4.3145791], atol=1e-9)
    assert list(loaded.input_tokens) == [374, 396, 879]
    assert list(loaded.output_tokens) == [44, 109, 251]
    assert load_trace(path, model="llama-3-8b").models == ("llama-3-8b",)


def test_azure_and_mooncake_samples_hold_the_same_requests() -> None:
    # Both were written from one synthetic trace: two loaders, one answer.
    azure = load_trace(SAMPLES / "azure-conv-sample.csv")
    mooncake = load_trace(SAMPLES / "mooncake-sample.jsonl")
    assert len(azure) == len(mooncake)
    shift = azure.epoch_s - mooncake.epoch_s  # azure starts at its first request
    np.testing.assert_allclose(azure.arrival_s + shift, mooncake.arrival_s, atol=1e-3)
    np.testing.assert_array_equal(azure.input_tokens, mooncake.input_tokens)


def test_mooncake_reads_milliseconds_and_ignores_hash_ids(tmp_path: Path) -> None:
    lines = [
        {"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [1, 2, 3]},
        {"timestamp": 1500, "input_length": 100, "output_length": 5, "hash_ids": []},
        {"timestamp": 1500.5, "input_length": 7, "output_length": 8},
    ]
    path = _write(
        tmp_path / "conversation_trace.jsonl", "".join(json.dumps(x) + "\n" for x in lines)
    )
    loaded = load_trace(path)
    assert loaded.models == ("conversation_trace",)
    assert list(loaded.arrival_s) == [0.0, 1.5, 1.5005]
    assert list(loaded.input_tokens) == [6955, 100, 7]


def test_burstgpt_keeps_models_and_failed_requests(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "BurstGPT_1.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,GPT-4,1087,0,1087,API log\n"
        "118,ChatGPT,417,276,693,Conversation log\n",
    )
    loaded = load_trace(path)
    assert loaded.models == ("ChatGPT", "GPT-4")
    assert list(loaded.model) == [0, 1, 0]
    assert list(loaded.arrival_s) == [5.0, 45.0, 118.0]
    assert list(loaded.output_tokens) == [18, 0, 276]


def test_format_can_be_forced_and_a_wrong_one_names_the_missing_column() -> None:
    with pytest.raises(TraceError) as caught:
        load_trace(SAMPLES / "synthetic-1h.csv", "burstgpt")
    assert caught.value.line == 1
    assert "missing column Timestamp" in caught.value.problem


def test_unknown_header_asks_for_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "when,what\n1,2\n")
    with pytest.raises(TraceError, match=r"t\.csv:1: unrecognised trace header.*--format"):
        load_trace(path)


# --- malformed rows: file:line ------------------------------------------------------------------

GENERIC_HEADER = "arrival_s,model,input_tokens,output_tokens\n"
GOOD_ROW = "1.0,m,10,20\n"


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("1.0,m,ten,20", "input_tokens: not an integer: 'ten'"),
        ("1.0,m,-3,20", "input_tokens: must be between 0 and"),
        ("1.0,m,10,99999999999", "output_tokens: must be between 0 and"),
        ("x,m,10,20", "arrival_s: not a number: 'x'"),
        ("-1,m,10,20", "arrival_s: must be a finite number >= 0"),
        ("nan,m,10,20", "arrival_s: must be a finite number >= 0"),
        ("1.0,,10,20", "model: empty value"),
        ("1.0,m,10", "expected 4 fields"),
        ("1.0,m,10,20,extra", "expected 4 fields"),
        ("", "empty line"),
        ('1.0,"m,10,20', "malformed CSV"),
    ],
)
@pytest.mark.parametrize("chunk_bytes", [16 * 1024 * 1024, 64])
def test_a_malformed_generic_row_is_reported_at_its_line(
    tmp_path: Path, bad_row: str, problem: str, chunk_bytes: int
) -> None:
    rows = [GOOD_ROW] * 40 + [bad_row + "\n"] + [GOOD_ROW] * 10
    path = _write(tmp_path / "t.csv", GENERIC_HEADER + "".join(rows))
    with pytest.raises(TraceError) as caught:
        load_trace(path, chunk_bytes=chunk_bytes)
    assert caught.value.line == 42  # header + 40 good rows
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}:42: ")


@pytest.mark.parametrize("bad_line", [2, 1234, 2999, 3001])
def test_a_bad_row_deep_in_a_large_block_is_found(tmp_path: Path, bad_line: int) -> None:
    rows = [f"{i}.5,m{i % 3},{i % 50},{i % 70}\n" for i in range(3000)]
    rows[bad_line - 2] = "1.0,m,10,20,surplus\n"
    path = _write(tmp_path / "t.csv", GENERIC_HEADER + "".join(rows))
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == bad_line
    assert "expected 4 fields" in caught.value.problem


def test_a_bad_line_deep_in_a_large_jsonl_block_is_found(tmp_path: Path) -> None:
    good = '{"timestamp": 5, "input_length": 1, "output_length": 2}\n'
    path = _write(tmp_path / "m.jsonl", good * 1776 + '{"timestamp": 5}\n' + good * 900)
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == 1777


def _numbered_rows(n: int) -> list[str]:
    return [f"{i * 0.37:.2f},m{i % 4},{(i * 7) % 500},{(i * 13) % 300}\n" for i in range(n)]


@settings(max_examples=20, deadline=None)
@given(chunk_bytes=st.integers(min_value=1, max_value=4000))
def test_chunking_never_changes_the_trace(chunk_bytes: int) -> None:
    text = GENERIC_HEADER + "".join(_numbered_rows(150))
    whole = _load_text(text, 1 << 24)
    chunked = _load_text(text, chunk_bytes)
    assert chunked.models == whole.models
    np.testing.assert_array_equal(chunked.arrival_s, whole.arrival_s)
    np.testing.assert_array_equal(chunked.model, whole.model)
    np.testing.assert_array_equal(chunked.input_tokens, whole.input_tokens)


@settings(max_examples=20, deadline=None)
@given(
    chunk_bytes=st.integers(min_value=1, max_value=4000),
    bad=st.integers(min_value=0, max_value=149),
    later=st.integers(min_value=1, max_value=50),
)
def test_the_first_bad_line_is_found_whatever_the_chunking(
    chunk_bytes: int, bad: int, later: int
) -> None:
    rows = _numbered_rows(150)
    rows[bad] = "1.0,m,-5,1\n"
    if bad + later < len(rows):
        rows[bad + later] = "1.0,m\n"  # a second, later problem of another kind
    with pytest.raises(TraceError) as caught:
        _load_text(GENERIC_HEADER + "".join(rows), chunk_bytes)
    assert caught.value.line == bad + 2


def _load_text(text: str, chunk_bytes: int) -> Trace:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(text)
        return load_trace(path, chunk_bytes=chunk_bytes)


def test_the_first_of_several_bad_rows_is_reported(tmp_path: Path) -> None:
    # A bad value on line 5 and a short row on line 7 in the same block: line 5 comes first,
    # although the CSV parser meets the short row before converting values.
    rows = [GOOD_ROW] * 3 + ["1.0,m,bad,20\n", GOOD_ROW, "1.0,m\n", GOOD_ROW]
    path = _write(tmp_path / "t.csv", GENERIC_HEADER + "".join(rows))
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert caught.value.line == 5


def test_bad_timestamp_in_azure_file_is_located(tmp_path: Path) -> None:
    rows = ["2023-11-16 18:15:46.6805900,374,44\n"] * 5 + ["2023-13-16 18:15:46,1,1\n"]
    path = _write(tmp_path / "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(rows))
    with pytest.raises(TraceError) as caught:
        load_trace(path, chunk_bytes=100)
    assert caught.value.line == 7
    assert "TIMESTAMP: not an ISO date-time" in caught.value.problem


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"timestamp": 5, "input_length": 1}', "output_length: must be an integer"),
        ('{"timestamp": -5, "input_length": 1, "output_length": 1}', "timestamp: must be"),
        ('{"timestamp": 5, "input_length": "1", "output_length": 1}', "input_length: must be"),
        ('{"timestamp": 5, "input_length": 1, "output_length": 1', "invalid JSON"),
        ("", "empty line"),
    ],
)
@pytest.mark.parametrize("chunk_bytes", [16 * 1024 * 1024, 100])
def test_a_malformed_mooncake_line_is_reported_at_its_line(
    tmp_path: Path, bad_line: str, problem: str, chunk_bytes: int
) -> None:
    good = '{"timestamp": 5, "input_length": 1, "output_length": 2, "hash_ids": [1]}\n'
    path = _write(tmp_path / "m.jsonl", good * 12 + bad_line + "\n" + good * 3)
    with pytest.raises(TraceError) as caught:
        load_trace(path, chunk_bytes=chunk_bytes)
    assert caught.value.line == 13
    assert problem in caught.value.problem


def test_a_bad_parquet_row_is_reported_by_row_number(tmp_path: Path) -> None:
    table = pa.table(
        {
            "arrival_s": [0.0, 1.0, 2.0, 3.0],
            "model": ["a", "a", "b", "a"],
            "input_tokens": [1, 2, -3, 4],
            "output_tokens": [1, 1, 1, 1],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(TraceError) as caught:
        load_trace(tmp_path / "t.parquet")
    assert caught.value.line == 3
    assert "row 3: input_tokens: must be between 0" in str(caught.value)


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        load_trace(tmp_path / "absent.csv")


# --- ServeGen ------------------------------------------------------------------------------------

SERVEGEN_HEADER = "t_seconds,rate_rps,cv,pattern,shape,scale\n"


def test_servegen_windows_produce_their_rates(tmp_path: Path) -> None:
    # 2 rps Gamma (cv 2, given as shape/scale), 0 rps, 5 rps Weibull (cv 0.5, derived).
    shape = 0.25
    path = _write(
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
    path = _write(tmp_path / "c.csv", SERVEGEN_HEADER + "0,1.0,1.0,Gamma,,\n" + row + "\n")
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


# --- transforms ----------------------------------------------------------------------------------


def test_time_scale_compresses_arrivals_only() -> None:
    original = _trace([0.0, 10.0, 30.0], [0, 0, 0], ("m",))
    faster = time_scale(original, 0.5)
    assert list(faster.arrival_s) == [0.0, 5.0, 15.0]
    assert list(faster.input_tokens) == list(original.input_tokens)
    with pytest.raises(ValueError, match="> 0"):
        time_scale(original, 0)


def _hourly(trace: Trace) -> np.ndarray:  # type: ignore[type-arg]
    return np.bincount((trace.arrival_s // 3600).astype(np.int64), minlength=24)[:24]


@pytest.mark.parametrize("multiplier", [0.3, 1.0, 2.5])
def test_rate_multiplier_scales_counts_and_keeps_the_daily_shape(multiplier: float) -> None:
    day = synthesize(
        SynthSpec(models=(SynthModel("m", 2.0, bursts_per_day=0),), duration_s=86400, seed=2)
    )
    scaled = scale_rate(day, multiplier, seed=5)
    n = len(day)
    assert abs(len(scaled) - multiplier * n) < 5 * math.sqrt(n)
    ratio = _hourly(scaled) / _hourly(day)
    np.testing.assert_allclose(ratio, multiplier, rtol=0.1)
    again = scale_rate(day, multiplier, seed=5)
    np.testing.assert_array_equal(scaled.arrival_s, again.arrival_s)


def test_replicated_requests_interleave_instead_of_stacking() -> None:
    original = _trace([0.0, 10.0, 20.0, 30.0], [0, 0, 0, 0], ("m",))
    doubled = scale_rate(original, 2.0, seed=1)
    assert len(doubled) == 8
    assert len(np.unique(doubled.arrival_s)) == 7  # the last request's copy shares its time


def test_rename_merges_models_and_rejects_unknown_names() -> None:
    original = _trace([0.0, 1.0, 2.0], [0, 1, 2], ("a", "b", "c"))
    renamed = rename_models(original, {"a": "x", "b": "x"})
    assert renamed.models == ("c", "x")
    assert list(renamed.model) == [1, 1, 0]
    with pytest.raises(ValueError, match="cannot rename zz"):
        rename_models(original, {"zz": "y"})


def test_window_retimes_and_moves_the_epoch() -> None:
    original = _trace([0.0, 100.0, 200.0, 300.0], [0, 0, 0, 0], ("m",))
    part = window(original, 100.0, 300.0)
    assert list(part.arrival_s) == [0.0, 100.0]
    assert part.epoch_s == original.epoch_s + 100.0


def test_merge_aligns_traces_on_absolute_time() -> None:
    first = _trace([0.0, 10.0], [0, 0], ("a",))
    second = build_trace(
        np.array([0.0, 1.0]),
        np.zeros(2, np.int32),
        ["b"],
        np.ones(2, np.int32),
        np.ones(2, np.int32),
        epoch_s=first.epoch_s + 5.0,
    )
    merged = merge([first, second])
    assert merged.models == ("a", "b")
    assert list(merged.arrival_s) == [0.0, 5.0, 6.0, 10.0]
    assert list(merged.model) == [0, 1, 1, 0]


def test_build_trace_sorts_stably() -> None:
    built = _trace([3.0, 1.0, 1.0, 2.0], [0, 1, 0, 1], ("a", "b"))
    assert list(built.arrival_s) == [1.0, 1.0, 2.0, 3.0]
    assert list(built.input_tokens) == [11, 12, 13, 10]


# --- synthetic generator -------------------------------------------------------------------------


def test_synth_is_deterministic_per_seed() -> None:
    spec = SynthSpec(models=(SynthModel("a", 1.0), SynthModel("b", 0.5)), duration_s=7200, seed=1)
    first, again = synthesize(spec), synthesize(spec)
    other = synthesize(SynthSpec(models=spec.models, duration_s=7200, seed=2))
    for column in ("arrival_s", "model", "input_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(first, column), getattr(again, column))
    assert not np.array_equal(first.arrival_s[:100], other.arrival_s[:100])


def test_synth_daily_cycle_peaks_at_the_peak_hour() -> None:
    amplitude = 0.6
    spec = SynthSpec(
        models=(SynthModel("m", 3.0, peak_hour=14.0, daily_amplitude=amplitude, bursts_per_day=0),),
        duration_s=86400,
        seed=3,
    )
    hourly = _hourly(synthesize(spec))
    assert int(np.argmax(hourly)) in (13, 14)
    assert int(np.argmin(hourly)) in (1, 2)
    # rate ∝ 1 + a·cos(2π(h − 14)/24): the 14:00 hour over the 02:00 hour is (1 + a)/(1 − a).
    assert hourly[14] / hourly[2] == pytest.approx((1 + amplitude) / (1 - amplitude), rel=0.1)


def test_synth_weekends_and_model_shares() -> None:
    spec = SynthSpec(
        models=(
            SynthModel("a", 0.3, weekend_factor=0.4, bursts_per_day=0),
            SynthModel("b", 0.1, weekend_factor=0.4, bursts_per_day=0),
        ),
        seed=4,
    )
    week = synthesize(spec)
    assert len(week) == spec.expected_requests
    daily = np.bincount((week.arrival_s // 86400).astype(np.int64), minlength=7)
    assert daily[5:].mean() / daily[:5].mean() == pytest.approx(0.4, rel=0.05)  # Sat, Sun
    counts = week.counts()
    assert counts[0] / len(week) == pytest.approx(0.75, abs=0.01)
    assert week.arrival_s[-1] <= spec.duration_s


def test_synth_bursts_raise_the_peak_minute() -> None:
    calm = SynthModel("m", 2.0, daily_amplitude=0.0, bursts_per_day=0)
    bursty = SynthModel("m", 2.0, daily_amplitude=0.0, bursts_per_day=6, burst_factor=5.0)

    def peak_minute(model: SynthModel) -> int:
        t = synthesize(SynthSpec(models=(model,), duration_s=86400, seed=5))
        return int(np.bincount((t.arrival_s // 60).astype(np.int64)).max())

    assert peak_minute(bursty) > 2 * peak_minute(calm)


def test_synth_exact_request_count_and_tokens() -> None:
    spec = SynthSpec(
        models=(SynthModel("m", 1.0, input_tokens_mean=500, output_tokens_mean=50),),
        duration_s=3600,
        requests=12_345,
        seed=6,
    )
    made = synthesize(spec)
    assert len(made) == 12_345
    assert made.input_tokens.mean() == pytest.approx(500, rel=0.05)
    assert made.output_tokens.mean() == pytest.approx(50, rel=0.05)


def test_benchmark_spec_is_seven_days_three_models_ten_million() -> None:
    spec = benchmark_spec()
    assert spec.requests == 10_000_000
    assert spec.duration_s == 7 * 86400
    assert len(spec.models) == 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mean_rps": 0}, "mean_rps"),
        ({"daily_amplitude": 1.0}, "daily_amplitude"),
        ({"burst_factor": 0.5}, "burst_factor"),
        ({"burst_s": (10.0, 5.0)}, "burst_s"),
    ],
)
def test_synth_model_rejects_bad_values(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"name": "m", "mean_rps": 1.0} | kwargs
    with pytest.raises(ValueError, match=f"m.{field}"):
        SynthModel(**arguments)  # type: ignore[arg-type]


# --- command line --------------------------------------------------------------------------------


def test_cli_synth_then_inspect(tmp_path: Path) -> None:
    out = tmp_path / "week.parquet"
    runner = CliRunner()
    made = runner.invoke(
        trace_cli, ["synth", str(out), "--days", "0.5", "--model", "a=1", "--model", "b=0.5"]
    )
    assert made.exit_code == 0, made.output
    assert out.exists()
    shown = runner.invoke(trace_cli, ["inspect", str(out), "--rename", "a=big"])
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line.split() for line in shown.output.splitlines()[4:]}
    assert set(rows) == {"b", "big"}
    expected = load_trace(out).counts()
    assert int(rows["big"][1].replace(",", "")) == expected[0]


def test_cli_inspect_converts_to_the_generic_format(tmp_path: Path) -> None:
    out = tmp_path / "converted.csv"
    result = CliRunner().invoke(
        trace_cli,
        [
            "inspect",
            str(SAMPLES / "azure-conv-sample.csv"),
            "--model",
            "llama-3-8b",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    converted, original = load_trace(out), load_trace(SAMPLES / "azure-conv-sample.csv")
    assert converted.models == ("llama-3-8b",)
    np.testing.assert_array_equal(converted.input_tokens, original.input_tokens)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synth", "OUT.txt"], "extension must be .csv"),
        (["synth", "OUT.csv", "--model", "a=-1"], "--model 'a=-1'"),
        (["inspect", "BAD"], "BAD.csv:2: input_tokens: not an integer"),
        (["inspect", "BAD", "--rename", "nope"], "expected OLD=NEW"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    bad = _write(tmp_path / "BAD.csv", GENERIC_HEADER + "1.0,m,x,1\n")
    argv = [
        str(bad) if a == "BAD" else str(tmp_path / a) if a.startswith("OUT") else a for a in args
    ]
    result = CliRunner().invoke(trace_cli, argv)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BAD.csv"]
