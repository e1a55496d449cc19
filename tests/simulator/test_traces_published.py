"""The public traces as published: each loads with its format detected; malformed files get a
one-line error through the command line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simulator.cli import trace as trace_cli
from simulator.traces import load_trace
from simulator.traces.loader import detect_format, estimated_requests

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "traces"
SERVEGEN = DATA / "servegen_m_small"


@pytest.mark.parametrize(
    ("name", "fmt", "requests"),
    [
        ("azure_llm_2023_code.csv", "azure", 8_819),
        ("mooncake_synthetic.jsonl", "mooncake", None),
        ("servegen_m_small/chunk-0-trace.csv", "servegen", None),
    ],
)
def test_every_published_file_loads_with_its_format_detected(
    name: str, fmt: str, requests: int | None
) -> None:
    path = DATA / name
    assert detect_format(path) == fmt
    loaded = load_trace(path)
    if requests is not None:
        assert len(loaded) == requests
    # The cheap estimate the engine chooses its mode by is within 10% (exact for ServeGen).
    estimate = estimated_requests(path)
    if fmt == "servegen":
        assert estimate == len(loaded)
    assert estimate == pytest.approx(len(loaded), rel=0.1)


def test_the_servegen_directory_is_one_model_of_43_clients() -> None:
    assert detect_format(SERVEGEN) == "servegen"
    # "about 1.4 billion requests in 14 days" at full rate; a thousandth of it loads here.
    assert estimated_requests(SERVEGEN) == pytest.approx(1.4e9, rel=0.05)
    loaded = load_trace(SERVEGEN, rate=0.001, seed=1)
    assert loaded.models == ("servegen_m_small",)
    assert len(loaded) == estimated_requests(SERVEGEN, 0.001)
    assert loaded.duration_s == pytest.approx(14 * 86400, rel=0.01)
    # 38 clients have dataset files: their lengths differ from the log-normal default.
    assert abs(float(np.median(loaded.input_tokens)) - 200) > 20


def _inspect(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(trace_cli, ["inspect", *args])
    return result.exit_code, result.output


def test_inspect_reads_the_directory_with_rate_and_seed() -> None:
    code, first = _inspect(str(SERVEGEN), "--rate", "0.0005", "--seed", "3")
    assert code == 0, first
    again = _inspect(str(SERVEGEN), "--rate", "0.0005", "--seed", "3")[1]
    other = _inspect(str(SERVEGEN), "--rate", "0.0005", "--seed", "4")[1]
    assert first == again
    assert first != other  # same request count, other arrivals (peak) and lengths
    expected = estimated_requests(SERVEGEN, 0.0005)
    assert f"requests {expected:,.0f} over" in first
    assert f"requests {expected:,.0f} over" in other


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b"TIMESTAMP,ContextTokens,GeneratedTokens\r2023-11-16 18:15:46,1,2\r",
            ":1: line ends in a bare CR",
        ),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4, ":1: binary content"),
        (b"arrival_s,model\n" + bytes(range(128, 256)), ":2: not UTF-8 text"),
    ],
)
def test_malformed_files_get_one_line_through_the_cli(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    for suffix in (".csv", ".jsonl", ".dat"):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(content)
        code, output = _inspect(str(path))
        assert code != 0
        assert "Traceback" not in output
        lines = output.strip().splitlines()
        assert len(lines) == 1, output
        assert lines[0].startswith(f"Error: {path}{problem}")


def test_a_directory_without_clients_is_one_line_through_the_cli(tmp_path: Path) -> None:
    code, output = _inspect(str(tmp_path))
    assert code != 0
    assert output.strip() == f"Error: {tmp_path}: a directory without chunk-N-trace.csv files"
