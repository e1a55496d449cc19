"""BurstGPT CSV: its models kept, failed requests (0 response tokens) kept."""

from __future__ import annotations

from pathlib import Path

from simulator.traces import load_trace
from tests.simulator.trace_support import write_file


def test_burstgpt_keeps_models_and_failed_requests(tmp_path: Path) -> None:
    path = write_file(
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
