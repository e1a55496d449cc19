"""Chunked, typed reading of line-oriented trace files with exact line numbers for errors.

The file is read in blocks of whole lines (``chunk_bytes`` each); every block is parsed by
pyarrow in C++ and checked with vectorised numpy, so a request never becomes a Python object.
Each data row is one physical line (trace formats have no quoted newlines), so row ``i`` of a
block starting at line ``L`` sits on line ``L + i``. When a block fails anywhere, it is re-read
line by line in Python (that block only) to name the *first* bad line and what is wrong with it.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from simulator.traces.trace import TraceError

Kind = Literal["float", "int", "str", "time"]
"""float: finite and >= 0 (seconds); int: integer in [0, 2**31 - 1] (tokens);
str: non-empty; time: an ISO-8601 date-time (naive means UTC)."""

DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024
_INT32_MAX = int(np.iinfo(np.int32).max)
_INT_RE = re.compile(r"[+-]?\d+")
_ARROW_TYPES: dict[Kind, pa.DataType] = {
    "float": pa.float64(),
    "int": pa.int64(),
    "str": pa.string(),
    "time": pa.string(),
}


@dataclass(frozen=True, slots=True)
class Column:
    """A column to read: ``key`` (our name), ``header`` (as the file's header spells it)."""

    key: str
    header: str
    kind: Kind


class Block:
    """One block's validated columns by key: float → float64, int → int32, time → int64
    nanoseconds since the Unix epoch (UTC), str → a pyarrow string array."""

    def __init__(self) -> None:
        self._numbers: dict[str, npt.NDArray[np.generic]] = {}
        self._strings: dict[str, pa.Array] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._numbers or key in self._strings

    def floats(self, key: str) -> npt.NDArray[np.float64]:
        return self._numbers[key].astype(np.float64, copy=False)

    def ints(self, key: str) -> npt.NDArray[np.int32]:
        return self._numbers[key].astype(np.int32, copy=False)

    def times(self, key: str) -> npt.NDArray[np.int64]:
        return self._numbers[key].astype(np.int64, copy=False)

    def strings(self, key: str) -> pa.Array:
        return self._strings[key]


def open_binary(path: Path) -> IO[bytes]:
    """The file, transparently gunzipped when it ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def read_header(path: Path) -> list[str]:
    """The first line's field names, stripped (a UTF-8 byte-order mark is ignored)."""
    with open_binary(path) as f:
        first = f.readline().decode("utf-8-sig", errors="replace")
    return [name.strip() for name in next(csv.reader([first]), [])]


def find_columns(
    file: str, header: Sequence[str], wanted: Sequence[tuple[str, tuple[str, ...], Kind, bool]]
) -> list[Column]:
    """Match wanted columns ``(key, accepted header names, kind, required)`` to the header,
    case-insensitively; a missing required column is a line-1 error."""
    normalized = {name.strip().lower(): name for name in header}
    found: list[Column] = []
    for key, names, kind, required in wanted:
        match = next((normalized[n.lower()] for n in names if n.lower() in normalized), None)
        if match is not None:
            found.append(Column(key, match, kind))
        elif required:
            raise TraceError(
                file, 1, f"missing column {' or '.join(names)} (header: {','.join(header)})"
            )
    return found


def iter_blocks(path: Path, chunk_bytes: int, skip_lines: int) -> Iterator[tuple[int, bytes]]:
    """(first line number, block of whole lines) after the first ``skip_lines`` lines."""
    with open_binary(path) as f:
        for _ in range(skip_lines):
            f.readline()
        line = skip_lines + 1
        while True:
            block = f.read(chunk_bytes)
            if not block:
                return
            if not block.endswith(b"\n"):
                block += f.readline()
            yield line, block
            line += block.count(b"\n")


def read_csv_chunks(
    path: Path, header: Sequence[str], columns: Sequence[Column], chunk_bytes: int
) -> Iterator[tuple[int, Block]]:
    """Typed, validated columns of each block of a CSV file with a one-line header."""
    file = str(path)
    read_options = pacsv.ReadOptions(column_names=list(header), use_threads=True)
    parse_options = pacsv.ParseOptions(ignore_empty_lines=False)
    convert_options = pacsv.ConvertOptions(
        include_columns=[c.header for c in columns],
        column_types={c.header: _ARROW_TYPES[c.kind] for c in columns},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )

    def parse(block: bytes) -> Block:
        table = pacsv.read_csv(
            io.BytesIO(block),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        return check_columns(table, columns)

    def fails(block: bytes) -> bool:
        try:
            parse(block)
        except (pa.ArrowInvalid, BadRow):
            return True
        return False

    for first_line, block in iter_blocks(path, chunk_bytes, skip_lines=1):
        try:
            values = parse(block)
        except (pa.ArrowInvalid, BadRow) as exc:
            line, part = narrow(first_line, block, fails)
            raise _locate(file, line, part, header, columns, exc) from None
        yield first_line, values


def narrow(
    first_line: int, block: bytes, fails: Callable[[bytes], bool], small: int = 256
) -> tuple[int, bytes]:
    """The smallest failing prefix-region of a failing block, by halving at line boundaries.

    If the first half fails, the earliest error is in it (any error there precedes the second
    half); otherwise it is in the second half. Stops at ``small`` lines: O(log n) fast parses,
    then the caller's line-by-line check covers at most ``small`` lines.
    """
    while block.count(b"\n") > small:
        middle = block.find(b"\n", len(block) // 2)
        if middle < 0 or middle == len(block) - 1:
            break
        head, tail = block[: middle + 1], block[middle + 1 :]
        if fails(head):
            block = head
        else:
            first_line += head.count(b"\n")
            block = tail
    return first_line, block


class BadRow(Exception):
    """A vectorised check failed at row ``index`` of the block."""

    def __init__(self, index: int) -> None:
        super().__init__(f"row {index}")
        self.index = index


def _first_true(mask: npt.NDArray[np.bool_]) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def check_columns(table: pa.Table, columns: Sequence[Column]) -> Block:
    """Numpy views of the block's columns; ``BadRow`` at the first row failing any check."""
    out = Block()
    bad: list[int] = []
    for column in columns:
        array = table.column(column.header).combine_chunks()
        if array.null_count:
            bad.append(int(np.argmax(np.asarray(array.is_null()))))
            array = array.fill_null(0) if column.kind in ("float", "int") else array
        if column.kind == "str":
            out._strings[column.key] = array
            continue
        if column.kind == "time":
            ns = parse_times(array)
            if ns is None:
                bad.append(0)  # the slow path finds the row
                continue
            out._numbers[column.key] = ns
            continue
        values = np.asarray(array.to_numpy(zero_copy_only=False))
        if column.kind == "float":
            wrong = _first_true(~np.isfinite(values) | (values < 0))
            out._numbers[column.key] = values.astype(np.float64, copy=False)
        else:
            wrong = _first_true((values < 0) | (values > _INT32_MAX))
            out._numbers[column.key] = values.astype(np.int32)
        if wrong is not None:
            bad.append(wrong)
    if bad:
        raise BadRow(min(bad))
    return out


def parse_times(array: pa.Array) -> npt.NDArray[np.int64] | None:
    """ISO date-times to int64 nanoseconds since the Unix epoch (naive = UTC), None if any fails."""
    if pa.types.is_timestamp(array.type):
        ns = pc.cast(array, pa.timestamp("ns", tz=array.type.tz)).cast(pa.int64())
        return np.asarray(ns.fill_null(0).to_numpy(zero_copy_only=False))
    try:  # the common case: every string naive (UTC)
        naive = pc.cast(array, pa.timestamp("ns")).cast(pa.int64())
        return np.asarray(naive.fill_null(0).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Strings with a zone offset (or Z) and naive ones (UTC) parse separately, then merge.
    zoned = np.asarray(
        pc.fill_null(pc.match_substring_regex(array, r"(Z|[+-]\d\d(:?\d\d)?)$"), False)
    )
    out = np.zeros(len(array), dtype=np.int64)
    for mask, tz in ((~zoned, None), (zoned, "UTC")):
        if not mask.any():
            continue
        part = array.filter(pa.array(mask))
        try:
            cast = pc.cast(part, pa.timestamp("ns", tz=tz))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        out[mask] = np.asarray(cast.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False))
    return out


def check_value(kind: Kind, text: str) -> str | None:
    """What is wrong with one field's text for its kind, or None."""
    value = text.strip()
    if not value:
        return "empty value"
    if kind == "str":
        return None
    if kind == "time":
        try:
            datetime.fromisoformat(value)
            return None
        except ValueError:
            pass
        if parse_times(pa.array([value])) is None:
            return f"not an ISO date-time: {value!r}"
        return None
    if kind == "int":
        if not _INT_RE.fullmatch(value):
            return f"not an integer: {value!r}"
        number = int(value)
        if not 0 <= number <= _INT32_MAX:
            return f"must be between 0 and {_INT32_MAX}, got {number}"
        return None
    try:
        real = float(value)
    except ValueError:
        return f"not a number: {value!r}"
    if not math.isfinite(real) or real < 0:
        return f"must be a finite number >= 0, got {value}"
    return None


def _locate(
    file: str,
    first_line: int,
    block: bytes,
    header: Sequence[str],
    columns: Sequence[Column],
    cause: Exception,
) -> TraceError:
    """Re-read a failing block line by line; the first bad line's error."""
    positions = {c.header: header.index(c.header) for c in columns}
    lines = block.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for offset, raw in enumerate(lines):
        line = first_line + offset
        text = raw.rstrip("\r")
        problem = _row_problem(text, header, columns, positions)
        if problem is not None:
            return TraceError(file, line, problem)
    last = first_line + max(len(lines) - 1, 0)
    return TraceError(file, first_line, f"cannot parse lines {first_line}-{last}: {cause}")


def _row_problem(
    text: str, header: Sequence[str], columns: Sequence[Column], positions: dict[str, int]
) -> str | None:
    if not text.strip():
        return "empty line"
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return f"malformed CSV: {exc}"
    if len(fields) != len(header):
        return f"expected {len(header)} fields ({','.join(header)}), got {len(fields)}"
    for column in columns:
        problem = check_value(column.kind, fields[positions[column.header]])
        if problem is not None:
            return f"{column.header}: {problem}"
    return None


class ModelNames:
    """Interns model names across chunks: per-chunk dictionary encoding, one global index."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def intern(self, name: str) -> int:
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self.names)
            self.names.append(name)
        return index

    def encode(self, array: pa.Array) -> npt.NDArray[np.int32]:
        """Global model indices of a string array (stripped), int32."""
        encoded = pc.dictionary_encode(pc.utf8_trim_whitespace(array))
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        local = [self.intern(str(name)) for name in encoded.dictionary.to_pylist()]
        lookup = np.asarray(local, dtype=np.int32)
        indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
        return lookup[indices] if lookup.size else indices.astype(np.int32)
