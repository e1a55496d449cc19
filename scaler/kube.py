"""Replica counts from the Kubernetes API: how many replicas of a ScaledObject's target run.

KEDA's external-scaler contract never says how many replicas exist, so by default the policy
counts on its own past decisions. With ``depthscale serve --replicas-from kubernetes`` the service
asks a ``ReplicaSource`` once per evaluation instead, and ``KubeReplicaSource`` answers from the
API server with two reads:

1. ``GET /apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/{name}`` → ``spec.scaleTargetRef``
   (``kind`` defaults to Deployment, ``apiVersion`` to apps/v1; Deployment and StatefulSet are
   supported). Cached for ``ref_ttl_s``: it rarely changes.
2. ``GET /apis/apps/v1/namespaces/{ns}/{deployments|statefulsets}/{target}`` →
   ``ready = status.readyReplicas`` and ``warming = max(max(spec.replicas, status.replicas) −
   ready, 0)``: pods that exist but do not serve yet, plus pods asked for but not created.
   Cached for ``counts_ttl_s`` (the service's evaluation interval).

Errors never stop the scaler answering and never invent counts: any failure (no in-cluster
configuration, API down or slow, 401, 403, 404, a target kind it cannot read) makes ``counts``
return None, so the policy falls back to its own view. Each kind of failure is logged once (per
ScaledObject for the ones tied to one, once per outage for the API as a whole) with its reason,
counted in ``depthscale_kube_errors_total{kind}``, and a failure is remembered for
``counts_ttl_s``; after the API is unreachable or slow no call is made for ``backoff_s``, so an
outage costs one timeout per interval, not one per ScaledObject.

The HTTP client is the standard library's, in a small thread pool of its own, each worker
keeping its connection alive (a TLS handshake per GET would cost more than the GET): one GET per
ScaledObject per interval needs no client library.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger("depthscale.scaler.kube")

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts the pod's service-account token and the cluster CA."""

SCALED_OBJECTS = "/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/{name}"
_TARGET_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
_TARGET_API_VERSION = "apps/v1"

ERROR_KINDS = (
    "config",
    "unavailable",
    "timeout",
    "unauthorized",
    "forbidden",
    "not-found",
    "unsupported-target",
    "bad-response",
)
"""Values of the ``kind`` label of ``depthscale_kube_errors_total``."""

_API_WIDE = frozenset({"config", "unavailable", "timeout", "unauthorized"})
"""Kinds that concern the API as a whole (logged once per outage), not one ScaledObject."""
_BACK_OFF = frozenset({"unavailable", "timeout"})
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True, slots=True)
class ReplicaCounts:
    """ready:   replicas serving now (the target's ``status.readyReplicas``), >= 0.
    warming: replicas that exist or were asked for but do not serve yet, >= 0."""

    ready: int
    warming: int


class ReplicaSource(Protocol):
    """Where the service learns how many replicas a ScaledObject's target has. ``counts``
    returns None when it does not know; it never raises."""

    async def counts(self, namespace: str, scaled_object: str) -> ReplicaCounts | None: ...

    async def close(self) -> None: ...


class KubeError(Exception):
    """One failed read; ``kind`` is one of ``ERROR_KINDS``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class TargetRef:
    """A ScaledObject's ``scaleTargetRef``, resolved: kind and name, and the API path to read."""

    kind: str
    name: str
    path: str


def parse_target_ref(namespace: str, scaled_object: Mapping[str, Any]) -> TargetRef:
    """``spec.scaleTargetRef`` of a ScaledObject → the target to read. Raises ``KubeError``
    (``bad-response`` without a name, ``unsupported-target`` for other kinds)."""
    spec = scaled_object.get("spec")
    ref = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not isinstance(ref, Mapping) or not isinstance(name, str) or not name:
        raise KubeError("bad-response", "the ScaledObject has no spec.scaleTargetRef.name")
    kind = ref.get("kind") or "Deployment"
    api_version = ref.get("apiVersion") or _TARGET_API_VERSION
    if kind not in _TARGET_KINDS or api_version != _TARGET_API_VERSION:
        raise KubeError(
            "unsupported-target",
            f"scaleTargetRef {api_version} {kind} {name!r}: only apps/v1 Deployment and "
            "StatefulSet targets are read",
        )
    path = f"/apis/apps/v1/namespaces/{quote(namespace)}/{_TARGET_KINDS[kind]}/{quote(name)}"
    return TargetRef(kind=kind, name=name, path=path)


