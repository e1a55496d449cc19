"""One model's request queue and its replicas' batch slots, driven by the control loop.

``ModelQueue`` is the seam between the tick-level control loop (Python) and the per-request
kernel (compiled): the loop adds and stops replicas at control instants; ``advance(t)`` serves
every request that can start before ``t``. ``ServingQueue`` is the protocol both this queue and
the SimPy reference model (benchmarks/simpy_reference.py) implement.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from simulator.engine import kernel
from simulator.engine.sketch import WaitSketch

F64 = npt.NDArray[np.float64]


class ServingQueue(Protocol):
    """Requests of one model (arrival-sorted) served FCFS by replicas of ``concurrency`` slots.

    Times are simulated seconds. ``advance`` must be called with non-decreasing times, and
    before any replica change at that time.
    """

    concurrency: int

    def advance(self, t: float) -> None: ...

    def arrived(self, t: float) -> int: ...

    def started(self) -> int: ...

    def in_flight(self, t: float) -> int: ...

    def add_replica(self, ready_s: float) -> int: ...

    def replica_busy(self, handle: int, t: float) -> int: ...

    def stop_replica(self, handle: int, t: float) -> float: ...

    def release(self, handle: int) -> None: ...

    def wait_sketch(self, slo_s: float) -> WaitSketch: ...

    def busy_slot_s(self, end_s: float) -> float: ...

    def served(self) -> float: ...


class ModelQueue:
    """The compiled implementation of ``ServingQueue``.

    arrival/service: per request, seconds (arrival sorted ascending). Start times are NaN until
    a request starts.
    """

    def __init__(self, arrival: F64, service: F64, concurrency: int) -> None:
        self.arrival = np.ascontiguousarray(arrival, dtype=np.float64)
        self.service = np.ascontiguousarray(service, dtype=np.float64)
        self.start = np.full(self.arrival.shape[0], np.nan)
        self.concurrency = concurrency
        self.head = 0
        self.n_arrived = 0  # requests that arrived before ``now``
        self.now = -np.inf
        blocks = 4
        self.free_at = np.zeros(blocks * concurrency)
        self.ready_at = np.zeros(blocks * concurrency)
        self.heap = np.zeros(blocks * concurrency, dtype=np.int64)
        self.idle = np.zeros(blocks * concurrency, dtype=np.int64)
        self.n_heap = 0
        self.n_idle = 0
        self.accepting: set[int] = set()
        self.stopped: set[int] = set()  # draining: no new requests, some may be in service
        self.free_blocks: list[int] = list(range(blocks - 1, -1, -1))
        self.dirty = False

    # -- serving -------------------------------------------------------------------------------

    def advance(self, t: float) -> None:
        if t <= self.now:
            return
        if self.dirty:
            self._rebuild_heap()
        self.head, self.n_heap, self.n_idle, self.n_arrived = kernel.serve(
            self.arrival,
            self.service,
            self.start,
            self.head,
            t,
            self.free_at,
            self.heap,
            self.n_heap,
            self.idle,
            self.n_idle,
            self.n_arrived,
        )
        self.now = t

    def arrived(self, t: float) -> int:
        """Requests that arrived before ``t``."""
        if t == self.now:
            return self.n_arrived
        return int(self.arrival.searchsorted(t, side="left"))

    def started(self) -> int:
        """Requests that started service so far (FCFS: a prefix of the arrivals)."""
        return self.head

    def in_flight(self, t: float) -> int:
        """Requests in service at ``t`` (call after ``advance(t)``), draining replicas included."""
        if self.dirty:
            self._rebuild_heap()
        busy = int(kernel.count_busy(self.heap, self.n_heap, self.free_at, self.ready_at, t))
        for block in self.stopped:
            busy += self.replica_busy(block, t)
        return busy

    def start_times(self) -> F64:
        return self.start

    def served(self) -> float:
        return float(self.head)

    def wait_sketch(self, slo_s: float) -> WaitSketch:
        """The waits of the requests started so far (FCFS: a prefix of the arrivals)."""
        sketch = WaitSketch(slo_s)
        sketch.add(self.start[: self.head] - self.arrival[: self.head])
        return sketch

    def busy_slot_s(self, end_s: float) -> float:
        """Slot-seconds of service within the run: each started request's service, cut at
        ``end_s``. Start times never decrease (FCFS), so only a tail can run past the end."""
        start, service = self.start[: self.head], self.service[: self.head]
        total = float(service.sum())
        if start.size == 0:
            return total
        tail = int(np.searchsorted(start, end_s - float(service.max()), side="right"))
        over = start[tail:] + service[tail:] - end_s
        return total - float(over[over > 0].sum())

    # -- replicas ------------------------------------------------------------------------------

    def add_replica(self, ready_s: float) -> int:
        """A replica whose slots serve from ``ready_s``; returns its handle."""
        if not self.free_blocks:
            self._grow()
        block = self.free_blocks.pop()
        sl = self._slots(block)
        self.free_at[sl] = ready_s
        self.ready_at[sl] = ready_s
        self.accepting.add(block)
        self.dirty = True
        return block

    def replica_busy(self, handle: int, t: float) -> int:
        """Slots of this replica serving at ``t``."""
        sl = self._slots(handle)
        return int(np.count_nonzero((self.ready_at[sl] <= t) & (self.free_at[sl] > t)))

    def stop_replica(self, handle: int, t: float) -> float:
        """Take no new requests from ``t``; returns when its last request ends (>= t, seconds)."""
        self.accepting.discard(handle)
        self.stopped.add(handle)
        self.dirty = True
        sl = self._slots(handle)
        ready = float(self.ready_at[sl.start])
        if ready > t:
            return t  # still warming: nothing was ever assigned to it
        return max(t, float(self.free_at[sl].max()))

    def release(self, handle: int) -> None:
        """The replica's pod is gone: its slots may be reused."""
        self.accepting.discard(handle)
        self.stopped.discard(handle)
        self.free_blocks.append(handle)
        self.dirty = True

    # -- internals -----------------------------------------------------------------------------

    def _slots(self, block: int) -> slice:
        c = self.concurrency
        return slice(block * c, (block + 1) * c)

    def _grow(self) -> None:
        old_blocks = self.free_at.shape[0] // self.concurrency
        extra = old_blocks * self.concurrency
        self.free_at = np.concatenate([self.free_at, np.zeros(extra)])
        self.ready_at = np.concatenate([self.ready_at, np.zeros(extra)])
        self.heap = np.zeros(self.free_at.shape[0], dtype=np.int64)
        self.idle = np.zeros(self.free_at.shape[0], dtype=np.int64)
        self.free_blocks.extend(range(2 * old_blocks - 1, old_blocks - 1, -1))
        self.dirty = True

    def _rebuild_heap(self) -> None:
        """Accepting slots free by the next waiting request's arrival go on the idle stack (any
        of them may take it at its arrival), the others (busy or warming) into the heap, so the
        heap stays as small as the work in service."""
        blocks = sorted(self.accepting)
        c = self.concurrency
        slots = (
            (np.asarray(blocks, dtype=np.int64)[:, None] * c + np.arange(c)).ravel()
            if blocks
            else np.zeros(0, dtype=np.int64)
        )
        n = self.arrival.shape[0]
        horizon = self.arrival[self.head] if self.head < n else self.now
        free = self.free_at[slots] <= min(horizon, self.now)
        idle, busy = slots[free], slots[~free]
        self.idle[: idle.size] = idle
        self.heap[: busy.size] = busy
        self.n_idle = int(idle.size)
        self.n_heap = int(busy.size)
        kernel.heapify(self.heap, self.n_heap, self.free_at)
        self.dirty = False
