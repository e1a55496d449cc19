"""Regenerate the small seeded sample traces bundled in ``simulator/data/traces/``.

``python -m simulator.traces.samples [DIR]`` writes one file per supported format. All are
synthetic (drawn by ``synth``), so they reproduce no provider's real traffic; the foreign-format
files copy only the layout of the published traces (Azure LLM inference, Mooncake, BurstGPT,
ServeGen) so the loaders and the quick start have data to read.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from simulator.traces.synth import DAY_S, SynthModel, SynthSpec, synthesize
from simulator.traces.trace import Trace
from simulator.traces.transform import rename_models
from simulator.traces.write import write_trace

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "traces"

QUICKSTART_SPEC = SynthSpec(
    models=(
        SynthModel("llama-3-8b", mean_rps=1.0, peak_hour=14.0),
        SynthModel("llama-3-70b", mean_rps=0.3, peak_hour=16.0, output_tokens_mean=250.0),
    ),
    duration_s=2 * DAY_S,
    seed=7,
)
"""Two weekdays, the two models of ``examples/models.yaml``: ~225 k requests (2.5 MB Parquet)."""

SMALL_SPEC = SynthSpec(
    models=(
        SynthModel("llama-3-8b", mean_rps=0.6, bursts_per_day=0.0),
        SynthModel("llama-3-70b", mean_rps=0.2, bursts_per_day=0.0),
    ),
    duration_s=3600.0,
    seed=11,
)
"""One hour, two models: ~2.9 k requests, small enough to read in an editor."""


def write_azure(trace: Trace, path: Path) -> None:
    """Azure LLM inference layout: ``TIMESTAMP,ContextTokens,GeneratedTokens``, 7 fractional
    digits, absolute UTC times from the trace's epoch."""
    ns = (trace.epoch_s * 1e9 + trace.arrival_s * 1e9).astype("datetime64[ns]")
    stamps = np.datetime_as_string(ns, unit="ns")
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for stamp, inp, out in zip(stamps, trace.input_tokens, trace.output_tokens, strict=True):
            writer.writerow([str(stamp).replace("T", " ")[:27], int(inp), int(out)])


def write_mooncake(trace: Trace, path: Path, seed: int = 0) -> None:
    """Mooncake layout: JSON lines, ``timestamp`` in whole milliseconds, with ``hash_ids``."""
    rng = np.random.default_rng(seed)
    with path.open("w") as f:
        for t, inp, out in zip(
            trace.arrival_s, trace.input_tokens, trace.output_tokens, strict=True
        ):
            blocks = int(inp) // 512 + 1
            start = int(rng.integers(0, 1000))
            record = {
                "timestamp": round(float(t) * 1000),
                "input_length": int(inp),
                "output_length": int(out),
                "hash_ids": list(range(start, start + blocks)),
            }
            f.write(json.dumps(record) + "\n")


def write_burstgpt(trace: Trace, path: Path, seed: int = 0) -> None:
    """BurstGPT layout: ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``,
    whole seconds; about 3% of responses failed (0 tokens), as in the published logs."""
    rng = np.random.default_rng(seed)
    failed = rng.random(len(trace)) < 0.03
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            ["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"]
        )
        rows = zip(
            trace.arrival_s,
            trace.model,
            trace.input_tokens,
            trace.output_tokens,
            failed,
            strict=True,
        )
        for t, m, inp, out, fail in rows:
            response = 0 if fail else int(out)
            kind = "Conversation log" if trace.models[int(m)] == "ChatGPT" else "API log"
            writer.writerow(
                [int(t), trace.models[int(m)], int(inp), response, int(inp) + response, kind]
            )


def write_servegen(path: Path, seed: int = 0) -> None:
    """A ServeGen-style client: one day of 10-minute windows with a daily rate cycle; Gamma
    windows give shape/scale, Weibull windows give only rate and cv (the loader derives them)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["t_seconds", "rate_rps", "cv", "pattern", "shape", "scale"])
        for i in range(144):
            t = i * 600
            hour = t / 3600
            rate = round(0.5 + 0.4 * float(np.cos(2 * np.pi * (hour - 14) / 24)), 4)
            cv = round(float(rng.uniform(0.8, 2.5)), 3)
            if i % 2 == 0:
                shape = 1 / cv**2
                writer.writerow([t, rate, cv, "Gamma", f"{shape:.6g}", f"{1 / (rate * shape):.6g}"])
            else:
                writer.writerow([t, rate, cv, "Weibull", "", ""])


def write_samples(directory: Path = SAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    small = synthesize(SMALL_SPEC)
    one = synthesize(
        SynthSpec(
            models=(SynthModel("conv", mean_rps=0.5, bursts_per_day=0.0),),
            duration_s=3600.0,
            seed=5,
        )
    )
    paths = [
        write_trace(synthesize(QUICKSTART_SPEC), directory / "synthetic-2d.parquet"),
        write_trace(small, directory / "synthetic-1h.csv"),
    ]
    azure = directory / "azure-conv-sample.csv"
    write_azure(one, azure)
    mooncake = directory / "mooncake-sample.jsonl"
    write_mooncake(one, mooncake, seed=1)
    burst = directory / "burstgpt-sample.csv"
    renamed = rename_models(small, {"llama-3-8b": "ChatGPT", "llama-3-70b": "GPT-4"})
    write_burstgpt(renamed, burst, seed=2)
    servegen = directory / "servegen-client-sample.csv"
    write_servegen(servegen, seed=3)
    return [*paths, azure, mooncake, burst, servegen]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLES_DIR
    for written in write_samples(target):
        print(written)