def parse_counts(workload: Mapping[str, Any]) -> ReplicaCounts:
    """A Deployment's or StatefulSet's ``spec``/``status`` → ready and warming replicas.

    ``status.readyReplicas`` (missing = 0) serve; the rest of ``status.replicas`` (pods that exist)
    and of ``spec.replicas`` beyond it (pods asked for, not created yet) are warming."""

    def count(section: str, key: str, default: int) -> int:
        part = workload.get(section)
        value = part.get(key, default) if isinstance(part, Mapping) else default
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise KubeError("bad-response", f"{section}.{key} is {value!r}, not a count")
        return value

    existing = count("status", "replicas", 0)
    ready = count("status", "readyReplicas", 0)
    wanted = count("spec", "replicas", existing)
    return ReplicaCounts(ready=ready, warming=max(max(wanted, existing) - ready, 0))


def _hint(kind: str, namespace: str) -> str:
    if kind == "forbidden":
        return (
            f" (RBAC: the scaler's ServiceAccount needs get on scaledobjects.keda.sh and on "
            f"deployments.apps / statefulsets.apps in namespace {namespace!r}; docs/scaler.md)"
        )
    if kind == "unauthorized":
        return " (the service-account token was refused: is it mounted and current?)"
    if kind == "config":
        return " (run in a pod with automountServiceAccountToken, or use --replicas-from decisions)"
    return ""


