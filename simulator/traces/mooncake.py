"""Mooncake traces: JSON lines ``{"timestamp": ms, "input_length": n, "output_length": n,
"hash_ids": [...]}``, ``timestamp`` in milliseconds from the trace start.

``hash_ids`` (prefix-cache block ids) are not read. One model per file: its name comes from the
caller (``--model``) or the file name.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.json as pajson

from simulator.traces._chunks import iter_blocks, narrow
from simulator.traces._collect import Collector
from simulator.traces.trace import Trace, TraceError

_INT32_MAX = int(np.iinfo(np.int32).max)
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_SCHEMA = pa.schema(
    [("timestamp", pa.float64()), ("input_length", pa.int64()), ("output_length", pa.int64())]
)
_PARSE = pajson.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")


def matches_first_line(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and {"timestamp", "input_length", "output_length"} <= set(
        record
    )


def load(path: Path, model: str, chunk_bytes: int) -> Trace:
    file = str(path)
    collector = Collector(path.name)
    for first_line, block in iter_blocks(path, chunk_bytes, skip_lines=0):
        parsed = _parse(block)
        if parsed is None:
            line, part = narrow(first_line, block, lambda b: _parse(b) is None)
            raise _locate(file, line, part)
        ms, inp, out = parsed
        collector.add(
            np.zeros(ms.shape[0], dtype=np.int32),
            inp.astype(np.int32),
            out.astype(np.int32),
            arrival_s=ms / 1000.0,
        )
    return collector.finish([model])


def _parse(block: bytes) -> tuple[F64, I64, I64] | None:
    """(timestamps ms, input lengths, output lengths) of a block, or None if any line is bad."""
    lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    try:
        table = pajson.read_json(io.BytesIO(block), parse_options=_PARSE)
    except pa.ArrowInvalid:
        return None
    ms = np.asarray(table.column("timestamp").fill_null(-1).to_numpy(zero_copy_only=False))
    inp = np.asarray(table.column("input_length").fill_null(-1).to_numpy(zero_copy_only=False))
    out = np.asarray(table.column("output_length").fill_null(-1).to_numpy(zero_copy_only=False))
    ok = (
        table.num_rows == lines
        and bool(np.all(np.isfinite(ms) & (ms >= 0)))
        and bool(np.all((inp >= 0) & (inp <= _INT32_MAX)))
        and bool(np.all((out >= 0) & (out <= _INT32_MAX)))
    )
    return (ms.astype(np.float64), inp.astype(np.int64), out.astype(np.int64)) if ok else None


def _locate(file: str, first_line: int, block: bytes) -> TraceError:
    lines = block.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for offset, text in enumerate(lines):
        problem = _line_problem(text)
        if problem is not None:
            return TraceError(file, first_line + offset, problem)
    return TraceError(file, first_line, "cannot parse this block as JSON lines")


def _line_problem(text: str) -> str | None:
    if not text.strip():
        return "empty line"
    try:
        record = json.loads(text)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    if not isinstance(record, dict):
        return "expected a JSON object"
    timestamp = record.get("timestamp")
    if (
        not isinstance(timestamp, int | float)
        or isinstance(timestamp, bool)
        or not math.isfinite(timestamp)
        or timestamp < 0
    ):
        return f"timestamp: must be a number of milliseconds >= 0, got {timestamp!r}"
    for key in ("input_length", "output_length"):
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _INT32_MAX:
            return f"{key}: must be an integer >= 0, got {value!r}"
    return None
