"""A straightforward SimPy model of the serving side, for comparison with the compiled queue.

This is what one would write by hand: one SimPy process per batch slot pulling requests from a
FIFO ``simpy.Store``, one arrival process putting each request in at its arrival time. It
implements the engine's ``ServingQueue`` protocol, so the same control loop (KEDA, HPA, node
pools, the policy) drives it and the answers can be compared request for request:

    from simulator.engine.loop import simulate
    simulate(plan, policies, make_queue=SimpyQueue)

Times are simulated seconds. ``advance(t)`` runs the SimPy environment up to (not including) t.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

F64 = npt.NDArray[np.float64]


class SimpyQueue:
    """FCFS requests served by replicas of ``concurrency`` slots, one SimPy process per slot."""

    def __init__(self, arrival: F64, service: F64, concurrency: int) -> None:
        self.arrival = arrival
        self.service = service
        self.concurrency = concurrency
        self.start = np.full(arrival.shape[0], np.nan)
        self.env = simpy.Environment()
        self.store: simpy.Store = simpy.Store(self.env)
        self.n_started = 0
        self.replicas: list[list[simpy.Process]] = []
        self.busy_until: list[list[float]] = []
        self.ready_at: list[float] = []
        self.stopped: set[int] = set()
        self.env.process(self._arrivals())

    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        for i, at in enumerate(self.arrival.tolist()):
            if at > env.now:
                yield env.timeout(at - env.now)
            self.store.put(i)

    def _slot(self, replica: int, k: int, ready_s: float) -> Generator[simpy.Event, Any, None]:
        env = self.env
        try:
            if ready_s > env.now:
                yield env.timeout(ready_s - env.now)
            while replica not in self.stopped:
                get = self.store.get()
                try:
                    i = yield get
                except simpy.Interrupt:
                    get.cancel()
                    return
                self.start[i] = env.now
                self.n_started += 1
                done = env.now + float(self.service[i])
                self.busy_until[replica][k] = done
                yield env.timeout(done - env.now)
        except simpy.Interrupt:
            return

    # -- the ServingQueue protocol -------------------------------------------------------------

    def advance(self, t: float) -> None:
        if t > self.env.now:
            self.env.run(until=t)

    def arrived(self, t: float) -> int:
        return int(np.searchsorted(self.arrival, t, side="left"))

    def started(self) -> int:
        return self.n_started

    def in_flight(self, t: float) -> int:
        busy = 0
        for replica, ends in enumerate(self.busy_until):
            if self.ready_at[replica] <= t:
                busy += sum(1 for end in ends if end > t)
        return busy

    def add_replica(self, ready_s: float) -> int:
        replica = len(self.replicas)
        self.ready_at.append(ready_s)
        self.busy_until.append([ready_s] * self.concurrency)
        self.replicas.append(
            [self.env.process(self._slot(replica, k, ready_s)) for k in range(self.concurrency)]
        )
        return replica

    def replica_busy(self, handle: int, t: float) -> int:
        if self.ready_at[handle] > t:
            return 0
        return sum(1 for end in self.busy_until[handle] if end > t)

    def stop_replica(self, handle: int, t: float) -> float:
        self.stopped.add(handle)
        for process in self.replicas[handle]:
            if process.is_alive and not _serving(process):
                process.interrupt()
        if self.ready_at[handle] > t:
            return t
        return max(t, *self.busy_until[handle])

    def release(self, handle: int) -> None:
        self.stopped.add(handle)

    def start_times(self) -> F64:
        return self.start


def _serving(process: simpy.Process) -> bool:
    """True while the slot waits on its service timeout (it finishes that request first)."""
    return isinstance(process.target, simpy.Timeout) and not isinstance(
        process.target, simpy.events.Initialize
    )
