"""The Azure LLM inference traces: timestamps to the tenth of a microsecond, bad ones located."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.traces import TraceError, load_trace
from tests.simulator.trace_support import SAMPLES, write_file


def test_azure_timestamps_keep_their_seven_fractional_digits(tmp_path: Path) -> None:
    path = write_file(
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


def test_bad_timestamp_in_azure_file_is_located(tmp_path: Path) -> None:
    rows = ["2023-11-16 18:15:46.6805900,374,44\n"] * 5 + ["2023-13-16 18:15:46,1,1\n"]
    path = write_file(
        tmp_path / "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(rows)
    )
    with pytest.raises(TraceError) as caught:
        load_trace(path, chunk_bytes=100)
    assert caught.value.line == 7
    assert "TIMESTAMP: not an ISO date-time" in caught.value.problem
