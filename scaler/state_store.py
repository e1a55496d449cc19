"""Where each model's policy memory lives between KEDA's calls.

- ``MemoryStateStore``: one scaler process; lost on restart (a restarted scaler then waits a whole
  stabilization window before any scale-down, because its state has no history).
- ``RedisStateStore``: scaler replicas share it and a restart keeps it. Each key is a Redis hash
  ``{v: version, data: JSON record}`` with a TTL (default 7 days), refreshed on every write, so the
  record of a deleted ScaledObject expires on its own. Writes are compare-and-set in one Lua script:
  a writer holding an old version loses and nothing is written.

The JSON form of a ``Record``: ``{"state": QueueDepthState.to_dict(), "decision": {"desired",
"reason" (its stable string value), "detail", "metric_value"}, "at_s"}``; the version lives beside
it in the hash so the script compares it without decoding JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from policies.state import QueueDepthState, StateError
from policies.types import Decision, Reason
from scaler.brokers.redact import redact_text, redact_url
from scaler.brokers.redis import open_client
from scaler.cache import IdleCache
from scaler.ports import Record, Unavailable

log = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "depthscale:state:"
DEFAULT_TTL_S = 7 * 24 * 3600

# KEYS[1]: the record's hash. ARGV: expected version ("" = expect none), new version, JSON, TTL (s).
# A record whose data could not be read back is overwritten by a writer that read it as absent:
# load() reports its version for exactly that case (see RedisStateStore.load).
_CAS_LUA = """
local current = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class StateUnavailable(Unavailable):
    """The Redis holding policy state could not be read or written (the service answers
    UNAVAILABLE, as for a broker outage: no decision is better than one without history)."""


class StateUnreadable(Exception):
    """A stored record exists but cannot be read back: corrupt, or written by another release
    (an older or newer state version, during a rolling upgrade). The service starts a fresh state
    that has watched no window; the next write replaces the record."""


def record_to_json(record: Record) -> str:
    """The record (without its version) as compact JSON."""
    decision = record.decision
    return json.dumps(
        {
            "state": record.state.to_dict(),
            "decision": {
                "desired": decision.desired,
                "reason": decision.reason.value,
                "detail": decision.detail,
                "metric_value": decision.metric_value,
            },
            "at_s": record.at_s,
        },
        separators=(",", ":"),
    )


def record_from_json(text: str | bytes, version: int) -> Record:
    """Inverse of ``record_to_json``; StateError naming the field at fault."""
    try:
        data: Any = json.loads(text)
        decision = data["decision"]
        return Record(
            state=QueueDepthState.from_dict(data["state"]),
            decision=Decision(
                desired=int(decision["desired"]),
                reason=Reason(decision["reason"]),
                detail=str(decision["detail"]),
                metric_value=float(decision["metric_value"]),
            ),
            at_s=float(data["at_s"]),
            version=version,
        )
    except StateError:
        raise
    except (KeyError, TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise StateError(f"bad stored record: {exc!r}") from None


class MemoryStateStore:
    """``ports.StateStore`` in a dict. Each method runs without awaiting, so it is atomic within
    one event loop. A record nobody loaded or wrote for ``idle_s`` seconds (by ``clock``) is
    dropped, and at most ``max_records`` are kept (least recently used first out), so memory is
    bounded whatever triggers come and go; a dropped record's trigger starts afresh if it returns,
    as after a restart."""

    def __init__(
        self,
        *,
        idle_s: float = 24 * 3600.0,
        max_records: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ~4 KB per record at most (the policy state's bound); the byte bound follows the count.
        self._records: IdleCache[str, Record] = IdleCache(
            max_entries=max_records, max_bytes=max_records, idle_s=idle_s
        )
        self._clock = clock

    async def load(self, key: str) -> Record | None:
        now = self._clock()
        self._records.sweep(now)
        return self._records.get(key, now)

    async def compare_and_set(self, key: str, expected_version: int | None, record: Record) -> bool:
        now = self._clock()
        current = self._records.get(key, now)
        current_version = None if current is None else current.version
        if current_version != expected_version:
            return False
        version = 1 if expected_version is None else expected_version + 1
        self._records.put(key, Record(record.state, record.decision, record.at_s, version), 1, now)
        return True

    async def close(self) -> None:
        self._records.clear()


class RedisStateStore:
    """``ports.StateStore`` in Redis, shared by scaler replicas.

    url:        Redis URL (may be the broker's; keys live under ``key_prefix``).
    key_prefix: prepended to every record key.
    ttl_s:      seconds a record outlives its last write (> 0).
    timeout_s:  per-call deadline, seconds (socket and connect timeouts).
    """

    def __init__(
        self,
        url: str,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        timeout_s: float = 1.0,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s}")
        self._url = url
        self.safe_url = redact_url(url)
        self._prefix = key_prefix
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._client = open_client(url, timeout_s)
        self._cas = self._client.register_script(_CAS_LUA)
        # key -> raw version field of a record that exists but could not be read (see load()).
        self._unreadable: dict[str, str] = {}

    async def load(self, key: str) -> Record | None:
        """The stored record, or None. A record that cannot be read back (corrupt, or written by
        an incompatible version) raises ``StateUnreadable``; the next compare_and_set with
        ``expected_version=None`` then replaces it."""
        try:
            async with asyncio.timeout(self._timeout_s):
                raw_version, data = await self._client.hmget(self._prefix + key, ["v", "data"])
        except (RedisError, OSError) as exc:
            raise self._unavailable("read", exc) from None
        if raw_version is None:
            self._unreadable.pop(key, None)
            return None
        try:
            record = record_from_json(data if data is not None else b"", int(raw_version))
        except (StateError, ValueError) as exc:
            text = (
                raw_version.decode(errors="replace")
                if isinstance(raw_version, bytes)
                else raw_version
            )
            self._unreadable[key] = str(text)
            raise StateUnreadable(f"{self._prefix}{key}: {str(exc)[:200]}") from None
        self._unreadable.pop(key, None)
        return record

    async def compare_and_set(self, key: str, expected_version: int | None, record: Record) -> bool:
        """Store ``record`` as version expected_version+1 (1 when expected is None); False, with
        nothing written, when the stored version is not ``expected_version``."""
        if expected_version is not None:
            expected, new_version = str(expected_version), expected_version + 1
        elif key in self._unreadable:  # replace what load() could not read
            expected = self._unreadable[key]
            new_version = int(expected) + 1 if expected.isdigit() else 1
        else:
            expected, new_version = "", 1
        args = [expected, str(new_version), record_to_json(record), str(self._ttl_s)]
        try:
            async with asyncio.timeout(self._timeout_s):
                won = await self._cas(keys=[self._prefix + key], args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable("write", exc) from None
        if won:
            self._unreadable.pop(key, None)
        return bool(won)

    async def close(self) -> None:
        await self._client.aclose()

    def _unavailable(self, what: str, exc: Exception) -> StateUnavailable:
        text = redact_text(str(exc), self._url) or f"no answer within {self._timeout_s:g} s"
        return StateUnavailable(f"state store {self.safe_url}: {what} failed: {text}")
