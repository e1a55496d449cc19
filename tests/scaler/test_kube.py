"""Replica counts from the Kubernetes API, against a real HTTP server on loopback playing the API
server: it lists ScaledObjects and their Deployment/StatefulSet targets as JSON and streams watch
events (chunked JSON lines), answers 410 Gone to a watch whose version it no longer keeps, and
can drop a watch's connection mid-stream. Then wired into the service: a restarted scaler that
sees the replicas running does not cut them.

Nothing here waits on wall time: a test that needs the scaler to have applied an event waits
(bounded) on the watch's own condition for that event's resourceVersion. Idle expiry is
narrated with a hand-driven clock.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import CollectorRegistry

from policies.types import Reason
from scaler.kube import KubeError, KubeReplicaSource, ReplicaCounts, parse_counts
from scaler.ports import Depth
from scaler.service import ScalerService
from tests.conftest import free_port, require_binary
from tests.scaler.fakes import Clock, FakeBroker, FakeStore

T = TypeVar("T")

NS = "models"
SOS = f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects"
DEPLOYS = f"/apis/apps/v1/namespaces/{NS}/deployments"
STSS = f"/apis/apps/v1/namespaces/{NS}/statefulsets"


def scaled_object(name: str = "llama-8b", target: str = "llama-8b-vllm", **ref: str) -> Any:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"scaleTargetRef": {"name": target, **ref}},
    }


def workload(
    spec_replicas: int | None,
    replicas: int | None,
    ready: int | None,
    name: str = "llama-8b-vllm",
    kind: str = "Deployment",
) -> dict[str, Any]:
    status = {k: v for k, v in (("replicas", replicas), ("readyReplicas", ready)) if v is not None}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
    }
    if spec_replicas is not None:
        spec["replicas"] = spec_replicas
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
        "status": status,
    }


def statefulset(spec_replicas: int, replicas: int, ready: int | None) -> dict[str, Any]:
    return workload(spec_replicas, replicas, ready, kind="StatefulSet")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def forbidden(resource: str, group: str) -> dict[str, Any]:
    return status(
        403,
        "Forbidden",
        f"{resource}.{group} is forbidden: User "
        '"system:serviceaccount:depthscale:depthscale-scaler" cannot list resource '
        f'"{resource}" in API group "{group}" in the namespace "{NS}"',
    )


@dataclass
class FakeApi:
    """Collections (path → name → object) with one resourceVersion counter, the events that
    changed them, and the requests seen (path with query, Authorization)."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 1
    events: list[tuple[int, str, str, Any]] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)
    tokens: set[str] | None = None  # bearer tokens accepted; None: any
    fail: dict[str, tuple[int, Any]] = field(default_factory=dict)  # collection → answer
    hold: bool = False  # take each request and answer only once `release` is set
    release: threading.Event = field(default_factory=threading.Event)
    compacted: int = 0  # watches from a version below this are answered 410 Gone
    expiries: int = 0  # bumped to end every open watch with 410 Gone
    drops: int = 0  # bumped to drop every open watch's connection mid-stream
    watching: dict[str, int] = field(default_factory=dict)  # collection → open watches
    stopping: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def put(self, collection: str, obj: Any) -> str:
        """Create or replace an object; returns its new resourceVersion."""
        with self.changed:
            self.version += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.version)
            items = self.objects.setdefault(collection, {})
            kind = "MODIFIED" if obj["metadata"]["name"] in items else "ADDED"
            items[obj["metadata"]["name"]] = obj
            self.events.append((self.version, collection, kind, obj))
            self.changed.notify_all()
            return str(self.version)

    def delete(self, collection: str, name: str) -> str:
        with self.changed:
            self.version += 1
            obj = self.objects[collection].pop(name)
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.version)}}
            self.events.append((self.version, collection, "DELETED", obj))
            self.changed.notify_all()
            return str(self.version)

    def expire(self) -> None:
        """The server keeps no version up to now: open watches end with 410, as do re-watches."""
        with self.changed:
            self.compacted = self.version
            self.expiries += 1
            self.changed.notify_all()

    def wait_watching(self, collection: str, timeout_s: float = 10.0) -> None:
        """Return once a watch of ``collection`` is open on the server (a drop reaches it)."""
        with self.changed:
            assert self.changed.wait_for(lambda: self.watching.get(collection, 0) > 0, timeout_s)

    def drop(self) -> None:
        """Every open watch's connection is cut mid-stream."""
        with self.changed:
            self.drops += 1
            self.changed.notify_all()

    def requests(self, collection: str, *, watch: bool) -> list[dict[str, list[str]]]:
        """The query of each list (or watch) of a collection seen so far."""
        found = []
        for path, _ in self.seen:
            url = urlsplit(path)
            query = parse_qs(url.query)
            if url.path == collection and ("watch" in query) == watch:
                found.append(query)
        return found


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the API server

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            api.seen.append((self.path, auth))
            if api.hold:
                api.release.wait(timeout=30)
            if api.tokens is not None and auth.removeprefix("Bearer ") not in api.tokens:
                return self.answer(401, status(401, "Unauthorized", "Unauthorized"))
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path in api.fail:
                return self.answer(*api.fail[url.path])
            if "watch" in query:
                return self.watch(url.path, int(query.get("resourceVersion", ["0"])[0]))
            with api.changed:
                items = list(api.objects.get(url.path, {}).values())
                listing = {
                    "kind": "List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(api.version)},
                    "items": items,
                }
            return self.answer(200, listing)

        def answer(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def chunk(self, event: Any) -> None:
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        def watch(self, collection: str, since: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with api.changed:
                drops, expiries = api.drops, api.expiries
                api.watching[collection] = api.watching.get(collection, 0) + 1
                api.changed.notify_all()
            try:
                self._stream(collection, since, drops, expiries)
            finally:
                with api.changed:
                    api.watching[collection] -= 1

        def _stream(self, collection: str, since: int, drops: int, expiries: int) -> None:
            while True:
                with api.changed:
                    api.changed.wait_for(
                        lambda since=since: (
                            api.stopping  # type: ignore[misc]
                            or api.drops != drops
                            or api.expiries != expiries
                            or since < api.compacted
                            or any(v > since and c == collection for v, c, _, _ in api.events)
                        )
                    )
                    if api.drops != drops:
                        self.connection.shutdown(socket.SHUT_RDWR)  # no last chunk
                        self.close_connection = True
                        return
                    if since < api.compacted or api.expiries != expiries:
                        gone = status(410, "Expired", f"too old resource version: {since}")
                        pending = [{"type": "ERROR", "object": gone}]
                        end = True
                    else:
                        pending = [
                            {"type": kind, "object": obj}
                            for v, c, kind, obj in api.events
                            if v > since and c == collection
                        ]
                        since = api.version
                        end = api.stopping
                for event in pending:
                    self.chunk(event)
                if end:
                    self.wfile.write(b"0\r\n\r\n")
                    return

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _serve(api: FakeApi, wrap: Any = None) -> Iterator[FakeApi]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    scheme = "http"
    if wrap is not None:
        server.socket = wrap(server.socket)
        scheme = "https"
    api.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.release.set()  # a held request answers, so the server can stop
        with api.changed:
            api.stopping = True
            api.changed.notify_all()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def cluster() -> FakeApi:
    """One ScaledObject targeting a Deployment with 6 of 6 replicas ready."""
    api = FakeApi()
    api.put(SOS, scaled_object())
    api.put(DEPLOYS, workload(6, 6, 6))
    return api


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from _serve(cluster())


def source(api: FakeApi, clock: Clock | None = None, **options: Any) -> KubeReplicaSource:
    options.setdefault("timeout_s", 5.0)
    return KubeReplicaSource(api.url, token="sa-token", clock=clock or Clock(), **options)


def run(src: KubeReplicaSource, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` and close the source, whatever happens."""

    async def main() -> T:
        try:
            async with asyncio.timeout(30):  # a broken test fails, it does not hang
                return await body()
        finally:
            await src.close()

    return asyncio.run(main())


def counts(src: KubeReplicaSource, namespace: str = NS) -> ReplicaCounts | None:
    return run(src, lambda: src.counts(namespace, "llama-8b"))


async def applied(src: KubeReplicaSource, kind: str, version: str) -> None:
    """Wait until the watch of ``kind`` in NS has applied the event at ``version``."""
    informer = src.informer(NS, kind)
    assert informer is not None, f"no watch of {kind}"
    await informer.wait_for(lambda i: int(i.version or 0) >= int(version))


def errors(src: KubeReplicaSource, kind: str) -> float:
    """``depthscale_kube_errors_total{kind}`` as Prometheus would scrape it."""
    [metric] = src.errors.collect()
    return next(
        s.value for s in metric.samples if s.name.endswith("_total") and s.labels["kind"] == kind
    )


# ---- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "replicas", "ready", "expected"),
    [
        pytest.param(6, 6, 6, ReplicaCounts(6, 0), id="all-ready"),
        pytest.param(6, 6, 4, ReplicaCounts(4, 2), id="two-loading"),
        pytest.param(8, 6, 4, ReplicaCounts(4, 4), id="two-not-created-yet"),
        pytest.param(4, 6, 6, ReplicaCounts(6, 0), id="scaling-down"),
        pytest.param(3, 3, None, ReplicaCounts(0, 3), id="no-readyReplicas-means-0"),
        pytest.param(2, None, None, ReplicaCounts(0, 2), id="no-status-yet"),
        pytest.param(None, 2, 1, ReplicaCounts(1, 1), id="no-spec-replicas"),
        pytest.param(0, 0, None, ReplicaCounts(0, 0), id="scaled-to-zero"),
    ],
)
def test_counts_from_spec_and_status(
    spec: int | None, replicas: int | None, ready: int | None, expected: ReplicaCounts
) -> None:
    assert parse_counts(workload(spec, replicas, ready)) == expected


@pytest.mark.parametrize("bad", [-1, "3", 2.5, True])
def test_a_count_that_is_not_a_count_is_a_bad_response(bad: Any) -> None:
    with pytest.raises(KubeError) as caught:
        parse_counts({"status": {"readyReplicas": bad}})
    assert caught.value.kind == "bad-response"


# ---- lists and watches ---------------------------------------------------------------------


def test_counts_come_from_a_list_then_a_watch_of_each_collection(api: FakeApi) -> None:
    api.put(DEPLOYS, workload(8, 6, 4))
    src = source(api)

    async def main() -> ReplicaCounts | None:
        found = await src.counts(NS, "llama-8b")
        listed_at = str(api.version)
        # Both watches run: an event on each arrives.
        await applied(src, "ScaledObject", api.put(SOS, scaled_object()))
        await applied(src, "Deployment", api.put(DEPLOYS, workload(8, 6, 4)))
        for collection in (SOS, DEPLOYS):
            [listed] = api.requests(collection, watch=False)
            assert "resourceVersion" not in listed  # the current state
            [watched] = api.requests(collection, watch=True)
            assert watched["resourceVersion"] == [listed_at], "the watch starts at the list"
        return found

    assert run(src, main) == ReplicaCounts(ready=4, warming=4)
    assert api.requests(STSS, watch=False) == [], "no StatefulSet is a target: not watched"
    assert {auth for _, auth in api.seen} == {"Bearer sa-token"}


def test_counts_follow_events_without_a_request_per_evaluation(api: FakeApi) -> None:
    src = source(api)

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        for _ in range(100):  # a hundred evaluations: answered from memory
            assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        # The HPA scales up: the Deployment's status changes, the watch brings it.
        for ready in (6, 7):
            version = api.put(DEPLOYS, workload(8, 8, ready))
            await applied(src, "Deployment", version)
            assert await src.counts(NS, "llama-8b") == ReplicaCounts(ready, 8 - ready)

    run(src, main)
    # A list and a watch of each collection, nothing per evaluation.
    assert len(api.seen) == 4
    for collection in (SOS, DEPLOYS):
        assert len(api.requests(collection, watch=False)) == 1
        assert len(api.requests(collection, watch=True)) == 1


def test_statefulset_targets_are_watched_as_statefulsets(api: FakeApi) -> None:
    api.put(SOS, scaled_object(kind="StatefulSet", apiVersion="apps/v1"))
    api.put(STSS, statefulset(2, 2, None))
    assert counts(source(api)) == ReplicaCounts(ready=0, warming=2)
    assert len(api.requests(STSS, watch=True)) == 1
    assert api.requests(DEPLOYS, watch=False) == []


def test_a_retargeted_scaled_object_is_followed(api: FakeApi) -> None:
    src = source(api)

    async def main() -> list[ReplicaCounts | None]:
        seen = [await src.counts(NS, "llama-8b")]
        # The ScaledObject now points at a StatefulSet; the old Deployment goes away.
        api.put(STSS, statefulset(2, 2, 2))
        await applied(src, "ScaledObject", api.put(SOS, scaled_object(kind="StatefulSet")))
        await applied(src, "Deployment", api.delete(DEPLOYS, "llama-8b-vllm"))
        seen.append(await src.counts(NS, "llama-8b"))
        # Deleted too: unknown, not the last count.
        await applied(src, "ScaledObject", api.delete(SOS, "llama-8b"))
        seen.append(await src.counts(NS, "llama-8b"))
        return seen

    assert run(src, main) == [ReplicaCounts(6, 0), ReplicaCounts(2, 0), None]
    assert errors(src, "not-found") == 1


def test_a_410_gone_lists_again_and_forgets_what_was_deleted_meanwhile(api: FakeApi) -> None:
    api.put(SOS, scaled_object("other", "other-vllm"))
    api.put(DEPLOYS, workload(1, 1, 1, name="other-vllm"))
    src = source(api)

    async def main() -> None:
        assert await src.counts(NS, "other") == ReplicaCounts(1, 0)
        deployments = src.informer(NS, "Deployment")
        assert deployments is not None
        # The server compacts its history while the watch is open, and the Deployment is
        # deleted in the same breath: the watch ends with 410 Gone, and a fresh list no longer
        # holds the deleted Deployment.
        with api.changed:
            api.objects[DEPLOYS].pop("other-vllm")
            api.version += 1
        api.expire()
        await deployments.wait_for(lambda i: i.lists == 2 and i.synced)
        assert await src.counts(NS, "other") is None
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        # And it watches on from the new list.
        await applied(src, "Deployment", api.put(DEPLOYS, workload(6, 6, 5)))
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(5, 1)

    run(src, main)
    assert len(api.requests(DEPLOYS, watch=False)) == 2
    assert errors(src, "unavailable") == 0


def test_a_dropped_watch_is_resumed_from_its_last_version(api: FakeApi) -> None:
    src = source(api, backoff_s=60.0)  # a failure would stall the test, not retry

    async def main() -> str:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        last = api.put(DEPLOYS, workload(6, 6, 5))
        await applied(src, "Deployment", last)
        api.drop()  # every watch connection cut mid-stream
        version = api.put(DEPLOYS, workload(6, 6, 4))
        await applied(src, "Deployment", version)
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(4, 2)
        return last

    last = run(src, main)
    watches = api.requests(DEPLOYS, watch=True)
    assert len(watches) == 2
    assert watches[1]["resourceVersion"] == [last], "re-watched from where it was, no list"
    assert len(api.requests(DEPLOYS, watch=False)) == 1


def test_a_silent_watch_is_taken_for_dead_and_reopened(api: FakeApi) -> None:
    # The fake never ends a watch and sends nothing more: as a connection lost without a reset
    # looks. Silent for longer than a watch lasts (timeoutSeconds + grace), it is re-opened.
    src = source(api, server_timeout_s=1, silence_grace_s=0.2)

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        deployments = src.informer(NS, "Deployment")
        assert deployments is not None
        await deployments.wait_for(lambda i: i.watches >= 2)
        await applied(src, "Deployment", api.put(DEPLOYS, workload(6, 6, 2)))
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(2, 4)

    run(src, main)
    watches = api.requests(DEPLOYS, watch=True)
    assert watches[0]["timeoutSeconds"] == ["1"]
    assert watches[1]["resourceVersion"] == watches[0]["resourceVersion"], "from where it was"
    assert len(api.requests(DEPLOYS, watch=False)) == 1, "no list needed"


def test_concurrent_first_questions_share_one_list(api: FakeApi) -> None:
    src = source(api)

    async def main() -> list[ReplicaCounts | None]:
        return list(await asyncio.gather(*(src.counts(NS, "llama-8b") for _ in range(10))))

    assert run(src, main) == [ReplicaCounts(6, 0)] * 10
    assert len(api.requests(SOS, watch=False)) == len(api.requests(DEPLOYS, watch=False)) == 1


def test_namespaces_nobody_asks_about_are_no_longer_watched(api: FakeApi) -> None:
    clock = Clock()
    src = source(api, clock, idle_s=600.0)

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        clock.advance(601.0)  # ten minutes without a question about NS
        assert await src.counts("elsewhere", "x") is None  # not-found there
        assert src.informer(NS, "ScaledObject") is None, "NS's watches stopped, mirror dropped"
        assert src.informer("elsewhere", "ScaledObject") is not None

    run(src, main)


# ---- failures ------------------------------------------------------------------------------


def test_other_target_kinds_are_unknown_not_guessed(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.put(SOS, scaled_object(kind="Rollout", apiVersion="argoproj.io/v1alpha1"))
    src = source(api)
    assert counts(src) is None
    assert errors(src, "unsupported-target") == 1
    assert "only apps/v1 Deployment and StatefulSet" in caplog.text


def test_forbidden_means_unknown_with_an_rbac_hint_logged_once(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail[SOS] = (403, forbidden("scaledobjects", "keda.sh"))
    src = source(api, backoff_s=60.0)

    async def main() -> list[ReplicaCounts | None]:
        return [await src.counts(NS, "llama-8b") for _ in range(3)]  # three evaluations

    with caplog.at_level(logging.WARNING, logger="depthscale.scaler.kube"):
        assert run(src, main) == [None, None, None]
    assert errors(src, "forbidden") == 3, "counted per answer it spoils"
    [record] = caplog.records
    message = record.getMessage()
    assert "HTTP 403" in message
    assert 'cannot list resource "scaledobjects"' in message  # the API server's own reason
    assert "RBAC" in message
    assert "list and watch" in message
    assert "deployments.apps" in message


def test_api_down_means_unknown_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    src = KubeReplicaSource(f"http://127.0.0.1:{free_port()}", token="t", backoff_s=60.0)

    async def main() -> list[ReplicaCounts | None]:
        return [await src.counts(NS, name) for name in ("llama-8b", "other", "llama-8b")]

    with caplog.at_level(logging.WARNING, logger="depthscale.scaler.kube"):
        assert run(src, main) == [None, None, None]
    assert errors(src, "unavailable") == 3
    assert len(caplog.records) == 1, "one outage, one log line"
    assert "(unavailable)" in caplog.records[0].getMessage()


def test_a_slow_api_times_out_as_unknown(api: FakeApi) -> None:
    api.hold = True  # the API server takes the request and does not answer until released
    src = source(api, timeout_s=0.2)
    assert counts(src) is None
    assert errors(src, "timeout") == 1
    api.release.set()


def test_a_failed_watch_answers_none_until_a_fresh_list_succeeds(api: FakeApi) -> None:
    src = source(api, backoff_s=0.0)

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        deployments = src.informer(NS, "Deployment")
        assert deployments is not None
        await asyncio.to_thread(api.wait_watching, DEPLOYS)
        api.fail[DEPLOYS] = (500, status(500, "InternalError", "etcd is sad"))
        api.drop()  # the watch is cut; re-watching fails with 500
        await deployments.wait_for(lambda i: i.error is not None)
        assert await src.counts(NS, "llama-8b") is None
        del api.fail[DEPLOYS]
        await deployments.wait_for(lambda i: i.synced)
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)

    run(src, main)
    assert errors(src, "unavailable") >= 1


def test_recovery_is_logged_and_a_later_failure_logged_again(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    src = source(api)

    async def main() -> None:
        # The ScaledObject points nowhere readable, then at its Deployment, then nowhere again.
        api.put(SOS, scaled_object(kind="Rollout"))
        await src.counts(NS, "llama-8b")
        for answer in (scaled_object(), scaled_object(kind="Job")):
            await applied(src, "ScaledObject", api.put(SOS, answer))
            await src.counts(NS, "llama-8b")

    with caplog.at_level(logging.INFO, logger="depthscale.scaler.kube"):
        run(src, main)
    events = [r.fields["event"] for r in caplog.records]  # type: ignore[attr-defined]
    assert events == ["kube-error", "kube-recovered", "kube-error"]


def test_a_rotated_token_is_read_again_when_the_old_one_is_refused(
    api: FakeApi, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    api.tokens = {"first"}
    src = KubeReplicaSource(api.url, token_file=token, timeout_s=5.0)

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        # The kubelet refreshes the projected token in place; the server stops taking the old.
        token.write_text("rotated\n")
        api.tokens = {"rotated"}
        api.drop()  # the next requests (re-watches) carry the token
        await applied(src, "Deployment", api.put(DEPLOYS, workload(6, 6, 3)))
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(3, 3)

    run(src, main)
    auths = [auth for _, auth in api.seen]
    assert auths[:4] == ["Bearer first"] * 4
    assert "Bearer rotated" in auths[4:]
    assert errors(src, "unauthorized") == 0


def test_outside_a_cluster_counts_are_unknown_with_a_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = KubeReplicaSource.in_cluster(env={}, account_dir=tmp_path, registry=CollectorRegistry())
    assert counts(src) is None
    assert errors(src, "config") == 1
    assert "KUBERNETES_SERVICE_HOST" in caplog.text
    assert "--replicas-from decisions" in caplog.text


def test_in_cluster_reads_the_service_account_over_tls(tmp_path: Path) -> None:
    # The production path: https to KUBERNETES_SERVICE_HOST:PORT, the mounted token, and a
    # server certificate that must chain to the mounted ca.crt.
    openssl = require_binary("openssl")
    cert, key = tmp_path / "ca.crt", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (tmp_path / "token").write_text("mounted-token")
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def wrap(sock: Any) -> Any:
        return context.wrap_socket(sock, server_side=True)

    fake = FakeApi()
    fake.put(SOS, scaled_object())
    fake.put(DEPLOYS, workload(3, 3, 2))
    for api in _serve(fake, wrap):
        port = api.url.rsplit(":", 1)[1]
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
        src = KubeReplicaSource.in_cluster(env, tmp_path, timeout_s=5.0)
        assert counts(src) == ReplicaCounts(2, 1)
        assert {auth for _, auth in api.seen} == {"Bearer mounted-token"}
        # A server the mounted CA does not vouch for is refused, not trusted.
        other = tmp_path / "other"
        other.mkdir()
        (other / "token").write_text("mounted-token")
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=other", "-keyout", str(other / "k.pem"),
                "-out", str(other / "ca.crt"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        untrusting = KubeReplicaSource.in_cluster(env, other, backoff_s=60.0)
        assert counts(untrusting) is None
        assert errors(untrusting, "unavailable") == 1


# ---- the service with replica counts from the API ----------------------------------------

META = {"broker": "main", "queues": "llama-8b"}  # defaults: 600 s window, one step down


def scaler(broker: FakeBroker, clock: Clock, replicas: KubeReplicaSource | None) -> ScalerService:
    """A freshly started scaler: in-memory state, no history."""
    return ScalerService({"main": broker}, FakeStore(), clock=clock, replicas=replicas)


def test_a_restarted_scaler_holds_the_replicas_it_sees_for_a_whole_window(api: FakeApi) -> None:
    # The scaler restarts (in-memory state: no history) while 6 replicas serve and the queue is
    # empty. Reading the Deployment, it sees 6 ready replicas: "below the threshold on 6" holds
    # them through a whole stabilization window before the first step down.
    #
    # The contrast, at the bottom: with --replicas-from decisions the same fresh scaler knows of
    # no replica at all ("nothing pending at zero replicas"), answers 0 at once, and the HPA
    # would cut the 6 running replicas on its next sync.
    clock, broker = Clock(), FakeBroker(Depth(pending=0))
    restarted_at = clock.now

    async def main() -> list[tuple[float, int, str]]:
        src = source(api, clock)
        svc = scaler(broker, clock, src)
        target = svc.resolve(NS, "llama-8b", META)
        answers: list[tuple[float, int, str]] = []
        # KEDA polls every 30 s; the HPA has 6 and keeps them as long as the metric says 6.
        while clock.now - restarted_at <= 720:
            evaluation = await svc.evaluate(target)
            answers.append(
                (clock.now - restarted_at, evaluation.decision.desired, evaluation.decision.reason)
            )
            if evaluation.decision.desired == 5:
                break
            clock.advance(30.0)
        # The HPA applies the step down on its next sync: until then the Deployment still shows
        # 6 ready. Replicas above the last decision are on their way out, not load: still 5.
        for _ in range(2):
            clock.advance(5.0)
            assert (await svc.evaluate(target)).decision.desired == 5
        await applied(src, "Deployment", api.put(DEPLOYS, workload(5, 5, 5)))  # the HPA got there
        clock.advance(30.0)
        assert (await svc.evaluate(target)).decision.desired == 5
        await svc.close()
        return answers

    answers = asyncio.run(main())
    assert answers[0] == (0.0, 6, Reason.HOLD_STABILIZING)
    within_window = [desired for at, desired, _ in answers if at <= 600]
    assert min(within_window) == 6, "no scale-down before a whole window was observed"
    at, desired, reason = answers[-1]
    assert (desired, reason) == (5, Reason.SCALE_DOWN), "then one step, not a cut"
    assert at > 600

    # --replicas-from decisions: the same restart, the same cluster, no counts.
    async def without_counts() -> tuple[int, bool]:
        svc = scaler(broker, clock, None)
        evaluation = await svc.evaluate(svc.resolve(NS, "llama-8b", META))
        await svc.close()
        return evaluation.decision.desired, evaluation.decision.active

    assert asyncio.run(without_counts()) == (0, False)


def test_evaluations_read_the_broker_but_not_the_api(api: FakeApi) -> None:
    clock, broker = Clock(), FakeBroker(Depth(pending=120))

    async def main() -> None:
        svc = scaler(broker, clock, source(api, clock))
        target = svc.resolve(NS, "llama-8b", META)
        await svc.evaluate(target)
        for _ in range(10):  # ten more intervals: ten broker reads, no API request
            clock.advance(5.0)
            await svc.evaluate(target)
        assert len(broker.reads) == 11
        await svc.close()

    asyncio.run(main())
    # The first evaluation's list of each collection, and (at most) their two watches.
    assert len(api.requests(SOS, watch=False)) == len(api.requests(DEPLOYS, watch=False)) == 1
    assert len(api.seen) <= 4


def test_with_the_api_down_the_scaler_answers_from_its_own_decisions() -> None:
    clock, broker = Clock(), FakeBroker(Depth(pending=400))
    down = KubeReplicaSource(f"http://127.0.0.1:{free_port()}", token="t", clock=clock)

    async def main() -> tuple[int, Reason]:
        svc = scaler(broker, clock, down)
        evaluation = await svc.evaluate(svc.resolve(NS, "llama-8b", META))
        await svc.close()
        return evaluation.decision.desired, evaluation.decision.reason

    # 400 pending at "zero replicas" (no counts, no history): activate from the backlog alone
    # (8 replicas' worth, limited to +4 until capacity is ready), as with --replicas-from decisions.
    assert asyncio.run(main()) == (4, Reason.ACTIVATE)
    assert errors(down, "unavailable") == 1


# ---- depthscale serve --replicas-from ------------------------------------------------------


def test_serve_takes_the_replica_source_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from scaler.cli import main
    from scaler.serve import BROKERS_ENV, REPLICAS_FROM_ENV, open_replicas, serve

    base = ["--broker", "m=redis://127.0.0.1:1/0"]
    monkeypatch.delenv(REPLICAS_FROM_ENV, raising=False)
    assert serve.make_context("serve", list(base)).params["replicas_from"] == "decisions"
    flag = [*base, "--replicas-from", "kubernetes"]
    assert serve.make_context("serve", flag).params["replicas_from"] == "kubernetes"
    monkeypatch.setenv(REPLICAS_FROM_ENV, "kubernetes")
    assert serve.make_context("serve", list(base)).params["replicas_from"] == "kubernetes"

    result = CliRunner().invoke(
        main, ["serve", *base, "--replicas-from", "guess"], env={BROKERS_ENV: ""}
    )
    assert result.exit_code != 0
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ")
    assert "'--replicas-from'" in line

    registry = CollectorRegistry()
    assert open_replicas("decisions", cache_s=5.0, timeout_s=1.0, registry=registry) is None
    kube = open_replicas("kubernetes", cache_s=15.0, timeout_s=1.0, registry=registry)
    assert isinstance(kube, KubeReplicaSource)
    assert kube.timeout_s == 1.0, "a count waits no longer than a broker read"
    asyncio.run(kube.close())
    assert registry.get_sample_value("depthscale_kube_errors_total", {"kind": "forbidden"}) == 0
