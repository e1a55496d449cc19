"""The generic trace format (CSV or Parquet), also what ``depthscale trace synth`` writes.

Columns (header names, any order, extra columns ignored):
  arrival_s      seconds from the trace start, float >= 0 — or —
  timestamp      ISO-8601 date-time (naive means UTC), one of the two is required;
  model          model name as clients send it;
  input_tokens   prompt tokens, integer >= 0;
  output_tokens  generated tokens, integer >= 0;
  service_s      optional measured service time, seconds, float >= 0 (overrides the
                 scenario's service model for that request).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from simulator.traces._chunks import (
    BadRow,
    Block,
    Column,
    Kind,
    ModelNames,
    check_columns,
    check_value,
    find_columns,
    read_csv_chunks,
    read_header,
)
from simulator.traces._collect import Collector
from simulator.traces.trace import Trace, TraceError

_WANTED: list[tuple[str, tuple[str, ...], Kind, bool]] = [
    ("model", ("model",), "str", True),
    ("input_tokens", ("input_tokens",), "int", True),
    ("output_tokens", ("output_tokens",), "int", True),
    ("service_s", ("service_s",), "float", False),
]


def matches(header: Sequence[str]) -> bool:
    names = {n.strip().lower() for n in header}
    return {"model", "input_tokens", "output_tokens"} <= names and bool(
        names & {"arrival_s", "timestamp"}
    )


def _columns(file: str, header: Sequence[str]) -> list[Column]:
    names = {n.strip().lower() for n in header}
    time: tuple[str, tuple[str, ...], Kind, bool] = (
        ("arrival", ("arrival_s",), "float", True)
        if "arrival_s" in names
        else ("arrival", ("timestamp",), "time", True)
    )
    if "arrival_s" not in names and "timestamp" not in names:
        raise TraceError(
            file, 1, f"missing column arrival_s or timestamp (header: {','.join(header)})"
        )
    return find_columns(file, header, [time, *_WANTED])


def _add(collector: Collector, names: ModelNames, columns: list[Column], block: Block) -> None:
    relative = next(c.kind for c in columns if c.key == "arrival") == "float"
    collector.add(
        names.encode(block.strings("model")),
        block.ints("input_tokens"),
        block.ints("output_tokens"),
        arrival_s=block.floats("arrival") if relative else None,
        unix_ns=None if relative else block.times("arrival"),
        service_s=block.floats("service_s") if "service_s" in block else None,
    )


def load_csv(path: Path, chunk_bytes: int) -> Trace:
    file = str(path)
    header = read_header(path)
    columns = _columns(file, header)
    collector, names = Collector(path.name), ModelNames()
    for _, values in read_csv_chunks(path, header, columns, chunk_bytes):
        _add(collector, names, columns, values)
    return collector.finish(names.names)


def load_parquet(path: Path, batch_rows: int = 1 << 20) -> Trace:
    """Parquet in row batches; errors name the 1-based row."""
    file = str(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise TraceError(file, None, f"not a readable Parquet file: {exc}") from None
    header = parquet.schema_arrow.names
    columns = _columns(file, header)
    collector, names = Collector(path.name), ModelNames()
    row = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=[c.header for c in columns]):
        table = pa.Table.from_batches([batch])
        try:
            table = _normalize_types(table, columns)
            values = check_columns(table, columns)
        except BadRow as exc:
            bad = exc.index
            raise TraceError(
                file, row + bad + 1, _row_problem(table, columns, bad), unit="row"
            ) from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TraceError(file, None, f"rows {row + 1}-{row + batch.num_rows}: {exc}") from None
        _add(collector, names, columns, values)
        row += batch.num_rows
    return collector.finish(names.names)


def _normalize_types(table: pa.Table, columns: list[Column]) -> pa.Table:
    """Parquet columns cast to what the CSV path produces (native timestamps stay as they are)."""
    for i, name in enumerate(table.column_names):
        column = next(c for c in columns if c.header == name)
        field_type = table.schema.field(i).type
        target: pa.DataType
        if column.kind == "time":
            if pa.types.is_timestamp(field_type):
                continue  # parse_times reads native timestamps directly
            target = pa.string()
        elif column.kind == "str":
            target = pa.string()
        elif column.kind == "int":
            target = pa.int64()
        else:
            target = pa.float64()
        if field_type != target:
            table = table.set_column(i, name, table.column(i).cast(target))
    return table


def _row_problem(table: pa.Table, columns: list[Column], index: int) -> str:
    for column in columns:
        value = table.column(column.header)[index].as_py()
        problem = check_value(column.kind, "" if value is None else str(value))
        if problem is not None:
            return f"{column.header}: {problem}"
    return "invalid row"
