"""A cache bounded in entries, in bytes and in idle time: what the scaler keeps per trigger.

Entries are ordered by last use, so evicting the least recently used and dropping the idle ones
both start at the front and cost O(entries dropped). ``cost`` is the caller's estimate of an
entry's bytes; the bound holds on the sum of those estimates.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    cost: int
    used_s: float


class IdleCache(Generic[K, V]):
    """max_entries, max_bytes: bounds; the least recently used entries go first beyond them.
    idle_s: an entry unused for longer is dropped by ``sweep``.
    on_evict: called with (key, value) for every entry dropped, whatever the reason."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        idle_s: float,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        if max_entries < 1 or max_bytes < 1 or not idle_s > 0:
            raise ValueError("max_entries, max_bytes and idle_s must be > 0")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.idle_s = idle_s
        self._on_evict = on_evict
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def values(self) -> Iterator[V]:
        return (entry.value for entry in self._entries.values())

    def get(self, key: K, now_s: float) -> V | None:
        """The value, marked as used at ``now_s``; None when absent."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.used_s = now_s
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: K, value: V, cost: int, now_s: float) -> None:
        """Store ``value`` (replacing any), then evict the least recently used beyond the bounds.
        A value costlier than ``max_bytes`` on its own is not kept."""
        self.pop(key)
        if cost > self.max_bytes:
            return
        self._entries[key] = _Entry(value, cost, now_s)
        self.bytes += cost
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._evict_first()

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.bytes -= entry.cost
        return entry.value

    def sweep(self, now_s: float) -> int:
        """Drop every entry unused since ``now_s - idle_s``; returns how many."""
        dropped = 0
        while self._entries:
            entry = next(iter(self._entries.values()))
            if now_s - entry.used_s <= self.idle_s:
                break
            self._evict_first()
            dropped += 1
        return dropped

    def clear(self) -> None:
        while self._entries:
            self._evict_first()

    def _evict_first(self) -> None:
        key, entry = self._entries.popitem(last=False)
        self.bytes -= entry.cost
        if self._on_evict is not None:
            self._on_evict(key, entry.value)
