"""In-process fakes of the scaler's ports, for service-logic tests that need no server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from scaler.kube import ReplicaCounts
from scaler.ports import BrokerUnavailable, Depth, QueueSpec, Record


@dataclass
class Clock:
    """A hand-driven clock (seconds) that counts how often it is read."""

    now: float = 1_000_000.0
    reads: int = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeBroker:
    """Answers ``depth``; raises ``error`` when set; waits on ``gate`` when it is not set."""

    depth: Depth = field(default_factory=lambda: Depth(pending=0))
    error: BrokerUnavailable | None = None
    gate: asyncio.Event | None = None
    hang: bool = False
    reads: list[QueueSpec] = field(default_factory=list)
    closed: bool = False
    _read_made: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    async def wait_for_reads(self, count: int) -> None:
        """Return once ``count`` reads have been made (each is logged before it waits)."""
        async with self._read_made:
            await self._read_made.wait_for(lambda: len(self.reads) >= count)

    async def read(self, spec: QueueSpec) -> Depth:
        self.reads.append(spec)
        async with self._read_made:
            self._read_made.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return self.depth

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeStore:
    """A dict with compare-and-set, as the StateStore protocol describes it."""

    records: dict[str, Record] = field(default_factory=dict)
    writes: int = 0

    async def load(self, key: str) -> Record | None:
        return self.records.get(key)

    async def compare_and_set(self, key: str, expected_version: int | None, record: Record) -> bool:
        current = self.records.get(key)
        if (current.version if current else None) != expected_version:
            return False
        version = 1 if expected_version is None else expected_version + 1
        self.records[key] = Record(record.state, record.decision, record.at_s, version)
        self.writes += 1
        return True

    async def close(self) -> None:
        pass


@dataclass
class FakeReplicas:
    """A ``ReplicaSource`` answering ``counts`` (None: unknown, as after an API error) for every
    ScaledObject, and counting its reads."""

    counts_now: ReplicaCounts | None = None
    reads: int = 0
    closed: bool = False

    async def counts(self, namespace: str, scaled_object: str) -> ReplicaCounts | None:
        self.reads += 1
        return self.counts_now

    async def close(self) -> None:
        self.closed = True
