"""Replica counts from the Kubernetes API, against a real HTTP server on loopback playing the API
server (ScaledObjects and their Deployment/StatefulSet targets as JSON), then wired into the
service: a restarted scaler that sees the replicas running does not cut them.

Time is narrated with a hand-driven clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from policies.types import Reason
from scaler.kube import KubeError, KubeReplicaSource, ReplicaCounts, parse_counts
from scaler.ports import Depth
from scaler.service import ScalerService
from tests.conftest import free_port, require_binary
from tests.scaler.fakes import Clock, FakeBroker, FakeStore

NS = "models"
SO_PATH = f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects/llama-8b"
DEPLOY_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/llama-8b-vllm"
STS_PATH = f"/apis/apps/v1/namespaces/{NS}/statefulsets/llama-8b-vllm"


def scaled_object(**ref: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "llama-8b", "namespace": NS},
        "spec": {"scaleTargetRef": {"name": "llama-8b-vllm", **ref}},
    }


def workload(spec_replicas: int | None, replicas: int | None, ready: int | None) -> dict[str, Any]:
    status = {k: v for k, v in (("replicas", replicas), ("readyReplicas", ready)) if v is not None}
    spec = {} if spec_replicas is None else {"replicas": spec_replicas}
    return {"kind": "Deployment", "spec": spec, "status": status}


def forbidden(resource: str, group: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": f'{resource}.{group} "llama-8b" is forbidden: User '
        '"system:serviceaccount:depthscale:depthscale-scaler" cannot get resource '
        f'"{resource}" in API group "{group}" in the namespace "{NS}"',
    }


@dataclass
class FakeApi:
    """The API server's answers by path (status, JSON body), and the requests it saw."""

    routes: dict[str, tuple[int, Any]] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    hold: bool = False  # take each request and answer only once `release` is set
    release: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    drop_kept_alive: bool = False  # close each connection after answering, without saying so
    connections: int = 0
    url: str = ""

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.seen if p == path)


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the API server

        def setup(self) -> None:
            super().setup()
            api.connections += 1

        def do_GET(self) -> None:
            api.seen.append((self.path, self.headers.get("Authorization", "")))
            if api.hold:
                api.release.wait(timeout=30)
            status, body = api.routes.get(
                self.path, (404, {"kind": "Status", "code": 404, "message": "not found"})
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            api.answered += 1
            if api.drop_kept_alive:
                self.close_connection = True

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
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """A loopback API server with one ScaledObject targeting a Deployment (6 ready of 6)."""
    yield from _serve(
        FakeApi(routes={SO_PATH: (200, scaled_object()), DEPLOY_PATH: (200, workload(6, 6, 6))})
    )


def source(api: FakeApi, clock: Clock | None = None, **options: Any) -> KubeReplicaSource:
    return KubeReplicaSource(api.url, token="sa-token", clock=clock or Clock(), **options)


def counts(src: KubeReplicaSource, namespace: str = NS) -> ReplicaCounts | None:
    async def main() -> ReplicaCounts | None:
        try:
            return await src.counts(namespace, "llama-8b")
        finally:
            await src.close()

    return asyncio.run(main())


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


# ---- reading the API -----------------------------------------------------------------------


def test_counts_come_from_the_scaled_objects_deployment(api: FakeApi) -> None:
    api.routes[DEPLOY_PATH] = (200, workload(8, 6, 4))
    assert counts(source(api)) == ReplicaCounts(ready=4, warming=4)
    assert [p for p, _ in api.seen] == [SO_PATH, DEPLOY_PATH]
    assert {auth for _, auth in api.seen} == {"Bearer sa-token"}


def test_statefulset_targets_are_read_from_statefulsets(api: FakeApi) -> None:
    api.routes[SO_PATH] = (200, scaled_object(kind="StatefulSet", apiVersion="apps/v1"))
    api.routes[STS_PATH] = (200, {"spec": {"replicas": 2}, "status": {"replicas": 2}})
    assert counts(source(api)) == ReplicaCounts(ready=0, warming=2)
    assert api.hits(STS_PATH) == 1
    assert api.hits(DEPLOY_PATH) == 0


def test_other_target_kinds_are_unknown_not_guessed(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.routes[SO_PATH] = (200, scaled_object(kind="Rollout", apiVersion="argoproj.io/v1alpha1"))
    src = source(api)
    assert counts(src) is None
    assert errors(src, "unsupported-target") == 1
    assert "only apps/v1 Deployment and StatefulSet" in caplog.text


def test_forbidden_means_unknown_with_an_rbac_hint_logged_once(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.routes[SO_PATH] = (403, forbidden("scaledobjects", "keda.sh"))
    clock = Clock()
    src = source(api, clock)

    async def main() -> list[ReplicaCounts | None]:
        seen = []
        for _ in range(3):  # three evaluation intervals
            seen.append(await src.counts(NS, "llama-8b"))
            clock.advance(5.0)
        await src.close()
        return seen

    with caplog.at_level(logging.WARNING, logger="depthscale.scaler.kube"):
        assert asyncio.run(main()) == [None, None, None]
    assert api.hits(SO_PATH) == 3, "a 403 is not a reason to stop asking"
    assert errors(src, "forbidden") == 3
    [record] = caplog.records
    message = record.getMessage()
    assert "HTTP 403" in message
    assert 'cannot get resource "scaledobjects"' in message  # the API server's own reason
    assert "RBAC" in message
    assert "scaledobjects.keda.sh" in message
    assert "deployments.apps" in message


def test_api_down_means_unknown_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    src = KubeReplicaSource(
        f"http://127.0.0.1:{free_port()}", token="t", clock=clock, backoff_s=10.0
    )

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") is None
        clock.advance(5.0)  # a new interval, but within the back-off: no call at all
        assert await src.counts(NS, "other") is None
        clock.advance(6.0)
        assert await src.counts(NS, "llama-8b") is None
        await src.close()

    with caplog.at_level(logging.WARNING, logger="depthscale.scaler.kube"):
        asyncio.run(main())
    assert src.requests == 2
    assert errors(src, "unavailable") == 2
    assert len(caplog.records) == 1, "one outage, one log line"
    assert "(unavailable)" in caplog.records[0].getMessage()


def test_a_slow_api_times_out_as_unknown(api: FakeApi) -> None:
    api.hold = True  # the API server takes the request and does not answer until released
    src = source(api, timeout_s=0.2)
    assert counts(src) is None
    assert api.answered == 0, "the scaler gave up while the API server still held the request"
    assert errors(src, "timeout") == 1
    api.release.set()


def test_scale_target_ref_is_cached_and_counts_for_an_interval(api: FakeApi) -> None:
    clock = Clock()
    src = source(api, clock, counts_ttl_s=5.0, ref_ttl_s=300.0)

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        clock.advance(2.0)  # within the interval: no request at all
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        assert api.hits(DEPLOY_PATH) == 1
        # Three more intervals: the Deployment is read each time, the ScaledObject never again.
        for ready in (5, 4, 3):
            api.routes[DEPLOY_PATH] = (200, workload(6, 6, ready))
            clock.advance(5.0)
            assert await src.counts(NS, "llama-8b") == ReplicaCounts(ready, 6 - ready)
        assert (api.hits(SO_PATH), api.hits(DEPLOY_PATH)) == (1, 4)
        # Five minutes on, the ref is read again (it rarely changes, but it may).
        clock.advance(300.0)
        await src.counts(NS, "llama-8b")
        assert api.hits(SO_PATH) == 2
        await src.close()

    asyncio.run(main())


def test_a_vanished_target_makes_the_ref_be_read_again(api: FakeApi) -> None:
    clock = Clock()
    src = source(api, clock)

    async def main() -> None:
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        # The ScaledObject now points at a StatefulSet; the old Deployment is gone.
        api.routes[SO_PATH] = (200, scaled_object(kind="StatefulSet"))
        api.routes[STS_PATH] = (200, workload(2, 2, 2))
        del api.routes[DEPLOY_PATH]
        clock.advance(5.0)
        assert await src.counts(NS, "llama-8b") is None  # 404: unknown this interval
        clock.advance(5.0)
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(2, 0)
        await src.close()

    asyncio.run(main())
    assert errors(src, "not-found") == 1


def test_connections_are_kept_alive_and_a_dropped_one_is_replaced(api: FakeApi) -> None:
    clock = Clock()
    src = source(api, clock, workers=1)

    async def main() -> None:
        for _ in range(3):
            assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
            clock.advance(5.0)
        assert api.connections == 1, "one connection for every read"
        # The server closes idle connections without notice: the next read fails on the old
        # one and is retried, once, on a new one.
        api.drop_kept_alive = True
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        clock.advance(5.0)
        assert await src.counts(NS, "llama-8b") == ReplicaCounts(6, 0)
        await src.close()

    asyncio.run(main())
    assert errors(src, "unavailable") == 0


def test_concurrent_calls_share_one_read(api: FakeApi) -> None:
    src = source(api)

    async def main() -> list[ReplicaCounts | None]:
        found = await asyncio.gather(*(src.counts(NS, "llama-8b") for _ in range(10)))
        await src.close()
        return list(found)

    assert asyncio.run(main()) == [ReplicaCounts(6, 0)] * 10
    assert len(api.seen) == 2


def test_recovery_is_logged_and_a_later_failure_logged_again(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    src = source(api, clock)
    good, bad = api.routes[SO_PATH], (403, forbidden("scaledobjects", "keda.sh"))

    async def main() -> None:
        for answer in (bad, good, bad):
            api.routes[SO_PATH] = answer
            await src.counts(NS, "llama-8b")
            clock.advance(301.0)  # past the ref cache, so the ScaledObject is read each time
        await src.close()

    with caplog.at_level(logging.INFO, logger="depthscale.scaler.kube"):
        asyncio.run(main())
    events = [r.fields["event"] for r in caplog.records]  # type: ignore[attr-defined]
    assert events == ["kube-error", "kube-recovered", "kube-error"]


def test_token_file_is_read_at_each_request(api: FakeApi, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    clock = Clock()
    src = KubeReplicaSource(api.url, token_file=token, clock=clock)

    async def main() -> None:
        await src.counts(NS, "llama-8b")
        token.write_text("rotated\n")  # the kubelet refreshes projected tokens in place
        clock.advance(5.0)
        await src.counts(NS, "llama-8b")
        await src.close()

    asyncio.run(main())
    assert [auth for _, auth in api.seen] == ["Bearer first", "Bearer first", "Bearer rotated"]


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

    fake = FakeApi(routes={SO_PATH: (200, scaled_object()), DEPLOY_PATH: (200, workload(3, 3, 2))})
    for api in _serve(fake, wrap):
        port = api.url.rsplit(":", 1)[1]
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
        assert counts(KubeReplicaSource.in_cluster(env, tmp_path)) == ReplicaCounts(2, 1)
        assert [auth for _, auth in api.seen] == ["Bearer mounted-token"] * 2
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
        untrusting = KubeReplicaSource.in_cluster(env, other)
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
        svc = scaler(broker, clock, source(api, clock))
        target = svc.resolve(NS, "llama-8b", META)
        answers = []
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
        api.routes[DEPLOY_PATH] = (200, workload(5, 5, 5))  # the HPA got there
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


def test_counts_are_read_once_per_evaluation_not_per_rpc(api: FakeApi) -> None:
    clock, broker = Clock(), FakeBroker(Depth(pending=120))

    async def main() -> None:
        svc = scaler(broker, clock, source(api, clock))
        target = svc.resolve(NS, "llama-8b", META)
        # GetMetricSpec, GetMetrics and IsActive of one poll, and the metrics adapter's again.
        for _ in range(6):
            await svc.evaluate(target)
        assert (len(broker.reads), api.hits(DEPLOY_PATH)) == (1, 1)
        clock.advance(5.0)  # the next interval
        await svc.evaluate(target)
        assert (len(broker.reads), api.hits(DEPLOY_PATH)) == (2, 2)
        await svc.close()

    asyncio.run(main())


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
    assert kube.counts_ttl_s == 15.0, "counts live one evaluation interval"
    asyncio.run(kube.close())
    assert registry.get_sample_value("depthscale_kube_errors_total", {"kind": "forbidden"}) == 0
