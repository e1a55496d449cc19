"""BurstGPT traces: ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``.

``Timestamp`` is seconds from the trace start; ``Model`` is e.g. ``ChatGPT`` or ``GPT-4``.
Rows with 0 response tokens (failed requests in the original logs) are kept: they still queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulator.traces._chunks import ModelNames, find_columns, read_csv_chunks, read_header
from simulator.traces._collect import Collector
from simulator.traces.trace import Trace


def matches(header: Sequence[str]) -> bool:
    names = {n.strip().lower() for n in header}
    return {"timestamp", "model", "request tokens", "response tokens"} <= names


def load(path: Path, chunk_bytes: int) -> Trace:
    file = str(path)
    header = read_header(path)
    columns = find_columns(
        file,
        header,
        [
            ("time", ("Timestamp",), "float", True),
            ("model", ("Model",), "str", True),
            ("input", ("Request tokens",), "int", True),
            ("output", ("Response tokens",), "int", True),
        ],
    )
    collector, names = Collector(path.name), ModelNames()
    for _, values in read_csv_chunks(path, header, columns, chunk_bytes):
        collector.add(
            names.encode(values.strings("model")),
            values.ints("input"),
            values.ints("output"),
            arrival_s=values.floats("time"),
        )
    return collector.finish(names.names)
