"""The compiled queue against a plain reference: multi-server FCFS worked one request at a time.

The reference is the textbook recursion — request i starts at max(arrival_i, earliest time a
slot is free) — over a list of slots, O(slots) per request, no heap, no chunks. A slot that
is stopped at T may still take a request whose start is before T, never one at or after T.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.queue import ModelQueue


def reference(
    arrival: np.ndarray,
    service: np.ndarray,
    slot_ready: list[float],
    stopped_at: dict[int, float] | None = None,
    end: float = np.inf,
) -> np.ndarray:
    stopped_at = stopped_at or {}
    free = list(slot_ready)
    start = np.full(arrival.size, np.nan)
    for i, (a, s) in enumerate(zip(arrival, service, strict=True)):
        best, best_slot = np.inf, -1
        for k, f in enumerate(free):
            candidate = max(a, f)
            if candidate >= stopped_at.get(k, np.inf):
                continue
            if candidate < best:
                best, best_slot = candidate, k
        if best_slot < 0 or best >= end:
            break  # FCFS: nobody behind this request starts either
        start[i] = best
        free[best_slot] = best + s
    return start


def workload(seed: int, n: int = 3000, rate: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1.0 / rate, n)), rng.exponential(2.0, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_static_slots_match_the_reference_in_any_chunking(seed: int) -> None:
    arrival, service = workload(seed)
    queue = ModelQueue(arrival, service, concurrency=3)
    queue.add_replica(0.0)
    queue.add_replica(50.0)  # a second replica warming until t=50
    rng = np.random.default_rng(100 + seed)
    for t in np.sort(rng.uniform(0.0, arrival[-1] + 100.0, 40)):
        queue.advance(float(t))
    end = float(arrival[-1] + 1000.0)
    queue.advance(end)
    expected = reference(arrival, service, [0.0] * 3 + [50.0] * 3, end=end)
    np.testing.assert_array_equal(queue.start_times(), expected)


def test_replica_added_mid_run_serves_the_waiting_queue() -> None:
    # An overloaded single slot; at t=200 a replica of 4 slots is requested, ready at t=320.
    arrival, service = workload(4, n=2000, rate=2.0)
    queue = ModelQueue(arrival, service, concurrency=4)
    first = queue.add_replica(0.0)
    queue.advance(200.0)
    queue.add_replica(320.0)
    for t in np.arange(215.0, arrival[-1] + 2000.0, 15.0):
        queue.advance(float(t))
    assert first == 0
    expected = reference(arrival, service, [0.0] * 4 + [320.0] * 4)
    np.testing.assert_array_equal(queue.start_times(), expected)


def test_stopped_replica_takes_nothing_new_and_drains() -> None:
    # Which free slot takes a request is a free choice, and it decides which requests a stopped
    # replica holds. So: one-slot replicas ready at distinct times under a queue that never
    # empties (10 arrivals/s for 3 slots of ~1/s), where every assignment is forced.
    rng = np.random.default_rng(5)
    arrival = np.cumsum(rng.exponential(0.1, 600))
    service = rng.exponential(1.0, 600)
    queue = ModelQueue(arrival, service, concurrency=1)
    slots = [queue.add_replica(ready) for ready in (0.0, 0.5, 1.0)]
    queue.advance(20.0)
    drain_end = queue.stop_replica(slots[1], 20.0)
    for t in np.arange(35.0, 2000.0, 15.0):
        queue.advance(float(t))
    expected = reference(arrival, service, [0.0, 0.5, 1.0], stopped_at={1: 20.0})
    np.testing.assert_array_equal(queue.start_times(), expected)
    # Its last request (started before 20) ends at the returned drain time.
    start = queue.start_times()
    ends = (start + service)[start < 20.0]
    assert drain_end in set(ends.tolist())
    assert drain_end >= 20.0


def test_in_flight_counts_requests_in_service() -> None:
    arrival, service = workload(6, n=1500, rate=2.0)
    queue = ModelQueue(arrival, service, concurrency=4)
    queue.add_replica(0.0)
    queue.add_replica(0.0)
    for t in np.arange(7.5, 600.0, 15.0):
        queue.advance(float(t))
        start = queue.start_times()
        busy = np.count_nonzero((start < t) & (start + service > t))
        assert queue.in_flight(float(t)) == busy
        assert queue.arrived(float(t)) - queue.started() == np.count_nonzero(
            (arrival < t) & ~(start < t)
        )


def test_warming_replica_is_not_in_flight_and_released_blocks_are_reused() -> None:
    arrival = np.array([1.0, 2.0])
    queue = ModelQueue(arrival, np.array([100.0, 100.0]), concurrency=1)
    warming = queue.add_replica(500.0)
    queue.advance(10.0)
    assert queue.in_flight(10.0) == 0
    assert queue.stop_replica(warming, 10.0) == 10.0  # nothing to drain
    queue.release(warming)
    again = queue.add_replica(20.0)
    assert again == warming
    queue.advance(30.0)
    np.testing.assert_array_equal(queue.start_times(), [20.0, np.nan])


def test_replica_ready_at_once_serves_the_backlog_from_then() -> None:
    # Requests wait from t=1..3 with no replica; at t=15 a replica appears, ready at once: the
    # backlog starts at 15, 15 + 10, 15 + 20 — never before the replica existed.
    queue = ModelQueue(np.array([1.0, 2.0, 3.0]), np.array([10.0, 10.0, 10.0]), concurrency=1)
    queue.advance(15.0)
    queue.add_replica(15.0)
    queue.advance(30.0)
    queue.advance(60.0)
    np.testing.assert_array_equal(queue.start_times(), [15.0, 25.0, 35.0])