class KubeReplicaSource:
    """Replica counts read from the API server (see the module docstring).

    base_url:     the API server, ``https://host:port``; None when not configured (every call
                  then fails as ``config``).
    token:        bearer token; when None it is read from ``token_file`` at each request (the
                  kubelet rotates projected tokens in place).
    ca_file:      PEM bundle the server's certificate must chain to (https only).
    timeout_s:    seconds both reads of one ScaledObject may take together, > 0.
    counts_ttl_s: seconds a result (or a failure) answers again, > 0; the service's interval.
    ref_ttl_s:    seconds a ScaledObject's scaleTargetRef is reused, > 0.
    backoff_s:    seconds without any call after the API was unreachable or timed out, >= 0.
    clock:        monotonic seconds, for the caches.
    workers:      threads (each with its kept-alive connection) making requests, >= 1.
    registry:     where ``depthscale_kube_errors_total`` is registered (a fresh one if None).
    """

    def __init__(
        self,
        base_url: str | None,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        ca_file: Path | None = None,
        timeout_s: float = 1.0,
        counts_ttl_s: float = 5.0,
        ref_ttl_s: float = 300.0,
        backoff_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        workers: int = 4,
        registry: CollectorRegistry | None = None,
    ) -> None:
        for name, value in (
            ("timeout_s", timeout_s),
            ("counts_ttl_s", counts_ttl_s),
            ("ref_ttl_s", ref_ttl_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0 seconds, got {backoff_s}")
        self.base_url = base_url.rstrip("/") if base_url else None
        self.token = token
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.counts_ttl_s = counts_ttl_s
        self.ref_ttl_s = ref_ttl_s
        self.backoff_s = backoff_s
        self.clock = clock
        self.errors = Counter(
            "depthscale_kube_errors",
            "Failed replica-count reads from the Kubernetes API, by kind.",
            ("kind",),
            registry=registry if registry is not None else CollectorRegistry(),
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind)  # every kind at 0 from the start, so rate() sees the first
        self.requests = 0
        """API requests made (for tests and the curious)."""
        self._ssl: ssl.SSLContext | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="depthscale-kube"
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        self._refs: dict[tuple[str, str], tuple[TargetRef, float]] = {}
        self._counts: dict[tuple[str, str], tuple[ReplicaCounts | None, float]] = {}
        self._fetching: dict[tuple[str, str], asyncio.Task[ReplicaCounts | None]] = {}
        self._down_until = -float("inf")
        self._logged: set[tuple[str, str]] = set()
        self._pruned_at = clock()

    @classmethod
    def in_cluster(
        cls,
        env: Mapping[str, str] | None = None,
        account_dir: Path = SERVICE_ACCOUNT_DIR,
        **options: Any,
    ) -> KubeReplicaSource:
        """The pod's own API access: ``KUBERNETES_SERVICE_HOST``/``_PORT`` and the mounted
        service-account token and CA. Missing pieces surface as ``config`` errors at the first
        read (logged once), never as an exception here."""
        env = os.environ if env is None else env
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"  # IPv6 literal
        base_url = f"https://{host}:{port}" if host else None
        return cls(
            base_url,
            token_file=account_dir / "token",
            ca_file=account_dir / "ca.crt",
            **options,
        )

    # --- the ReplicaSource protocol ------------------------------------------------------

    async def counts(self, namespace: str, scaled_object: str) -> ReplicaCounts | None:
        """The target's replicas, or None when they cannot be read now (logged, counted)."""
        key = (namespace, scaled_object)
        now = self.clock()
        cached = self._counts.get(key)
        if cached is not None and 0 <= now - cached[1] < self.counts_ttl_s:
            return cached[0]
        if now < self._down_until:
            return None
        running = self._fetching.get(key)
        if running is None:
            running = asyncio.create_task(self._fetch(key))
            self._fetching[key] = running
            running.add_done_callback(lambda t: self._settle(key, t))
        return await asyncio.shield(running)

    async def close(self) -> None:
        for task in list(self._fetching.values()):
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    # --- reading -------------------------------------------------------------------------

    def _settle(self, key: tuple[str, str], task: asyncio.Task[ReplicaCounts | None]) -> None:
        if self._fetching.get(key) is task:
            del self._fetching[key]

    async def _fetch(self, key: tuple[str, str]) -> ReplicaCounts | None:
        namespace, name = key
        started = self.clock()  # the result's age counts from the request, as the service's
        result: ReplicaCounts | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await self._read(namespace, name)
        except TimeoutError:
            self._failed(key, KubeError("timeout", f"no answer within {self.timeout_s:g} s"))
        except KubeError as exc:
            self._failed(key, exc)
        else:
            self._recovered(key)
        self._counts[key] = (result, started)
        self._prune(started)
        return result

    async def _read(self, namespace: str, name: str) -> ReplicaCounts:
        key = (namespace, name)
        cached = self._refs.get(key)
        if cached is not None and 0 <= self.clock() - cached[1] < self.ref_ttl_s:
            ref = cached[0]
        else:
            path = SCALED_OBJECTS.format(namespace=quote(namespace), name=quote(name))
            ref = parse_target_ref(namespace, await self._get(path, f"ScaledObject {name!r}"))
            self._refs[key] = (ref, self.clock())
        try:
            workload = await self._get(ref.path, f"{ref.kind} {ref.name!r}")
        except KubeError as exc:
            if exc.kind == "not-found":
                self._refs.pop(key, None)  # the target may have been renamed: read the ref again
            raise
        return parse_counts(workload)

    async def _get(self, path: str, what: str) -> Mapping[str, Any]:
        loop = asyncio.get_running_loop()
        self.requests += 1
        return await loop.run_in_executor(self._executor, self._get_blocking, path, what)

    def _get_blocking(self, path: str, what: str) -> Mapping[str, Any]:
        """One GET, in a worker thread, on that thread's kept-alive connection. Raises
        ``KubeError``."""
        if self.base_url is None:
            raise KubeError("config", "not in a cluster: KUBERNETES_SERVICE_HOST is not set")
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        for attempt in range(2):
            connection = self._connection()
            reused = connection.sock is not None
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                break
            except TimeoutError:
                connection.close()
                raise KubeError("timeout", f"no answer within {self.timeout_s:g} s") from None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if reused and attempt == 0 and isinstance(exc, _STALE):
                    continue  # the server closed an idle kept-alive connection: once more
                raise KubeError("unavailable", f"{self.base_url}: {exc}") from None
        if response.status >= 400:
            raise _http_error(response.status, response.reason, body, what)
        try:
            data = json.loads(body)
        except ValueError:
            raise KubeError("bad-response", f"{what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise KubeError("bad-response", f"{what}: the answer is not a JSON object")
        return data

    def _connection(self) -> http.client.HTTPConnection:
        """This worker thread's connection to the API server (opened on first use)."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            assert self.base_url is not None
            url = urlsplit(self.base_url)
            host = url.hostname or ""
            if url.scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, url.port or 443, timeout=self.timeout_s, context=self._context()
                )
            else:
                connection = http.client.HTTPConnection(
                    host, url.port or 80, timeout=self.timeout_s
                )
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _token(self) -> str:
        if self.token is not None:
            return self.token
        if self.token_file is None:
            raise KubeError("config", "no service-account token configured")
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise KubeError(
                "config", f"no service-account token at {self.token_file}: {exc.strerror}"
            ) from None

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                self._ssl = ssl.create_default_context(
                    cafile=str(self.ca_file) if self.ca_file is not None else None
                )
            except (OSError, ssl.SSLError) as exc:
                raise KubeError("config", f"cluster CA {self.ca_file}: {exc}") from None
        return self._ssl

    # --- failures ------------------------------------------------------------------------

    def _failed(self, key: tuple[str, str], exc: KubeError) -> None:
        namespace, name = key
        self.errors.labels(exc.kind).inc()
        if exc.kind in _BACK_OFF:
            self._down_until = self.clock() + self.backoff_s
        scope = "" if exc.kind in _API_WIDE else f"{namespace}/{name}"
        if (exc.kind, scope) in self._logged:
            return
        self._logged.add((exc.kind, scope))
        log.warning(
            "replica counts for %s/%s from the Kubernetes API failed (%s): %s%s; the policy "
            "counts on its own decisions until it works",
            namespace,
            name,
            exc.kind,
            exc,
            _hint(exc.kind, namespace),
            extra={
                "fields": {
                    "event": "kube-error",
                    "kind": exc.kind,
                    "namespace": namespace,
                    "scaled_object": name,
                }
            },
        )

    def _recovered(self, key: tuple[str, str]) -> None:
        if not self._logged:
            return
        namespace, name = key
        scope = f"{namespace}/{name}"
        mine = {k for k in self._logged if k[1] in ("", scope)}
        if mine:
            self._logged -= mine
            log.info(
                "replica counts for %s/%s from the Kubernetes API again",
                namespace,
                name,
                extra={
                    "fields": {
                        "event": "kube-recovered",
                        "namespace": namespace,
                        "scaled_object": name,
                    }
                },
            )

    def _prune(self, now: float) -> None:
        """Forget entries of ScaledObjects no longer asked about (at most once per ref_ttl_s)."""
        if now - self._pruned_at < self.ref_ttl_s:
            return
        self._pruned_at = now
        for key in [k for k, (_, at) in self._counts.items() if now - at >= self.counts_ttl_s]:
            del self._counts[key]
        for key in [k for k, (_, at) in self._refs.items() if now - at >= self.ref_ttl_s]:
            del self._refs[key]


def _http_error(status: int, reason: str, body: bytes, what: str) -> KubeError:
    """An API status → a ``KubeError`` carrying the server's own message (a Status object)."""
    try:
        message = str(json.loads(body).get("message", "")) or reason
    except (ValueError, AttributeError):
        message = reason
    message = f"{what}: HTTP {status}: {message}"[:400]
    kind = {401: "unauthorized", 403: "forbidden", 404: "not-found"}.get(status, "unavailable")
    return KubeError(kind, message)
