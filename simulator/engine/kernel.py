"""The compiled per-request core: an FCFS queue in front of a changing set of batch slots.

Each replica offers ``max_concurrency`` slots (vLLM continuous batching: a request holds one slot
for its service time). Between two control instants the slot set is fixed, so serving is the
classic multi-server FCFS recursion: request i starts at ``max(arrival_i, earliest slot free
time)`` on that slot. A request whose start would fall at or after ``t_end`` stays queued: the
control loop may add slots at ``t_end`` that serve it sooner. Slots of replicas that are still
warming are in the heap with their free time set to the replica's ready time.

Slots that may be busy sit in a binary min-heap of slot indices keyed by ``free_at`` (ties
broken by slot index); slots known to be free sit on a stack. A request costs O(log busy slots),
which matters for vLLM replicas with hundreds of mostly idle slots (and keeps in-flight
counts cheap: only heap slots can be busy). Compiled with numba, cached
on disk.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(cache=True, inline="always")
def _less(free_at: F64, a: int, b: int) -> bool:  # pragma: no cover - compiled
    fa = free_at[a]
    fb = free_at[b]
    return fa < fb or (fa == fb and a < b)


@njit(cache=True)
def _sift_down(heap: I64, n: int, free_at: F64, pos: int) -> None:  # pragma: no cover - compiled
    item = heap[pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        right = child + 1
        if right < n and _less(free_at, heap[right], heap[child]):
            child = right
        if _less(free_at, heap[child], item):
            heap[pos] = heap[child]
            pos = child
        else:
            break
    heap[pos] = item


@njit(cache=True)
def heapify(heap: I64, n: int, free_at: F64) -> None:  # pragma: no cover - compiled
    """Make ``heap[:n]`` a min-heap on ``free_at``."""
    for pos in range(n // 2 - 1, -1, -1):
        _sift_down(heap, n, free_at, pos)


@njit(cache=True)
def _sift_up(heap: I64, free_at: F64, pos: int) -> None:  # pragma: no cover - compiled
    item = heap[pos]
    while pos > 0:
        parent = (pos - 1) >> 1
        if _less(free_at, item, heap[parent]):
            heap[pos] = heap[parent]
            pos = parent
        else:
            break
    heap[pos] = item


@njit(cache=True)
def serve(
    arrival: F64,
    service: F64,
    start: F64,
    head: int,
    t_end: float,
    free_at: F64,
    heap: I64,
    n_heap: int,
    idle: I64,
    n_idle: int,
    arrived: int,
) -> tuple[int, int, int, int]:  # pragma: no cover - compiled
    """Start queued requests ``head, head+1, ...`` (FCFS) while their start time is before
    ``t_end`` (seconds). Writes ``start`` (seconds) and the slots' ``free_at``.

    ``heap[:n_heap]`` holds slots that may be busy (or warming), keyed by ``free_at``;
    ``idle[:n_idle]`` holds slots known to be free. Any free slot gives the same start time
    (the arrival), so free slots need no ordering: a request arriving at ``a`` first moves the
    slots free by ``a`` to ``idle``, takes one if any, else waits for the heap's earliest.
    ``arrived`` is a count of requests known to arrive before ``t_end`` (any lower bound).
    Returns (new head, n_heap, n_idle, requests arrived before ``t_end``)."""
    n = arrival.shape[0]
    i = head
    while i < n:
        a = arrival[i]
        if a >= t_end:
            break
        while n_heap > 0 and free_at[heap[0]] <= a:
            idle[n_idle] = heap[0]
            n_idle += 1
            n_heap -= 1
            heap[0] = heap[n_heap]
            _sift_down(heap, n_heap, free_at, 0)
        if n_idle > 0:
            n_idle -= 1
            slot = idle[n_idle]
            free_at[slot] = a + service[i]
            start[i] = a
            heap[n_heap] = slot
            _sift_up(heap, free_at, n_heap)
            n_heap += 1
        else:
            if n_heap == 0:
                break
            slot = heap[0]
            s = free_at[slot]
            if s >= t_end:
                break
            start[i] = s
            free_at[slot] = s + service[i]
            _sift_down(heap, n_heap, free_at, 0)
        i += 1
    if arrived < i:
        arrived = i
    while arrived < n and arrival[arrived] < t_end:
        arrived += 1
    return i, n_heap, n_idle, arrived


@njit(cache=True)
def count_busy(
    heap: I64, n_heap: int, free_at: F64, ready_at: F64, t: float
) -> int:  # pragma: no cover - compiled
    """Slots among ``heap[:n_heap]`` serving a request at ``t``: ready by ``t``, busy past it."""
    busy = 0
    for k in range(n_heap):
        slot = heap[k]
        if ready_at[slot] <= t < free_at[slot]:
            busy += 1
    return busy


def warm_up() -> None:
    """Compile (or load from the cache) every kernel once, on tiny inputs."""
    free = np.zeros(2, dtype=np.float64)
    heap = np.arange(2, dtype=np.int64)
    idle = np.zeros(2, dtype=np.int64)
    heapify(heap, 2, free)
    arrival = np.array([0.0, 1.0])
    start = np.full(2, np.nan)
    serve(arrival, np.ones(2), start, 0, 10.0, free, heap, 2, idle, 0, 0)
    count_busy(heap, 2, free, np.zeros(2), 0.5)
