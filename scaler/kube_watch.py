"""One kind of object in one namespace, listed once and then watched: an in-memory mirror of the
objects' names → a small value each (``reduce``), kept current by the API server's events.

The loop is the one the Kubernetes API concepts describe under "Efficient detection of changes"
(https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):

1. ``list`` the collection; its ``metadata.resourceVersion`` is where the watch starts;
2. ``watch`` from that version (lightkube's ``AsyncClient.watch``, which re-opens the request
   itself, from the last version it saw, whenever the server ends it cleanly); each ADDED /
   MODIFIED / DELETED event updates the mirror;
3. a watch answered with ``410 Gone`` (the version is older than the server keeps:
   https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses) starts over
   at 1 with a fresh list, which also drops objects deleted while nobody watched;
4. a watch connection that drops mid-stream, or stays silent for longer than a watch lasts
   (``server_timeout_s`` + ``silence_grace_s``: a connection dead without a reset), is re-opened
   at once from the last version seen; a request that fails (connection refused, timeout, 401, 403, 5xx) marks the mirror as failed
   with its ``KubeError`` kind and is retried ``backoff_s`` later with a fresh list.

lightkube's watch does not ask for bookmarks (``allowWatchBookmarks``,
https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks): its
``AsyncClient.watch`` takes labels, fields, ``server_timeout``, ``resource_version`` and
``on_error`` only (lightkube 1.0.1, lightkube/core/async_client.py). So a quiet namespace's
watch is resumed from an older version and may meet a 410: that costs one list, and no event is
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.core.exceptions import ConfigError
from lightkube.types import on_error_raise

log = logging.getLogger("depthscale.scaler.kube")

V = TypeVar("V")

_GONE = 410


class KubeError(Exception):
    """A failed read; ``kind`` is one of ``scaler.kube.ERROR_KINDS``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Gone(Exception):
    """The watch's version is too old: list again."""


def classify(exc: BaseException, what: str) -> KubeError:
    """An exception from lightkube / httpx2 → a ``KubeError`` with the API server's message."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ConfigError | OSError) and not isinstance(exc, TimeoutError):
        return KubeError("config", f"{what}: {exc}")
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return KubeError("timeout", f"{what}: no answer in time")
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        if isinstance(exc, ApiError) and exc.status.code:
            status = exc.status.code
        message = _status_message(exc) or exc.response.reason_phrase
        kind = {401: "unauthorized", 403: "forbidden", 404: "not-found"}.get(status, "unavailable")
        return KubeError(kind, f"{what}: HTTP {status}: {message}"[:400])
    if isinstance(exc, httpx2.HTTPError):
        return KubeError("unavailable", f"{what}: {type(exc).__name__}: {exc}"[:400])
    return KubeError("bad-response", f"{what}: {type(exc).__name__}: {exc}"[:400])


def _status_message(exc: httpx2.HTTPStatusError) -> str:
    if isinstance(exc, ApiError) and exc.status.message:
        return str(exc.status.message)
    with contextlib.suppress(Exception):
        return str(json.loads(exc.response.content).get("message", ""))
    return ""


class Informer(Generic[V]):
    """The mirror of one collection (``resource`` in ``namespace``), see the module docstring.

    items:   name → ``reduce(object)``, for every object of the collection; filled by the first
             list, then by events.
    version: the last resourceVersion applied (the list's or an event's); "" before the list.
    error:   why the mirror cannot be trusted now (the last request failed), else None.
    synced:  True once a list succeeded and no request failed since.
    """

    def __init__(
        self,
        client: AsyncClient,
        resource: Any,
        namespace: str,
        reduce: Callable[[Any], V],
        *,
        backoff_s: float,
        server_timeout_s: int,
        silence_grace_s: float,
        what: str,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.reduce = reduce
        self.backoff_s = backoff_s
        self.server_timeout_s = server_timeout_s
        self.silence_grace_s = silence_grace_s
        self.what = what
        self.items: dict[str, V] = {}
        self.version = ""
        self.error: KubeError | None = None
        self.synced = False
        self.lists = 0
        self.watches = 0
        self._bare_drops = 0  # consecutive watches dropped before any event
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(), name=f"depthscale-watch {what}")

    async def ready(self) -> None:
        """Return once the mirror is synced; raise its ``KubeError`` when the last request
        failed (the caller bounds the wait with its own timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.synced or self.error is not None)
        if self.error is not None:
            raise self.error

    async def wait_for(self, predicate: Callable[[Informer[V]], bool]) -> None:
        """Return once ``predicate(self)`` holds after a list or an event (for tests)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
            except _Gone:
                version = None  # list again
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = classify(exc, self.what)
                self.synced = False
                await self._notify()
                log.debug("watch %s failed: %s", self.what, self.error)
                version = None
                await asyncio.sleep(self.backoff_s)

    async def _list(self) -> str:
        self.lists += 1
        listing = self.client.list(self.resource, namespace=self.namespace)
        items: dict[str, V] = {}
        async for obj in listing:
            items[obj.metadata.name] = self.reduce(obj)
        version = listing.resourceVersion
        self.items, self.version = items, version
        self.synced, self.error = True, None
        await self._notify()
        return version

    async def _watch(self, version: str) -> str:
        """Apply events from ``version`` on. Returns the last version seen when the connection
        dropped (to re-watch from it); raises ``_Gone`` for a 410."""
        self.watches += 1
        await self._notify()
        events = 0
        stream: AsyncIterator[tuple[str, Any]] = aiter(
            self.client.watch(
                self.resource,
                namespace=self.namespace,
                resource_version=version,
                server_timeout=self.server_timeout_s,
                on_error=on_error_raise,
            )
        )
        try:
            while True:
                try:
                    async with asyncio.timeout(self.server_timeout_s + self.silence_grace_s):
                        kind, obj = await anext(stream)
                except TimeoutError:
                    # Silent for longer than a watch lasts: the connection may be dead without
                    # a reset (lightkube reads watches without a timeout). Re-watch.
                    return self.version
                except StopAsyncIteration:
                    return self.version
                except ApiError as exc:
                    if exc.status.code == _GONE:
                        raise _Gone from None
                    raise
                except httpx2.HTTPStatusError as exc:
                    if exc.response.status_code == _GONE:
                        raise _Gone from None
                    raise
                except (httpx2.ReadError, httpx2.RemoteProtocolError):
                    # Dropped mid-stream: re-watch at once from where we were, unless the
                    # previous watch dropped too without an event (then it is a failure).
                    self._bare_drops = 0 if events else self._bare_drops + 1
                    if self._bare_drops > 1:
                        raise
                    return self.version
                name = obj.metadata.name
                if kind == "DELETED":
                    self.items.pop(name, None)
                else:
                    self.items[name] = self.reduce(obj)
                self.version = obj.metadata.resourceVersion or self.version
                events += 1
                await self._notify()
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
