"""The in-memory trace: one numpy array per column, never one Python object per request.

A 27-million-request week (the Azure 2024 files) takes about 27 M × 20 bytes ≈ 540 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

DEFAULT_EPOCH_S = 1_704_067_200.0
"""Unix time given to ``arrival_s == 0`` when a file has only relative times:
2024-01-01T00:00:00Z, a Monday at midnight, so relative traces start a week at its beginning."""

_INT32_MAX = np.iinfo(np.int32).max


class TraceError(ValueError):
    """A trace file is malformed. ``file``, ``line`` (1-based physical line; for Parquet the
    1-based row) and ``problem`` locate it: ``str(error)`` reads ``file:line: problem``."""

    def __init__(self, file: str, line: int | None, problem: str, unit: str = "line") -> None:
        if line is None:
            where = file
        elif unit == "line":
            where = f"{file}:{line}"
        else:
            where = f"{file}: {unit} {line}"
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.line = line
        self.problem = problem


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests as parallel columns, sorted by arrival.

    arrival_s:     arrival times, seconds after ``epoch_s``, float64, non-decreasing, >= 0.
    model:         index into ``models`` per request, int32.
    models:        model names as the trace spells them.
    input_tokens:  prompt tokens per request, int32, >= 0.
    output_tokens: generated tokens per request, int32, >= 0.
    service_s:     measured service time per request, seconds, float64 >= 0, or None (the
                   scenario's service model then applies).
    epoch_s:       Unix time (seconds, UTC) of ``arrival_s == 0``; gives the time of day and the
                   day of week that time-based policies need.
    source:        where the trace came from (file name, generator), for reports.
    """

    arrival_s: F64
    model: I32
    models: tuple[str, ...]
    input_tokens: I32
    output_tokens: I32
    service_s: F64 | None = None
    epoch_s: float = DEFAULT_EPOCH_S
    source: str = ""

    def __post_init__(self) -> None:
        n = self.arrival_s.shape[0]
        columns: list[tuple[str, npt.NDArray[np.generic] | None, type[np.generic]]] = [
            ("arrival_s", self.arrival_s, np.float64),
            ("model", self.model, np.int32),
            ("input_tokens", self.input_tokens, np.int32),
            ("output_tokens", self.output_tokens, np.int32),
            ("service_s", self.service_s, np.float64),
        ]
        for name, column, dtype in columns:
            if column is None:
                continue
            if column.dtype != dtype or column.ndim != 1:
                raise TypeError(f"{name} must be a 1-d {np.dtype(dtype)} array, got {column.dtype}")
            if column.shape[0] != n:
                raise ValueError(f"{name} has {column.shape[0]} rows, arrival_s has {n}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"model names must be unique, got {list(self.models)}")
        if n:
            if not np.isfinite(self.arrival_s[[0, -1]]).all() or self.arrival_s[0] < 0:
                raise ValueError("arrival_s must be finite and >= 0")
            if not bool(np.all(self.arrival_s[1:] >= self.arrival_s[:-1])):
                raise ValueError("arrival_s must be sorted (non-decreasing)")
            if int(self.model.min()) < 0 or int(self.model.max()) >= len(self.models):
                raise ValueError(f"model indices must lie in [0, {len(self.models)})")

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def duration_s(self) -> float:
        """Seconds from 0 to the last arrival (0 for an empty trace)."""
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def counts(self) -> I32:
        """Requests per model, in ``models`` order."""
        return np.bincount(self.model, minlength=len(self.models)).astype(np.int32)


def build_trace(
    arrival_s: F64,
    model: I32,
    models: Sequence[str],
    input_tokens: I32,
    output_tokens: I32,
    service_s: F64 | None = None,
    *,
    epoch_s: float = DEFAULT_EPOCH_S,
    source: str = "",
) -> Trace:
    """A ``Trace`` from unsorted columns: sorts by arrival (stable, so equal times keep file
    order), keeps only models that have requests, in name order (so the same requests give the
    same trace whatever the file's row order or chunking), and shifts times so none is negative."""
    if arrival_s.shape[0] and not bool(np.all(arrival_s[1:] >= arrival_s[:-1])):
        order = np.argsort(arrival_s, kind="stable")
        arrival_s, model = arrival_s[order], model[order]
        input_tokens, output_tokens = input_tokens[order], output_tokens[order]
        service_s = None if service_s is None else service_s[order]
    if arrival_s.shape[0] and arrival_s[0] < 0:
        shift = float(arrival_s[0])
        arrival_s = arrival_s - shift
        epoch_s += shift
    used = np.bincount(model, minlength=len(models)) > 0
    kept = sorted(name for name, keep in zip(models, used, strict=True) if keep)
    if kept != list(models):
        position = {name: i for i, name in enumerate(kept)}
        remap = np.array([position.get(name, -1) for name in models], dtype=np.int32)
        model = remap[model]
        models = kept
    return Trace(
        arrival_s=np.ascontiguousarray(arrival_s, dtype=np.float64),
        model=np.ascontiguousarray(model, dtype=np.int32),
        models=tuple(models),
        input_tokens=np.ascontiguousarray(input_tokens, dtype=np.int32),
        output_tokens=np.ascontiguousarray(output_tokens, dtype=np.int32),
        service_s=None if service_s is None else np.ascontiguousarray(service_s, np.float64),
        epoch_s=epoch_s,
        source=source,
    )


def tokens_fit_int32(values: npt.NDArray[np.int64]) -> bool:
    """True when every value lies in [0, 2**31 - 1]."""
    return bool(values.size == 0 or (values.min() >= 0 and values.max() <= _INT32_MAX))
