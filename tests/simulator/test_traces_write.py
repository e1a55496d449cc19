"""Writing a trace: every format read back gives the same trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.traces import SynthModel, SynthSpec, build_trace, load_trace, synthesize, write_trace


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
