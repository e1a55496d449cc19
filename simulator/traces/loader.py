"""One entry point for every trace format: detect it from the extension and header, load it.

Formats: ``generic`` (CSV or Parquet), ``azure``, ``mooncake``, ``burstgpt``, ``servegen``.
Files may be gzipped (``.csv.gz``, ``.jsonl.gz``), except Parquet and ServeGen.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from simulator.traces import azure, burstgpt, generic, mooncake, servegen
from simulator.traces._chunks import DEFAULT_CHUNK_BYTES, open_binary, read_header
from simulator.traces.trace import Trace, TraceError

Format = Literal["generic", "azure", "mooncake", "burstgpt", "servegen"]
FORMATS: tuple[str, ...] = get_args(Format)


def _suffixes(path: Path) -> list[str]:
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes


def detect_format(path: Path) -> Format:
    """The format of ``path`` from its extension and first line; ``TraceError`` if unknown."""
    file = str(path)
    if not path.is_file():
        raise TraceError(file, None, "no such file")
    suffixes = _suffixes(path)
    if suffixes and suffixes[-1] == ".parquet":
        return "generic"
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
    """A model name for formats without a model column: the file name without extensions."""
    name = path.name
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
) -> Trace:
    """Load a trace file into columns.

    format:      one of ``FORMATS``; None detects it.
    model:       model name for formats without a model column (azure, mooncake, servegen);
                 default: the file name without extensions.
    seed:        seed for formats that generate arrivals (servegen).
    chunk_bytes: bytes read and parsed at a time (memory stays bounded by the columns).
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise TraceError(str(path), None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise TraceError(str(path), None, "no such file")
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
        loaded = servegen.load(path, name, seed)
    if not len(loaded):
        raise TraceError(str(path), None, "the trace has no requests")
    return loaded


__all__ = ["FORMATS", "Format", "default_model_name", "detect_format", "load_trace"]
