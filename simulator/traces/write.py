"""Write a trace in the generic format: CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``).

Columns ``arrival_s,model,input_tokens,output_tokens`` (+ ``service_s`` when present). The
file is written to a temporary name beside the target and renamed, so a failed write never
leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from simulator.traces.trace import Trace


def to_table(trace: Trace) -> pa.Table:
    """The trace as an Arrow table (model as a dictionary column: no string per row)."""
    columns: dict[str, pa.Array] = {
        "arrival_s": pa.array(trace.arrival_s),
        "model": pa.DictionaryArray.from_arrays(
            pa.array(trace.model), pa.array(list(trace.models))
        ),
        "input_tokens": pa.array(trace.input_tokens),
        "output_tokens": pa.array(trace.output_tokens),
    }
    if trace.service_s is not None:
        columns["service_s"] = pa.array(trace.service_s)
    return pa.table(columns)


def write_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` to ``path`` (format from the extension); returns the path."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".parquet"]:
        kind = "parquet"
    elif suffixes[-2:] == [".csv", ".gz"] or suffixes[-1:] == [".csv"]:
        kind = "csv"
    else:
        raise ValueError(f"{path}: the extension must be .csv, .csv.gz or .parquet")
    table = to_table(trace)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if kind == "parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            options = pacsv.WriteOptions(quoting_style="needed")
            if suffixes[-1] == ".gz":
                with pa.CompressedOutputStream(str(tmp), "gzip") as out:
                    pacsv.write_csv(table, out, write_options=options)
            else:
                pacsv.write_csv(table, tmp, write_options=options)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
