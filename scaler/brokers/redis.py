"""Celery queue depth on a Redis broker, counted exactly as kombu counts it.

Key layout (kombu/transport/redis.py, kombu 5.x):

- queue ``q`` with ``priority_steps`` ``[0, 3, 6, 9]`` and ``sep`` ``"\\x06\\x16"`` lives in the lists
  ``q``, ``q\\x06\\x163``, ``q\\x06\\x166``, ``q\\x06\\x169`` (``Channel._q_for_pri``: step 0 is the
  bare name, every other step is ``queue + sep + str(step)``);
- ``Channel._size(q)`` is the sum of LLEN over those lists, pipelined;
- ``global_keyprefix`` is prepended to every key, the lists and the ``unacked`` hash alike
  (``GlobalKeyPrefixMixin``: LLEN, HSET, ... all take the prefixed key);
- a task a worker has reserved but not acked sits in the ``unacked`` hash, its value the JSON
  ``[message, exchange, routing_key]`` (``QoS.append``).

One ``read`` is one pipelined round trip (no MULTI): the LLENs of every queue and
step, plus, when in-flight tasks are asked for, one ``EVAL`` of a small Lua script that counts the
``unacked`` entries whose routing key names one of the spec's queues (Celery routes a task for
queue ``q`` with routing key ``q`` unless told otherwise). The script walks the whole hash inside
Redis: O(unacked entries) server time per read (measured ~5 µs per entry: 1,000 reserved
tasks cost ~5 ms of Redis time per read), no extra round trip. ``EVAL`` (not ``EVALSHA``) is
used so a restarted Redis without the script cached costs nothing extra: the script text is ~1 kB.
Nothing is ever written. A Redis ACL user for the scaler needs ``+llen``, and ``+eval`` and
``+hvals`` (run inside the script) when in-flight tasks are counted, on the queue and ``unacked``
keys: ``ACL SETUSER depthscale on >PASSWORD ~* +llen +eval +hvals`` (``+select`` too for a
database other than 0; narrow ``~*`` to the prefix). Read-only key patterns (``%R~``) refuse
``EVAL``; ``EVAL_RO`` would pass them but needs Redis 7, and Celery brokers still run Redis 6.
The commands are packed once per queue spec and sent over ``resp.RespPool`` connections: a read
costs a few µs of Python instead of redis-py's ~200 µs pipeline machinery (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from scaler.brokers.redact import redact_text, redact_url
from scaler.brokers.resp import RespError, RespPool, endpoint_from_url, file_stamp, pack
from scaler.ports import DEFAULT_UNACKED_KEY, BrokerTimeout, BrokerUnavailable, Depth, QueueSpec

# kombu Channel.unacked_key (transport option ``unacked_key``), before the global prefix; a
# broker's configuration may change it (QueueSpec.unacked_key).
UNACKED_KEY = DEFAULT_UNACKED_KEY

# KEYS[1]: the (prefixed) unacked hash. ARGV[1]: k, the number of queues; ARGV[2..k+1]: the queue
# names (routing keys); ARGV[k+2..2k+1]: the same names JSON-encoded as kombu's json.dumps writes
# them (ASCII, escaped). A value is kombu's ``[message, exchange, routing_key]``, so it ends with
# ``, "<routing key>"]``: comparing that suffix costs well under a µs per entry, whatever the
# message's size. A value not ending in ``"]`` is not in that form and is decoded with cjson.
COUNT_UNACKED_LUA = r"""
local k = tonumber(ARGV[1])
local wanted, suffixes = {}, {}
for i = 1, k do
  wanted[ARGV[1 + i]] = true
  suffixes[#suffixes + 1] = ', ' .. ARGV[1 + k + i] .. ']'
  suffixes[#suffixes + 1] = ',' .. ARGV[1 + k + i] .. ']'
end
local n = 0
local values = redis.call('HVALS', KEYS[1])
for i = 1, #values do
  local v = values[i]
  local hit = false
  for j = 1, #suffixes do
    local s = suffixes[j]
    if string.sub(v, -#s) == s then
      hit = true
      break
    end
  end
  if not hit and string.sub(v, -2) ~= '"]' then
    local ok, decoded = pcall(cjson.decode, v)
    hit = ok and type(decoded) == 'table' and type(decoded[3]) == 'string'
      and wanted[decoded[3]] == true
  end
  if hit then n = n + 1 end
end
return n
"""


class BrokerResponseError(BrokerUnavailable):
    """Redis answered with an error (e.g. WRONGTYPE: a queue key is not a list)."""


def priority_list_name(queue: str, step: int, sep: str) -> str:
    """kombu ``Channel._q_for_pri`` for a step of ``priority_steps``: step 0 is the bare name."""
    return f"{queue}{sep}{step}" if step else queue


@functools.lru_cache(maxsize=16384)
def list_keys(spec: QueueSpec) -> tuple[str, ...]:
    """Every Redis list holding the spec's waiting tasks, ``key_prefix`` applied, queue-major."""
    return tuple(
        spec.key_prefix + priority_list_name(queue, step, spec.sep)
        for queue in spec.queues
        for step in spec.priority_steps
    )


def open_client(url: str, timeout_s: float, max_connections: int = 256) -> aioredis.Redis:
    """An asyncio Redis client that fails fast: socket and connect timeouts of ``timeout_s``
    seconds, no retries (the caller's next read reconnects), bytes responses.

    ``rediss://`` takes redis-py's URL options, ``ssl_ca_certs``, ``ssl_cert_reqs`` and the client
    certificate ``ssl_certfile``/``ssl_keyfile``, read again at a reconnect after they changed."""
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        max_connections=max_connections,
        decode_responses=False,
    )
    pool = client.connection_pool
    if pool.connection_class is aioredis.SSLConnection:  # no connection is made before first use
        pool.connection_class = _ReloadingSSLConnection
    return client


class _ReloadingSSLConnection(aioredis.SSLConnection):
    """redis-py makes a connection's SSL context at its first connect and keeps it for every
    reconnect, and the pool keeps connections for the process's life: a renewed client
    certificate would never be sent. This one makes the context again when a file changed."""

    _tls_stamp: object = None

    def _connection_arguments(self) -> Mapping[str, Any]:
        ctx = self.ssl_context
        stamp = file_stamp((ctx.ca_certs, ctx.certfile, ctx.keyfile))
        if stamp != self._tls_stamp:
            ctx.context = None
            self._tls_stamp = stamp
        return super()._connection_arguments()


class RedisBrokerReader:
    """``ports.BrokerReader`` for a Celery Redis broker.

    url:       ``redis://``, ``rediss://`` or ``unix://`` URL; its password never appears in errors.
    timeout_s: whole-read deadline, seconds (> 0), connecting and waiting for a free connection
               included: a read that has not finished by then raises ``BrokerTimeout``; a refused
               or dropped connection raises ``BrokerUnavailable``. Nothing is retried: the next
               read starts afresh.
    max_idle, max_open: connections kept between reads, and open at once (reads beyond it wait).
    round_trips: reads attempted so far (each one pipelined round trip), for benchmarks.
    """

    def __init__(
        self, url: str, timeout_s: float = 1.0, *, max_idle: int = 64, max_open: int = 128
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
        self._url = url
        self._timeout_s = timeout_s
        self.safe_url = redact_url(url)
        try:
            endpoint = endpoint_from_url(url)
        except ValueError as exc:
            raise ValueError(
                f"bad broker URL {self.safe_url}: {redact_text(str(exc), url)}"
            ) from None
        self._pool = RespPool(endpoint, timeout_s, max_idle, max_open)
        self.round_trips = 0

    async def read(self, spec: QueueSpec) -> Depth:
        """Pending (and, if asked, in-flight) tasks of ``spec``'s queues, in one round trip."""
        packed, replies = packed_read(spec)
        self.round_trips += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                generation, conn = await self._pool.acquire()
                healthy = False
                try:
                    results = await conn.call(packed, replies)
                    healthy = True
                finally:
                    self._pool.release(generation, conn, healthy)
        except TimeoutError:
            raise BrokerTimeout(
                f"redis broker {self.safe_url} did not answer within {self._timeout_s:g} s"
            ) from None
        except RespError as exc:  # AUTH or SELECT refused while connecting
            raise BrokerUnavailable(
                f"redis broker {self.safe_url} refused the connection: "
                f"{redact_text(str(exc), self._url)}"
            ) from None
        except (OSError, EOFError) as exc:
            reason = redact_text(str(exc), self._url) or type(exc).__name__
            raise BrokerUnavailable(f"redis broker {self.safe_url} unavailable: {reason}") from None
        errors = [r for r in results if isinstance(r, RespError)]
        if errors:
            raise BrokerResponseError(
                f"redis broker {self.safe_url} refused the read: "
                f"{redact_text(str(errors[0]), self._url)}"
            )
        counts = [r for r in results if isinstance(r, int)]
        if len(counts) != len(results):  # never a made-up 0 from a reply we did not expect
            raise BrokerResponseError(f"redis broker {self.safe_url}: a count was not an integer")
        if spec.include_unacked:
            return Depth(pending=sum(counts[:-1]), in_flight=counts[-1])
        return Depth(pending=sum(counts))

    async def close(self) -> None:
        self._pool.close()


@functools.lru_cache(maxsize=16384)
def packed_read(spec: QueueSpec) -> tuple[bytes, int]:
    """The read's commands packed once per spec, and how many replies they bring."""
    commands = [pack("LLEN", key) for key in list_keys(spec)]
    if spec.include_unacked:
        key = spec.key_prefix + spec.unacked_key
        names = [json.dumps(queue) for queue in spec.queues]  # kombu: json.dumps, ASCII
        commands.append(pack("EVAL", COUNT_UNACKED_LUA, 1, key, len(names), *spec.queues, *names))
    return b"".join(commands), len(commands)
