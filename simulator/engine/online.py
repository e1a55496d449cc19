"""Online traffic: requests sent through the gateway straight to vLLM, beside the Celery tasks.

A model's requests are one arrival-ordered stream; ``OnlineSpec.mask`` marks the ones that
arrive online. Both kinds share the replicas' batch slots first come, first served: vLLM's
scheduler serves its waiting requests in order, and a Celery worker hands vLLM a task as soon
as one of its threads (as many as vLLM's slots) is free. What differs is who sees them:

- the scaler (``policies.observe``) sees the Celery tasks only: pending tasks and, with
  ``includeUnacked``, tasks in service. An online request is never a task;
- KEDA's ``prometheus`` trigger sees vLLM's own gauges, ``vllm:num_requests_running`` (every
  request in service, Celery's included) plus ``vllm:num_requests_waiting`` (online requests
  waiting for a slot), summed over the model's pods, as Prometheus last scraped them
  (``Scrapes``), and hands the HPA that sum for an ``AverageValue`` target per replica.

Approximation: a Celery task that finds every slot busy waits in the broker here (counted
pending by the scaler); live, a free worker thread may already have handed it to vLLM, where it
waits as well, counted by the scaler as in flight and by vLLM as waiting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulator.engine.queue import ModelQueue

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OnlineSpec:
    """A model's online traffic as the engine runs it.

    mask:    per request of the model (arrival order), True when it arrives online.
    target:  the prometheus trigger's AverageValue threshold: requests running or waiting in
             vLLM per replica.
    hold_s:  the trigger's query reports the highest sum of the last ``hold_s`` seconds (the
             policy's ``stabilizationWindowSeconds``), so online load gets the scale-down hold
             Celery load gets from the policy; 0 = the latest sum.
    trigger: the ScaledObject carries the prometheus trigger; False models online traffic that
             no autoscaler sees (the deployment before the trigger existed).
    """

    mask: npt.NDArray[np.bool_]
    target: float
    hold_s: float = 0.0
    trigger: bool = True


@dataclass(frozen=True, slots=True)
class Counts:
    """What each side sees of one model at one instant (requests).

    pending:     Celery tasks waiting in the broker.
    in_flight:   Celery tasks in service.
    waiting:     online requests waiting inside vLLM for a slot.
    running:     requests of either kind in service (vLLM's ``num_requests_running``).
    """

    pending: int
    in_flight: int
    waiting: int
    running: int

    @property
    def gauges(self) -> int:
        """``vllm:num_requests_running + vllm:num_requests_waiting`` summed over the pods."""
        return self.running + self.waiting


class MixedQueue(ModelQueue):
    """``ModelQueue`` over both kinds of request, counting each kind apart."""

    def __init__(
        self, arrival: F64, service: F64, concurrency: int, online: npt.NDArray[np.bool_]
    ) -> None:
        super().__init__(arrival, service, concurrency)
        if online.shape != self.arrival.shape:
            raise ValueError("the online mask needs one entry per request")
        self.online = np.ascontiguousarray(online, dtype=np.bool_)
        # online_before[k]: online requests among the first k (arrival order).
        self.online_before = np.concatenate([[0], np.cumsum(self.online)]).astype(np.int64)
        self.longest_s = float(self.service.max()) if self.service.size else 0.0

    def counts(self, t: float) -> Counts:
        """Both kinds at ``t`` (seconds; call after ``advance(t)``)."""
        arrived, head = self.arrived(t), self.head
        online_arrived = int(self.online_before[arrived])
        online_started = int(self.online_before[head])
        # Start times never decrease (FCFS): only requests started within the longest service
        # time before ``t`` can still be in service.
        lo = int(np.searchsorted(self.start[:head], t - self.longest_s, side="left"))
        start = self.start[lo:head]
        busy = (start <= t) & (start + self.service[lo:head] > t)
        running = int(np.count_nonzero(busy))
        online_running = int(np.count_nonzero(busy & self.online[lo:head]))
        return Counts(
            pending=(arrived - online_arrived) - (head - online_started),
            in_flight=running - online_running,
            waiting=online_arrived - online_started,
            running=running,
        )

    def wait_of(self, online: bool) -> tuple[F64, int]:
        """Waits (seconds) of the started requests of one kind, and how many of that kind
        there are in all."""
        kind = self.online[: self.head] if online else ~self.online[: self.head]
        waits = (self.start[: self.head] - self.arrival[: self.head])[kind]
        total = int(self.online.sum()) if online else int((~self.online).sum())
        return waits, total


@dataclass(slots=True)
class Scrapes:
    """What Prometheus holds of one model's vLLM gauges, as the trigger's query sees it.

    At an instant ``u`` the sum in effect is the latest scrape taken strictly before
    ``u - lag_s`` (a sample taken at the query's own instant is not yet in). A query at ``t``
    returns the highest sum in effect at any instant of ``(t - hold_s, t]`` (PromQL's
    ``max_over_time`` over a subquery stepping at the scrape interval; ``hold_s`` 0: the sum in
    effect at ``t``), or None before the first scrape (KEDA's prometheus scaler then reads 0:
    ``ignoreNullValues`` defaults to true).
    """

    lag_s: float
    hold_s: float = 0.0
    history: deque[tuple[float, float]] = field(default_factory=deque)

    def record(self, t: float, value: float) -> None:
        self.history.append((t, value))

    def seen(self, t: float) -> float | None:
        cutoff = t - self.lag_s
        start = cutoff - self.hold_s
        history = self.history
        # Keep the scrape in effect at the window's start and everything after it.
        while len(history) > 1 and history[1][0] < start:
            history.popleft()
        values = [v for at, v in history if at < cutoff]
        if not values:
            return None
        return max(values) if self.hold_s > 0 else values[-1]
