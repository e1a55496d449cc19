"""Replica counts from the Kubernetes API: how many replicas of a ScaledObject's target run.

KEDA's external-scaler contract never says how many replicas exist, so by default the policy
counts on its own past decisions. With ``depthscale serve --replicas-from kubernetes`` the service
asks a ``ReplicaSource`` once per evaluation instead, and ``KubeReplicaSource`` answers from an
in-memory mirror of the API server kept current by watches (scaler/kube_watch.py), through
lightkube's ``AsyncClient`` (TLS, the bearer token, HTTP/2, connection reuse):

1. ScaledObjects (``keda.sh/v1alpha1``) of each namespace the scaler is asked about, reduced to
   their ``spec.scaleTargetRef`` (``kind`` defaults to Deployment, ``apiVersion`` to apps/v1;
   Deployment and StatefulSet are supported);
2. Deployments or StatefulSets of that namespace (only the kinds its asked-about ScaledObjects
   target), each reduced to ``ready = status.readyReplicas`` and ``warming =
   max(max(spec.replicas, status.replicas) − ready, 0)``: pods that exist but do not serve yet,
   plus pods asked for but not created.

``counts`` reads the mirror: no request per evaluation. The first question about a namespace
waits (at most ``timeout_s``) for its first list. A namespace whose ScaledObjects nobody asked
about for ``idle_s`` is no longer watched, and its mirror is dropped.

Errors never stop the scaler answering and never invent counts: any failure (no in-cluster
configuration, API down or slow, 401, 403, 404, a target kind it cannot read) makes ``counts``
return None, so the policy falls back to its own view. Each kind of failure is logged once (per
ScaledObject for the ones tied to one, once per outage for the API as a whole) with its reason,
and counted in ``depthscale_kube_errors_total{kind}`` once per answer it spoils. A watch that
fails is retried ``backoff_s`` later with a fresh list; until then its mirror answers None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx2
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from prometheus_client import CollectorRegistry, Counter

from scaler.kube_watch import Informer, KubeError, classify
from scaler.service import IDLE_S

__all__ = [
    "ERROR_KINDS",
    "SERVICE_ACCOUNT_DIR",
    "KubeError",
    "KubeReplicaSource",
    "ReplicaCounts",
    "ReplicaSource",
    "TargetRef",
    "parse_counts",
    "parse_target_ref",
]

log = logging.getLogger("depthscale.scaler.kube")

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts the pod's service-account token and the cluster CA."""

ScaledObject = create_namespaced_resource("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects")
_TARGET_KINDS: dict[str, Any] = {"Deployment": Deployment, "StatefulSet": StatefulSet}
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


@dataclass(frozen=True, slots=True)
class TargetRef:
    """A ScaledObject's ``scaleTargetRef``, resolved: the target's kind and name."""

    kind: str
    name: str


def parse_target_ref(scaled_object: Mapping[str, Any]) -> TargetRef:
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
    return TargetRef(kind=kind, name=name)


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


def _ref_of(obj: Any) -> TargetRef | KubeError:
    """A watched ScaledObject (lightkube's generic resource: a dict) → its target, or why not."""
    try:
        return parse_target_ref(obj)
    except KubeError as exc:
        return exc


def _counts_of(obj: Any) -> ReplicaCounts | KubeError:
    """A watched Deployment / StatefulSet (lightkube's model) → its counts, or why not."""
    spec, status = obj.spec, obj.status
    try:
        return parse_counts(
            {
                "spec": {"replicas": spec.replicas if spec is not None else None},
                "status": (
                    {"replicas": status.replicas, "readyReplicas": status.readyReplicas}
                    if status is not None
                    else {}
                ),
            }
        )
    except KubeError as exc:
        return exc


