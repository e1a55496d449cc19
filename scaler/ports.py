"""The scaler's I/O seams: what the gRPC service asks of a broker and of a state store.

The service (``scaler/service.py``) sees only these protocols, so its logic is testable with
in-process fakes and its integration tests swap in the real Redis-backed implementations, as
httpx swaps transports rather than clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from policies.state import QueueDepthState
from policies.types import Decision

# Celery/kombu Redis transport defaults (kombu/transport/redis.py): priority lists are named
# queue + sep + str(step) for every step but 0, which is the bare queue name.
DEFAULT_PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
DEFAULT_SEP = "\x06\x16"
DEFAULT_UNACKED_KEY = "unacked"


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Where one model's tasks wait.

    queues:          Celery queue names (several per model are summed).
    priority_steps:  kombu ``priority_steps``; every step has its own Redis list.
    key_prefix:      kombu ``global_keyprefix`` ("" for none); prefixes every key.
    sep:             kombu priority separator (transport option ``sep``).
    include_unacked: also count tasks workers reserved but have not acked (the ``unacked`` hash),
                     reported as ``in_flight``.
    unacked_key:     kombu's ``unacked_key`` transport option: the hash of reserved tasks, before
                     the key prefix.
    """

    queues: tuple[str, ...]
    priority_steps: tuple[int, ...] = DEFAULT_PRIORITY_STEPS
    key_prefix: str = ""
    sep: str = DEFAULT_SEP
    include_unacked: bool = False
    unacked_key: str = DEFAULT_UNACKED_KEY


@dataclass(frozen=True, slots=True)
class Depth:
    """pending: tasks waiting in the lists (kombu's ``Channel._size`` summed over queues), >= 0.
    in_flight: reserved/unacked tasks of these queues, or None when not asked for."""

    pending: int
    in_flight: int | None = None


class Unavailable(Exception):
    """Something the answer needs could not be read: the broker, or the policy state. Answered
    UNAVAILABLE, so KEDA keeps the replicas it has; never read as 0."""


class BrokerUnavailable(Unavailable):
    """The broker could not be read (down, refused, timed out). Never read as 0 pending."""


class BrokerTimeout(BrokerUnavailable):
    """The broker did not answer within the read deadline."""


class BrokerReader(Protocol):
    """One broker connection (pool). ``read`` costs one pipelined round trip."""

    async def read(self, spec: QueueSpec) -> Depth: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Record:
    """One model's shared policy memory: the state after the last decision, that decision, when it
    was taken (seconds), and a version for compare-and-set between scaler replicas."""

    state: QueueDepthState
    decision: Decision
    at_s: float
    version: int = 0


class StateStore(Protocol):
    """Where policy state lives: in memory (one scaler) or Redis (replicas share, restarts keep)."""

    async def load(self, key: str) -> Record | None: ...

    async def compare_and_set(self, key: str, expected_version: int | None, record: Record) -> bool:
        """Store ``record`` (with version expected_version+1, or 1 when expected is None and no
        record exists). False when another writer got there first; nothing is written then."""
        ...

    async def close(self) -> None: ...
