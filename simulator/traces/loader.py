"""One entry point for every trace format: detect it from the extension and header, load it.

Formats: ``generic`` (CSV or Parquet), ``azure``, ``mooncake``, ``burstgpt``, ``servegen`` (one
window file, or a directory of ``chunk-N-trace.csv`` clients loaded as one model). Files may be
gzipped (``.csv.gz``, ``.jsonl.gz``), except Parquet and ServeGen. A text format's first 64 KB
are checked first, so binary content or lines ending in a bare CR get a one-line error.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import pyarrow.parquet as pq

from simulator.traces import azure, burstgpt, generic, mooncake, servegen
from simulator.traces._chunks import DEFAULT_CHUNK_BYTES, open_binary, read_header
from simulator.traces._text import SNIFF_BYTES as _SNIFF_BYTES
from simulator.traces._text import check_text
from simulator.traces.bins import ArrivalBins, bins_from_trace
from simulator.traces.trace import Trace, TraceError
from simulator.traces.transform import scale_rate

Format = Literal["generic", "azure", "mooncake", "burstgpt", "servegen"]
FORMATS: tuple[str, ...] = get_args(Format)


def _suffixes(path: Path) -> list[str]:
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes


def detect_format(path: Path) -> Format:
    """The format of ``path`` from its extension and first line; ``TraceError`` if unknown."""
    file = str(path)
    if servegen.is_model_dir(path):
        return "servegen"
    if path.is_dir():
        raise TraceError(file, None, "a directory without chunk-N-trace.csv files")
    if not path.is_file():
        raise TraceError(file, None, "no such file")
    suffixes = _suffixes(path)
    if suffixes and suffixes[-1] == ".parquet":
        return "generic"
    check_text(path)
    try:
        with open_binary(path) as f:
            first = f.readline().decode("utf-8-sig", errors="replace").strip()
    except OSError as exc:
        raise TraceError(file, None, f"cannot read: {exc}") from None
    if (suffixes and suffixes[-1] in (".jsonl", ".json")) or first.startswith("{"):
        if mooncake.matches_first_line(first):
            return "mooncake"
        raise TraceError(file, 1, "JSON lines without timestamp/input_length/output_length")
    header = read_header(path)
    for name, module in (
        ("azure", azure),
        ("burstgpt", burstgpt),
        ("servegen", servegen),
        ("generic", generic),
    ):
        if module.matches(header):
            return name  # type: ignore[return-value]
    raise TraceError(
        file,
        1,
        f"unrecognised trace header {first[:120]!r}; name the format with --format ({', '.join(FORMATS)})",
    )


def default_model_name(path: Path) -> str:
    """A model name for formats without a model column: the file name without extensions (a
    ServeGen directory: its name)."""
    name = path.name
    if path.is_dir():
        return re.sub(r"\s+", "-", name) or "model"
    for suffix in reversed(path.suffixes):
        name = name.removesuffix(suffix)
    return re.sub(r"\s+", "-", name) or "model"


def load_trace(
    path: str | Path,
    format: Format | None = None,
    *,
    model: str | None = None,
    seed: int = 0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    rate: float = 1.0,
) -> Trace:
    """Load a trace file (or a ServeGen directory) into columns.

    format:      one of ``FORMATS``; None detects it.
    model:       model name for formats without a model column (azure, mooncake, servegen);
                 default: the file name without extensions, or the directory's name.
    seed:        seed for generated arrivals (servegen) and for ``rate``.
    chunk_bytes: bytes read and parsed at a time (memory stays bounded by the columns).
    rate:        traffic multiplier: ServeGen's generator makes ``ceil(rate × r × 600)``
                 requests per window; other formats are thinned or replicated
                 (``transform.scale_rate``).
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise TraceError(str(path), None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "servegen" and path.is_dir():
        return _nonempty(
            path, servegen.load(path, model or default_model_name(path), seed, multiplier=rate)
        )
    if not path.is_file():
        raise TraceError(str(path), None, "no such file")
    if _suffixes(path)[-1:] != [".parquet"]:
        check_text(path)
    name = model or default_model_name(path)
    loaded: Trace
    if fmt == "generic" and _suffixes(path)[-1:] == [".parquet"]:
        loaded = generic.load_parquet(path)
    elif fmt == "generic":
        loaded = generic.load_csv(path, chunk_bytes)
    elif fmt == "azure":
        loaded = azure.load(path, name, chunk_bytes)
    elif fmt == "burstgpt":
        loaded = burstgpt.load(path, chunk_bytes)
    elif fmt == "mooncake":
        loaded = mooncake.load(path, name, chunk_bytes)
    else:
        return _nonempty(path, servegen.load(path, name, seed, multiplier=rate))
    loaded = _nonempty(path, loaded)
    return loaded if rate == 1.0 else scale_rate(loaded, rate, seed)


def _nonempty(path: Path, loaded: Trace) -> Trace:
    if not len(loaded):
        raise TraceError(str(path), None, "the trace has no requests")
    return loaded


def estimated_requests(path: str | Path, rate: float = 1.0, format: Format | None = None) -> float:
    """About how many requests ``load_trace(path, rate=rate)`` holds, cheaply, to choose a
    replay mode before loading: exact for ServeGen (the sum of ``ceil(rate × r × 600)``),
    the row count for Parquet, else the file's size over the bytes per line of 64 KB samples
    at its start, middle and end (for ``.gz``: its first 64 KB decompressed, and the
    compression ratio of that sample)."""
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt == "servegen":
        return float(servegen.estimated_requests(path, rate))
    if _suffixes(path)[-1:] == [".parquet"]:
        return float(pq.ParquetFile(path).metadata.num_rows) * rate
    size = path.stat().st_size
    with path.open("rb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw) as unzipped:
                sample = unzipped.read(_SNIFF_BYTES)
            compressed = max(raw.tell(), 1)
            size = int(size * len(sample) / compressed) if len(sample) < _SNIFF_BYTES else size * 4
        else:  # the start, middle and end: line lengths drift in some traces
            parts = []
            for offset in sorted(
                {0, max(size // 2 - _SNIFF_BYTES // 2, 0), max(size - _SNIFF_BYTES, 0)}
            ):
                raw.seek(offset)
                parts.append(raw.read(_SNIFF_BYTES))
            sample = b"".join(parts)
    lines = sample.count(b"\n") or 1
    header = 0 if fmt == "mooncake" else 1
    return max(math.ceil(size * lines / max(len(sample), 1)) - header, 0) * rate


def load_bins(
    path: str | Path,
    format: Format | None = None,
    *,
    model: str | None = None,
    seed: int = 0,
    rate: float = 1.0,
    bin_s: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> ArrivalBins:
    """Any trace as per-``bin_s`` arrival counts (``bins.ArrivalBins``). ServeGen is binned as
    it is generated (``servegen.servegen_bins``: memory follows the bins, not the requests);
    other formats are loaded (``load_trace``) and aggregated (``bins.bins_from_trace``)."""
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt == "servegen":
        name = model or default_model_name(path)
        return servegen.servegen_bins(
            path, rate=rate, seed=seed, bin_s=bin_s, progress=progress, model=name
        )
    return bins_from_trace(load_trace(path, fmt, model=model, seed=seed, rate=rate), bin_s)


__all__ = [
    "FORMATS",
    "Format",
    "check_text",
    "default_model_name",
    "detect_format",
    "estimated_requests",
    "load_bins",
    "load_trace",
]