def _hint(kind: str, namespace: str) -> str:
    if kind == "forbidden":
        return (
            f" (RBAC: the scaler's ServiceAccount needs list and watch on "
            f"scaledobjects.keda.sh and on deployments.apps / statefulsets.apps in namespace "
            f"{namespace!r}; docs/scaler.md)"
        )
    if kind == "unauthorized":
        return " (the service-account token was refused: is it mounted and current?)"
    if kind == "config":
        return " (run in a pod with automountServiceAccountToken, or use --replicas-from decisions)"
    return ""


@dataclass
class _Namespace:
    """The watches of one namespace: ScaledObjects, and each target kind asked about."""

    scaled_objects: Informer[TargetRef | KubeError]
    targets: dict[str, Informer[ReplicaCounts | KubeError]]


class KubeReplicaSource:
    """Replica counts from watched objects (see the module docstring).

    base_url:         the API server, ``https://host:port``; None when not configured (every
                      answer is then None, counted as ``config``).
    token:            bearer token; when None it is read from ``token_file``, and read again when
                      the API server answers 401 (the kubelet rotates projected tokens in place).
    ca_file:          PEM bundle the server's certificate must chain to (https only).
    timeout_s:        seconds a ``counts`` call may wait (for a namespace's first list), > 0; also
                      the connect/read timeout of lists.
    idle_s:           seconds after which a ScaledObject nobody asks about is forgotten, and a
                      namespace without any is no longer watched, > 0 (the service's idle expiry).
    backoff_s:        seconds before a failed list or watch is tried again, >= 0.
    server_timeout_s: seconds the API server keeps one watch request open (``timeoutSeconds``)
                      before lightkube opens the next one, >= 1.
    silence_grace_s:  seconds a watch may stay silent beyond ``server_timeout_s`` before it is
                      taken for dead (a connection lost without a reset) and re-opened, > 0.
    clock:            monotonic seconds, for the idle expiry.
    registry:         where ``depthscale_kube_errors_total`` is registered (a fresh one if None).
    """

    def __init__(
        self,
        base_url: str | None,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        ca_file: Path | None = None,
        timeout_s: float = 1.0,
        idle_s: float = IDLE_S,
        backoff_s: float = 10.0,
        server_timeout_s: int = 300,
        silence_grace_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        for name, value in (
            ("timeout_s", timeout_s),
            ("idle_s", idle_s),
            ("silence_grace_s", silence_grace_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value}")
        if backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0 seconds, got {backoff_s}")
        if server_timeout_s < 1:
            raise ValueError(f"server_timeout_s must be >= 1 second, got {server_timeout_s}")
        self.base_url = base_url.rstrip("/") if base_url else None
        self.token = token
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.idle_s = idle_s
        self.backoff_s = backoff_s
        self.server_timeout_s = server_timeout_s
        self.silence_grace_s = silence_grace_s
        self.clock = clock
        self.errors = Counter(
            "depthscale_kube_errors",
            "Failed replica-count reads from the Kubernetes API, by kind.",
            ("kind",),
            registry=registry if registry is not None else CollectorRegistry(),
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind)  # every kind at 0 from the start, so rate() sees the first
        self._client: AsyncClient | None = None
        self._namespaces: dict[str, _Namespace] = {}
        self._asked: dict[tuple[str, str], float] = {}
        self._logged: set[tuple[str, str]] = set()
        self._swept_at = clock()

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
        """The target's replicas, or None when they cannot be known now (logged, counted)."""
        key = (namespace, scaled_object)
        now = self.clock()
        self._asked[key] = now
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await self._lookup(namespace, scaled_object)
        except TimeoutError:
            self._failed(key, KubeError("timeout", f"no answer within {self.timeout_s:g} s"))
            return None
        except KubeError as exc:
            self._failed(key, exc)
            return None
        except Exception as exc:  # never raise to the service
            self._failed(key, classify(exc, "the Kubernetes API"))
            return None
        finally:
            await self._sweep(now)
        self._recovered(key)
        return result

    async def close(self) -> None:
        for space in list(self._namespaces.values()):
            await self._stop(space)
        self._namespaces.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    # --- reading the mirror --------------------------------------------------------------

    async def _lookup(self, namespace: str, name: str) -> ReplicaCounts:
        space = self._namespace(namespace)
        await space.scaled_objects.ready()
        ref = space.scaled_objects.items.get(name)
        if ref is None:
            raise KubeError("not-found", f"ScaledObject {name!r} not found")
        if isinstance(ref, KubeError):
            raise ref
        targets = space.targets.get(ref.kind)
        if targets is None:
            targets = space.targets[ref.kind] = self._informer(
                _TARGET_KINDS[ref.kind], namespace, _counts_of, f"{ref.kind}s in {namespace}"
            )
        await targets.ready()
        counts = targets.items.get(ref.name)
        if counts is None:
            raise KubeError("not-found", f"{ref.kind} {ref.name!r} not found")
        if isinstance(counts, KubeError):
            raise counts
        return counts

    def informer(self, namespace: str, kind: str) -> Informer[Any] | None:
        """The watch of ``kind`` (ScaledObject, Deployment, StatefulSet) in ``namespace``, if
        one runs (for tests and the benchmark)."""
        space = self._namespaces.get(namespace)
        if space is None:
            return None
        return space.scaled_objects if kind == "ScaledObject" else space.targets.get(kind)

    def _namespace(self, namespace: str) -> _Namespace:
        space = self._namespaces.get(namespace)
        if space is None:
            space = _Namespace(
                scaled_objects=self._informer(
                    ScaledObject, namespace, _ref_of, f"ScaledObjects in {namespace}"
                ),
                targets={},
            )
            self._namespaces[namespace] = space
        return space

    def _informer(
        self, resource: Any, namespace: str, reduce: Callable[[Any], Any], what: str
    ) -> Informer[Any]:
        return Informer(
            self._api(),
            resource,
            namespace,
            reduce,
            backoff_s=self.backoff_s,
            server_timeout_s=self.server_timeout_s,
            silence_grace_s=self.silence_grace_s,
            what=what,
        )

    def _api(self) -> AsyncClient:
        """The lightkube client (made at the first read). Raises ``KubeError`` (``config``)."""
        if self._client is not None:
            return self._client
        if self.base_url is None:
            raise KubeError("config", "not in a cluster: KUBERNETES_SERVICE_HOST is not set")
        if self.token is None and self.token_file is None:
            raise KubeError("config", "no service-account token configured")
        if self.token_file is not None and not self.token_file.is_file():
            raise KubeError("config", f"no service-account token at {self.token_file}")
        config = KubeConfig.from_one(
            cluster=Cluster(
                server=self.base_url,
                certificate_auth=str(self.ca_file) if self.ca_file is not None else None,
            ),
            user=User(
                token=self.token,
                token_file=str(self.token_file) if self.token_file is not None else None,
            ),
        )
        try:
            self._client = AsyncClient(
                config, timeout=httpx2.Timeout(self.timeout_s), trust_env=False, http2=True
            )
        except Exception as exc:
            raise KubeError("config", f"cluster CA {self.ca_file}: {exc}") from None
        return self._client

    # --- housekeeping --------------------------------------------------------------------

    async def _sweep(self, now: float) -> None:
        """At most every ``idle_s / 4``: forget ScaledObjects nobody asked about for
        ``idle_s``, and stop watching namespaces left without any."""
        if 0 <= now - self._swept_at < self.idle_s / 4:
            return
        self._swept_at = now
        for key in [k for k, at in self._asked.items() if not 0 <= now - at < self.idle_s]:
            del self._asked[key]
        live = {namespace for namespace, _ in self._asked}
        for namespace in [n for n in self._namespaces if n not in live]:
            await self._stop(self._namespaces.pop(namespace))

    async def _stop(self, space: _Namespace) -> None:
        await space.scaled_objects.close()
        for informer in space.targets.values():
            await informer.close()

    # --- failures ------------------------------------------------------------------------

    def _failed(self, key: tuple[str, str], exc: KubeError) -> None:
        namespace, name = key
        self.errors.labels(exc.kind).inc()
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
