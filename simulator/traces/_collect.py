"""Gathers per-chunk columns into one ``Trace`` (one concatenation at the end)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from simulator.traces.trace import DEFAULT_EPOCH_S, Trace, build_trace

_T = TypeVar("_T", bound=np.generic)


class Collector:
    """Append chunks of columns; ``finish`` sorts and builds the trace.

    Times arrive either as seconds (``add(arrival_s=...)``, relative; the epoch is
    ``DEFAULT_EPOCH_S``) or as Unix nanoseconds (``add(unix_ns=...)``; the trace then starts at
    its earliest request and ``epoch_s`` is that instant).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._seconds: list[npt.NDArray[np.float64]] = []
        self._unix_ns: list[npt.NDArray[np.int64]] = []
        self._model: list[npt.NDArray[np.int32]] = []
        self._input: list[npt.NDArray[np.int32]] = []
        self._output: list[npt.NDArray[np.int32]] = []
        self._service: list[npt.NDArray[np.float64]] = []

    def add(
        self,
        model: npt.NDArray[np.int32],
        input_tokens: npt.NDArray[np.int32],
        output_tokens: npt.NDArray[np.int32],
        *,
        arrival_s: npt.NDArray[np.float64] | None = None,
        unix_ns: npt.NDArray[np.int64] | None = None,
        service_s: npt.NDArray[np.float64] | None = None,
    ) -> None:
        if (arrival_s is None) == (unix_ns is None):
            raise ValueError("give exactly one of arrival_s or unix_ns")
        if arrival_s is not None:
            self._seconds.append(arrival_s)
        if unix_ns is not None:
            self._unix_ns.append(unix_ns)
        self._model.append(model)
        self._input.append(input_tokens)
        self._output.append(output_tokens)
        if service_s is not None:
            self._service.append(service_s)

    def finish(self, models: list[str]) -> Trace:
        """The trace; each column's chunks are released as soon as they are joined, so the peak
        is the finished columns plus one column's chunks."""
        if self._seconds and self._unix_ns:
            raise ValueError("a trace mixes relative and absolute times")
        epoch_s = DEFAULT_EPOCH_S
        if self._unix_ns:
            origin = min(int(part.min()) for part in self._unix_ns if part.size)
            arrival = np.concatenate(
                [(part - origin).astype(np.float64) / 1e9 for part in self._unix_ns]
            )
            self._unix_ns.clear()
            epoch_s = origin / 1e9
        else:
            arrival = _take_all(self._seconds, np.float64)
        service = _take_all(self._service, np.float64) if self._service else None
        return build_trace(
            arrival,
            _take_all(self._model, np.int32),
            models,
            _take_all(self._input, np.int32),
            _take_all(self._output, np.int32),
            service,
            epoch_s=epoch_s,
            source=self.source,
        )


def _take_all(parts: list[npt.NDArray[_T]], dtype: type[_T]) -> npt.NDArray[_T]:
    """The parts joined into one array; the list is emptied (its memory freed)."""
    if not parts:
        return np.zeros(0, dtype=dtype)
    joined = np.concatenate(parts).astype(dtype, copy=False)
    parts.clear()
    return joined
