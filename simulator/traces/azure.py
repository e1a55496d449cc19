"""Azure LLM inference traces (2023 and the 2024 week-long files).

``TIMESTAMP,ContextTokens,GeneratedTokens`` with timestamps like ``2023-11-16 18:15:46.6805900``
(7 fractional digits, UTC). The files carry no model column: the model name comes from the
caller (``--model``) or the file name (``AzureLLMInferenceTrace_conv.csv`` →
``AzureLLMInferenceTrace_conv``). The 2024 files hold 17-27 M rows (Azure/AzurePublicDataset, AzureLLMInferenceDataset2024): they are read
in chunks and never become Python objects per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simulator.traces._chunks import find_columns, read_csv_chunks, read_header
from simulator.traces._collect import Collector
from simulator.traces.trace import Trace


def matches(header: Sequence[str]) -> bool:
    names = {n.strip().lower() for n in header}
    return {"timestamp", "contexttokens", "generatedtokens"} <= names


def load(path: Path, model: str, chunk_bytes: int) -> Trace:
    file = str(path)
    header = read_header(path)
    columns = find_columns(
        file,
        header,
        [
            ("time", ("TIMESTAMP",), "time", True),
            ("input", ("ContextTokens",), "int", True),
            ("output", ("GeneratedTokens",), "int", True),
        ],
    )
    collector = Collector(path.name)
    for _, values in read_csv_chunks(path, header, columns, chunk_bytes):
        ns = values.times("time")
        collector.add(
            np.zeros(ns.shape[0], dtype=np.int32),
            values.ints("input"),
            values.ints("output"),
            unix_ns=ns,
        )
    return collector.finish([model])
