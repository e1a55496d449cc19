"""The aggregated (fluid) queue: one model's traffic per second, served by its replicas' slots.

The per-request queue (``queue.ModelQueue``) keeps every request; a billion of them do not fit.
``FluidQueue`` keeps seconds instead, and implements the same ``ServingQueue`` protocol, so the
control loop, KEDA, the HPA and the GPU node pools run unchanged on top of it.

The model, one second ``k`` at a time (``k`` = [k, k+1) seconds after the trace start):

* ``a_k`` requests arrive and join the back of the FCFS queue.
* The slots that serve are those of accepting replicas ready by ``k``: ``cap_k = c · R_k``.
* A request started in second ``s`` (anywhere in it) with service time ``S`` is still in
  service at the end of second ``s + j`` with chance ``G(j) = E[min(max(S − j, 0), 1)]``, the
  *survival kernel*, and occupies on average ``H(j)`` of a slot during that second, the
  *occupancy kernel* (``Σ_j H(j) = Σ_j G(j) = E[S]``). Both come from the length mix of the
  window the start falls in (ServeGen: the clients busy in that 10-minute window).
* A slot holds one request at a time, so admission looks at the second's end: the queue's head
  starts, oldest second first, ``n_k = min(queued, (cap_k − Σ_{j≥1} n_{k−j} G(j)) / G(0))``.
  Slot-seconds would let a burst share a slot within the second.
* A request arriving in second ``s`` and starting in second ``k`` waited ``k − s`` seconds
  (0 when it starts in the second it arrived: the queue had room for it).

In steady state this serves ``c · R / E[S]`` requests per second, the replicas' throughput. What
it leaves out is queueing inside a second: clumped arrivals that wait milliseconds for a slot
(docs/simulator.md gives the measured gap to the per-request engine, and
``benchmarks/aggregated_mode.py`` measures it).

A replica that stops takes its share of the work in service with it: that share drains (and
still counts as in flight, as the live scaler counts unacked tasks) but holds none of the
remaining replicas' slots. Its pod goes when the last of those ``n`` requests would end: the
``1 − 1/(n+1)`` quantile of their remaining service, the residual life of the window's service
times.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from simulator.engine.sketch import WaitSketch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MAX_KERNEL_S = 4 * 3600
"""Service times are cut at 4 hours for the occupancy kernel (no vLLM request runs longer)."""


START_POINTS = 16
"""Points of the second at which starts are placed when averaging over where in its second a
request starts (uniform)."""


def survival_kernel(service_s: F64) -> F64:
    """``G[p, j] = E[min(max(S - j, 0), 1)]``: the share of second ``[j, j+1)`` (after its start)
    that a request of period ``p`` is in service, seconds; ``service_s`` is (periods, samples).
    ``G[p, j - 1]`` is also the chance that a request started uniformly within a second is still
    in service ``j`` seconds after that second began."""
    s = np.minimum(np.asarray(service_s, dtype=np.float64), MAX_KERNEL_S)
    length = math.ceil(float(s.max(initial=0.0))) + 3
    return _clipped_means(s, np.arange(length, dtype=np.float64), 1.0)


def occupancy_kernel(service_s: F64) -> F64:
    """``H[p, j]``: the mean share of a slot that a request started in a second of period ``p``
    (anywhere in that second, uniformly) occupies during the ``j``-th second after it: the
    average over start offsets ``u`` of ``E[|[u, u + S] ∩ [j, j + 1]|]``. ``Σ_j H = E[S]``."""
    s = np.minimum(np.asarray(service_s, dtype=np.float64), MAX_KERNEL_S)
    length = math.ceil(float(s.max(initial=0.0))) + 3
    steps = np.arange(length, dtype=np.float64)
    out = np.zeros((s.shape[0], length))
    for u in (np.arange(START_POINTS) + 0.5) / START_POINTS:
        # Second j after the start second is [j - u, j + 1 - u] in the request's own time; its
        # part inside [0, S] is clip(S - (j - u), 0, 1), less what falls before 0 (j = 0 only).
        out += _clipped_means(s, steps - u, 1.0)
        out[:, 0] -= _clipped_means(s, np.array([-u]), u)[:, 0]
    return out / START_POINTS


def _clipped_means(s: F64, offsets: F64, width: float) -> F64:
    """``[p, i] -> mean over samples of clip(s - offsets[i], 0, width)`` from sorted samples."""
    out = np.zeros((s.shape[0], offsets.size))
    for p in range(s.shape[0]):
        row = np.sort(s[p])
        k = row.shape[0]
        prefix = np.concatenate([[0.0], np.cumsum(row)])
        # Samples above offset + width count whole, those in (offset, offset + width] by their
        # part above the offset.
        lo = np.searchsorted(row, offsets, side="right")
        hi = np.searchsorted(row, offsets + width, side="right")
        partial = prefix[hi] - prefix[lo] - offsets * (hi - lo)
        out[p] = ((k - hi) * width + partial) / k
    return out


@njit(cache=True)
def _serve(
    counts: F64,
    k0: int,
    k1: int,
    ready: F64,
    n_ready: int,
    slots: int,
    kernel: F64,
    survival: F64,
    period_len: int,
    active: F64,
    draining: F64,
    ring_period: I64,
    queue: F64,
    qhead: int,
    waits: F64,
) -> tuple[int, float, float]:  # pragma: no cover - compiled
    """Serve seconds ``k0 .. k1-1``. ``ready[:n_ready]`` are the accepting replicas' ready times
    (sorted). ``queue[s]`` holds the requests of second ``s`` not yet started (from ``qhead``).
    Writes the ring buffers of starts and the integer-second wait histogram ``waits``; returns
    (new qhead, requests started, slot-seconds busy)."""
    n_bins = counts.shape[0]
    length = active.shape[0]
    periods = kernel.shape[0]
    max_wait = waits.shape[0] - 1
    started = 0.0
    busy = 0.0
    r = 0
    for k in range(k0, k1):
        while r < n_ready and ready[r] <= k:
            r += 1
        slot = k % length
        active[slot] = 0.0
        draining[slot] = 0.0
        held = 0.0  # slot-seconds earlier starts use during this second
        kept = 0.0  # earlier starts still in service at its end
        for j in range(1, length):
            s = (k - j) % length
            a = active[s]
            if a > 0.0:
                held += a * kernel[ring_period[s], j]
                kept += a * survival[ring_period[s], j]
        p = min(k // period_len, periods - 1)
        ring_period[slot] = p
        if k < n_bins:
            queue[k] = counts[k]
        # A slot holds one request at a time: at the second's end, the requests in service
        # (earlier starts still running, and this second's starts, nearly all still running)
        # are at most the slots. Slot-seconds would let a burst share a slot within the second.
        free = r * slots - kept
        first = survival[p, 0]
        room = free / first if free > 0.0 and first > 0.0 else 0.0
        n = 0.0
        last = k if k < n_bins else n_bins - 1
        while qhead <= last and room > 1e-12:
            take = queue[qhead]
            if take > room:
                take = room
            if take > 0.0:
                queue[qhead] -= take
                room -= take
                n += take
                w = k - qhead
                waits[w if w < max_wait else max_wait] += take
            if queue[qhead] <= 1e-12:
                queue[qhead] = 0.0
                qhead += 1
            else:
                break
        active[slot] = n
        started += n
        busy += held + n * kernel[p, 0]
    return qhead, started, busy


@njit(cache=True)
def _in_service(
    k: int, active: F64, draining: F64, ring_period: I64, kernel: F64
) -> tuple[float, float]:  # pragma: no cover - compiled
    """(requests in service at the start of second ``k`` on accepting replicas, on draining
    ones): started ``j`` seconds before, a request is still in service with probability
    ``∫_{j-1}^{j} P(S > x) dx = H(j - 1)``."""
    length = active.shape[0]
    on_active = 0.0
    on_draining = 0.0
    for j in range(1, length):
        s = (k - j) % length
        h = kernel[ring_period[s], j - 1]
        on_active += active[s] * h
        on_draining += draining[s] * h
    return on_active, on_draining


class FluidQueue:
    """``ServingQueue`` over per-second arrival counts (see the module docstring).

    counts:      requests arriving in each second, from the trace start (float64 >= 0).
    occupancy:   (periods, L) ``occupancy_kernel`` of the requests started in each period.
    survival:    (periods, L) ``survival_kernel`` of the same.
    period_s:    seconds each period covers.
    drain_s:     seconds a stopped, busy replica takes to finish its requests.
    concurrency: batch slots per replica.
    """

    def __init__(
        self,
        counts: F64,
        occupancy: F64,
        survival: F64,
        period_s: float,
        drain_s: float,
        concurrency: int,
    ) -> None:
        self.counts = np.ascontiguousarray(counts, dtype=np.float64)
        self.cumulative = np.concatenate([[0.0], np.cumsum(self.counts)])
        self.kernel = np.ascontiguousarray(occupancy, dtype=np.float64)
        self.survival = np.ascontiguousarray(survival, dtype=np.float64)
        self.period_len = max(round(period_s), 1)
        self.drain_s = drain_s
        # Residual service of the work in service, per period: P(R > x) = Σ_{j>=x} G(j) / E[S].
        backwards = np.cumsum(self.survival[:, ::-1], axis=1)[:, ::-1]
        self.tail = backwards / np.maximum(backwards[:, :1], 1e-12)
        self.concurrency = concurrency
        length = self.kernel.shape[1]
        self.active = np.zeros(length)
        self.draining = np.zeros(length)
        self.ring_period = np.zeros(length, dtype=np.int64)
        self.queue = np.zeros(self.counts.shape[0] + 1)
        self.qhead = 0
        self.waits = np.zeros(7 * 86400 + 1)  # integer-second waits; the last bin: a week or more
        self.next_k = 0  # the first second not yet served
        self.n_started = 0.0
        self.busy_s = 0.0
        self.ready_at: dict[int, float] = {}  # accepting replicas: handle -> ready time
        self.next_handle = 0
        self._ready_sorted: F64 | None = None

    # -- serving -------------------------------------------------------------------------------

    def advance(self, t: float) -> None:
        """Serve every whole second before ``t``."""
        k1 = math.floor(t + 1e-9)
        if k1 <= self.next_k:
            return
        if self._ready_sorted is None:
            self._ready_sorted = np.sort(np.fromiter(self.ready_at.values(), dtype=np.float64))
        ready = self._ready_sorted
        self.qhead, started, busy = _serve(
            self.counts,
            self.next_k,
            k1,
            ready,
            ready.shape[0],
            self.concurrency,
            self.kernel,
            self.survival,
            self.period_len,
            self.active,
            self.draining,
            self.ring_period,
            self.queue,
            self.qhead,
            self.waits,
        )
        self.n_started += started
        self.busy_s += busy
        self.next_k = k1

    def arrived(self, t: float) -> int:
        """Requests that arrived in the whole seconds before ``t``."""
        k = min(max(math.floor(t + 1e-9), 0), self.counts.shape[0])
        return round(float(self.cumulative[k]))

    def started(self) -> int:
        return round(self.n_started)

    def in_flight(self, t: float) -> int:
        on_active, on_draining = _in_service(
            self.next_k, self.active, self.draining, self.ring_period, self.survival
        )
        return round(on_active + on_draining)

    # -- replicas ------------------------------------------------------------------------------

    def add_replica(self, ready_s: float) -> int:
        handle = self.next_handle
        self.next_handle += 1
        self.ready_at[handle] = math.ceil(ready_s - 1e-9)
        self._ready_sorted = None
        return handle

    def _serving(self, t: float) -> int:
        return sum(1 for ready in self.ready_at.values() if ready <= t)

    def replica_busy(self, handle: int, t: float) -> int:
        ready = self.ready_at.get(handle)
        if ready is None or ready > t:
            return 0
        on_active, _ = _in_service(
            self.next_k, self.active, self.draining, self.ring_period, self.survival
        )
        return round(on_active / max(self._serving(t), 1))

    def stop_replica(self, handle: int, t: float) -> float:
        """The replica takes its share of the work in service with it; its pod goes when the
        last of those ``n`` requests ends: the ``1 - 1/(n+1)`` quantile of their remaining
        service (the residual life of the period's service times), at most ``drain_s``."""
        ready = self.ready_at.pop(handle, None)
        self._ready_sorted = None
        if ready is None or ready > t:
            return t
        share = 1.0 / (self._serving(t) + 1)
        on_active, _ = _in_service(
            self.next_k, self.active, self.draining, self.ring_period, self.survival
        )
        moved = self.active * share
        self.draining += moved
        self.active -= moved
        held = on_active * share
        if held < 0.5:
            return t
        period = min(self.next_k // self.period_len, self.tail.shape[0] - 1)
        # tail[p, x]: share of the work in service still running x seconds on.
        x = int(np.searchsorted(-self.tail[period], -1.0 / (held + 1.0), side="left"))
        return t + min(float(x), self.drain_s)

    def release(self, handle: int) -> None:
        if self.ready_at.pop(handle, None) is not None:
            self._ready_sorted = None

    # -- results -------------------------------------------------------------------------------

    def wait_sketch(self, slo_s: float) -> WaitSketch:
        sketch = WaitSketch(slo_s)
        nonzero = np.flatnonzero(self.waits)
        sketch.add(nonzero.astype(np.float64), self.waits[nonzero])
        return sketch

    def busy_slot_s(self, end_s: float) -> float:
        """Slot-seconds of service delivered within the run (``advance(end_s)`` first)."""
        return self.busy_s

    def served(self) -> float:
        return self.n_started
