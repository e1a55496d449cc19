"""The scaler end to end: a real grpc.aio client over a real socket, a private redis-server, real
Celery publishing with priorities and a key prefix, the real broker reader and state stores.

Deadlines are KEDA's: its metrics adapter calls with a 3 s deadline (kedacore/keda pkg/scalers/external_scaler.go), so every
unary call here carries ``timeout=KEDA_DEADLINE_S`` and a slow answer fails as DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
import pytest
from celery import Celery
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.brokers.redis import RedisBrokerReader
from scaler.ports import StateStore
from scaler.server import RunningServer, start
from scaler.service import ScalerService
from scaler.state_store import MemoryStateStore, RedisStateStore
from tests.conftest import RedisServer
from tests.scaler.fakes import Clock

pytestmark = pytest.mark.redis

T = TypeVar("T")
KEDA_DEADLINE_S = 3.0
PREFIX = "tenant-a:"
QUEUES = ("llama-8b", "llama-8b-batch")
# The seed preset: its replica counts follow ceil(pending / 50) with no scale-up limit, which
# keeps these end-to-end checks about the wire and the broker (the presets have their own tests).
META = {
    "scalerAddress": "depthscale.keda:9090",
    "broker": "main",
    "queues": ",".join(QUEUES),
    "keyPrefix": PREFIX,
    "preset": "seed",
}


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await main()

    return asyncio.run(wrapped())


def celery_app(url: str) -> Celery:
    app = Celery("depthscale-grpc-tests", broker=url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": PREFIX}
    return app


def publish(app: Celery, jobs: list[tuple[str, int]]) -> None:
    """Real Celery ``apply_async``-style publishing: one task per (queue, priority)."""
    with app.producer_or_acquire() as producer:
        for queue, priority in jobs:
            app.send_task(
                "depthscale.tests.infer", args=(queue,), queue=queue, priority=priority,
                producer=producer,
            )  # fmt: skip


def kombu_pending(app: Celery) -> int:
    """kombu's own count: ``Channel._size`` summed over the model's queues (with a key prefix
    the passive queue_declare answers 404, so ``_size`` is the oracle)."""
    with app.connection() as conn:
        return sum(int(conn.default_channel._size(q)) for q in QUEUES)


def drain(app: Celery) -> None:
    """Empty the model's queues as kombu does (every priority list, prefix applied)."""
    with app.connection() as conn:
        for queue in QUEUES:
            conn.default_channel.queue_purge(queue)


def ref(name: str = "llama-8b", **extra: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace="prod", scalerMetadata={**META, **extra})


@asynccontextmanager
async def scaler(
    redis: RedisServer, store: StateStore | None = None, clock: Clock | None = None
) -> AsyncIterator[tuple[Any, RunningServer]]:
    service = ScalerService(
        {"main": RedisBrokerReader(redis.url, timeout_s=1.0)},
        store if store is not None else MemoryStateStore(),
        clock=clock if clock is not None else Clock(),
    )
    running = await start(service, port=0, metrics_port=0, host="127.0.0.1")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield pb_grpc.ExternalScalerStub(channel), running
    finally:
        await channel.close()
        await running.stop(grace_s=0.5)


async def metric(stub: Any, request: pb.ScaledObjectRef) -> tuple[str, float, bool]:
    """KEDA's sequence: GetMetricSpec, GetMetrics, IsActive. Returns (name, value, active)."""
    spec = await stub.GetMetricSpec(request, timeout=KEDA_DEADLINE_S)
    [metric_spec] = spec.metricSpecs
    values = await stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=request, metricName=metric_spec.metricName),
        timeout=KEDA_DEADLINE_S,
    )
    [value] = values.metricValues
    assert value.metricName == metric_spec.metricName
    active = await stub.IsActive(request, timeout=KEDA_DEADLINE_S)
    return metric_spec.metricName, value.metricValueFloat, active.result


async def status_of(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    code: grpc.StatusCode = caught.value.code()
    return code


# ---- the metric contract on real Celery queues ---------------------------------------------------


def test_metric_matches_kombus_count_across_queues_priorities_and_prefix(
    redis_server: RedisServer,
) -> None:
    app = celery_app(redis_server.url)
    publish(app, [(q, p) for q in QUEUES for p in (0, 0, 3, 5, 6, 9, 9) for _ in range(10)])
    pending = kombu_pending(app)
    assert pending == 2 * 7 * 10

    async def main() -> None:
        async with scaler(redis_server) as (stub, _):
            name, value, active = await metric(stub, ref(mode="pending"))
            assert value == pending
            assert active
            spec = await stub.GetMetricSpec(ref(mode="pending"), timeout=KEDA_DEADLINE_S)
            assert spec.metricSpecs[0].targetSizeFloat == 50.0
            assert spec.metricSpecs[0].targetSize == 50

            # Replicas mode: the metric is the desired replica count, target 1 per replica;
            # from zero, enough replicas that each has at most scaleUpPending (50) pending.
            name, value, active = await metric(stub, ref("llama-8b-replicas"))
            assert value == math.ceil(pending / 50)
            assert active
            spec = await stub.GetMetricSpec(ref("llama-8b-replicas"), timeout=KEDA_DEADLINE_S)
            assert (spec.metricSpecs[0].targetSizeFloat, spec.metricSpecs[0].targetSize) == (1, 1)
            assert name.startswith("depthscale-prod-llama-8b-replicas-")

    run(main)


def test_idle_model_is_inactive_with_metric_zero(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with scaler(redis_server) as (stub, _):
            _, value, active = await metric(stub, ref())
            assert value == 0
            assert not active

    run(main)


# ---- bad input: the right status, the key named, the server unharmed --------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"broker": "nowhere"}, "broker"),
        ({"maxReplicas": "many"}, "maxReplicas"),
        ({"listLength": "5"}, "listLength"),
        ({"password": "hunter2"}, "password"),
        ({"queues": ""}, "queues"),
    ],
)
def test_bad_metadata_is_invalid_argument_naming_the_key(
    redis_server: RedisServer, extra: dict[str, str], key: str
) -> None:
    async def main() -> None:
        async with scaler(redis_server) as (stub, _):
            for call in (stub.GetMetricSpec, stub.IsActive):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call(ref(**extra), timeout=KEDA_DEADLINE_S)
                assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert key in (caught.value.details() or "")
                assert "hunter2" not in (caught.value.details() or "")
            stream = stub.StreamIsActive(ref(**extra))
            assert await status_of(stream.read()) is grpc.StatusCode.INVALID_ARGUMENT
            _, _, active = await metric(stub, ref())  # the server still answers good requests
            assert not active

    run(main)


def test_wrong_metric_name_and_stream_metric_spec(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with scaler(redis_server) as (stub, _):
            wrong = pb.GetMetricsRequest(scaledObjectRef=ref(), metricName="s0-other")
            code = await status_of(stub.GetMetrics(wrong, timeout=KEDA_DEADLINE_S))
            assert code is grpc.StatusCode.INVALID_ARGUMENT
            stream = stub.StreamMetricSpec(ref())
            assert await status_of(stream.read()) is grpc.StatusCode.UNIMPLEMENTED

    run(main)


def test_health_service_reports_serving(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with (
            scaler(redis_server) as (_, running),
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            health = health_pb2_grpc.HealthStub(channel)
            for service_name in ("", "externalscaler.ExternalScaler"):
                answer = await health.Check(
                    health_pb2.HealthCheckRequest(service=service_name), timeout=3
                )
                assert answer.status == health_pb2.HealthCheckResponse.SERVING

    run(main)


# ---- broker outage: UNAVAILABLE, never a made-up 0, and recovery -----------------------------


def test_broker_killed_mid_run_is_unavailable_then_recovers(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    clock = Clock()

    async def main() -> None:
        async with scaler(redis_server, clock=clock) as (stub, _):
            publish(app, [("llama-8b", 0)] * 120)
            _, value, _ = await metric(stub, ref())
            assert value == 3

            redis_server.stop()
            clock.advance(5.0)  # the cached answer has aged out: the next call reads the broker
            request = pb.GetMetricsRequest(scaledObjectRef=ref())
            assert await status_of(stub.GetMetrics(request, timeout=KEDA_DEADLINE_S)) is (
                grpc.StatusCode.UNAVAILABLE
            )
            assert await status_of(stub.IsActive(ref(), timeout=KEDA_DEADLINE_S)) is (
                grpc.StatusCode.UNAVAILABLE
            )
            # The spec needs no broker: KEDA can still build the HPA during the outage.
            spec = await stub.GetMetricSpec(ref(), timeout=KEDA_DEADLINE_S)
            assert len(spec.metricSpecs) == 1

            redis_server.start()  # back, empty (the test server keeps no data)
            publish(app, [("llama-8b", 9)] * 300)
            _, value, active = await metric(stub, ref())
            # 300 pending on the 3 replicas it asked for: scale up to 300 / 50.
            assert value == 6
            assert active

    run(main)


def test_hung_broker_is_unavailable_within_the_read_deadline(redis_server: RedisServer) -> None:
    """A broker that accepts connections but never answers (SIGSTOP) must not hold KEDA's call
    past its deadline: the 1 s broker timeout turns it into UNAVAILABLE first."""
    assert redis_server.process is not None
    pid = redis_server.process.pid
    app = celery_app(redis_server.url)
    clock = Clock()

    async def main() -> None:
        async with scaler(redis_server, clock=clock) as (stub, running):
            publish(app, [("llama-8b", 0)] * 60)
            await metric(stub, ref())
            os.kill(pid, signal.SIGSTOP)
            try:
                clock.advance(5.0)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.IsActive(ref(), timeout=KEDA_DEADLINE_S)
                assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
                assert "no answer" in (caught.value.details() or "")
            finally:
                os.kill(pid, signal.SIGCONT)
            _, value, active = await metric(stub, ref())
            assert (value, active) == (2, True)
            registry = running.service.metrics.registry
            timeouts = registry.get_sample_value(
                "depthscale_broker_errors_total", {"broker": "main", "kind": "timeout"}
            )
            assert timeouts == 1

    run(main)


def test_concurrent_calls_on_one_connection_share_broker_reads(redis_server: RedisServer) -> None:
    """KEDA multiplexes every ScaledObject's calls over one HTTP/2 connection: 20 triggers asked
    10 times each, all at once, cost one broker read per trigger."""
    app = celery_app(redis_server.url)
    publish(app, [("llama-8b", 0)] * 30)
    triggers = [ref(f"model-{i}") for i in range(20)]

    async def main() -> None:
        async with scaler(redis_server) as (stub, running):
            answers = await asyncio.gather(
                *[
                    stub.GetMetrics(
                        pb.GetMetricsRequest(scaledObjectRef=t), timeout=KEDA_DEADLINE_S
                    )
                    for t in triggers
                    for _ in range(10)
                ]
            )
            assert [len(a.metricValues) for a in answers] == [1] * 200
            assert {a.metricValues[0].metricValueFloat for a in answers} == {1.0}
            reads = running.service.metrics.registry.get_sample_value(
                "depthscale_broker_reads_total", {"broker": "main"}
            )
            assert reads == len(triggers)

    run(main)


class _BrokenBroker:
    """A broker reader with a bug: it raises something no port promises."""

    async def read(self, spec: Any) -> Any:
        raise RuntimeError("bug in a broker reader")

    async def close(self) -> None:
        pass


def test_an_unexpected_error_is_internal_and_the_server_keeps_serving(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        service = ScalerService(
            {"main": RedisBrokerReader(redis_server.url), "broken": _BrokenBroker()},
            MemoryStateStore(),
        )
        running = await start(service, port=0, host="127.0.0.1")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stub = pb_grpc.ExternalScalerStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.IsActive(ref(broker="broken"), timeout=KEDA_DEADLINE_S)
                assert caught.value.code() is grpc.StatusCode.INTERNAL
                assert "bug in a broker reader" not in (caught.value.details() or "")
                stream = stub.StreamIsActive(ref(broker="broken"))
                assert await status_of(stream.read()) is grpc.StatusCode.INTERNAL
                _, value, active = await metric(stub, ref())
                assert (value, active) == (0, False)
        finally:
            await running.stop(grace_s=0.5)

    run(main)


# ---- two scaler replicas and a restart share one RedisStateStore ------------------------------


def test_two_scalers_and_a_restart_answer_alike(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    clock = Clock()

    def store() -> RedisStateStore:
        return RedisStateStore(redis_server.url, key_prefix="depthscale-test:state:")

    async def main() -> None:
        publish(app, [("llama-8b", 0)] * 120 + [("llama-8b-batch", 6)] * 60)
        async with (
            scaler(redis_server, store(), clock) as (a, _),
            scaler(redis_server, store(), clock) as (b, _),
        ):
            name_a, value_a, active_a = await metric(a, ref())
            assert value_a == math.ceil(180 / 50)
            clock.advance(1.0)
            assert await metric(b, ref()) == (name_a, value_a, active_a)

            # The queues drain. Ten seconds later B reads the broker and decides; A, asked
            # a second after that, answers with B's fresh decision. Neither scales down:
            # the low load has not lasted a stabilization window.
            drain(app)
            assert kombu_pending(app) == 0
            clock.advance(10.0)
            after_b = await metric(b, ref())
            clock.advance(1.0)
            assert await metric(a, ref()) == after_b
            assert after_b[1] == value_a

        # Both stop; a new scaler starts on the same store a minute later: still no scale-down.
        clock.advance(60.0)
        async with scaler(redis_server, store(), clock) as (restarted, _):
            assert await metric(restarted, ref()) == (name_a, value_a, active_a)

    run(main)


# ---- StreamIsActive -----------------------------------------------------------------------------


def test_stream_pushes_true_soon_after_an_idle_model_gets_work(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)

    async def main() -> None:
        # A real clock and the default 5 s interval: only the stream's own broker polling (every
        # 0.5 s) can turn the cached "inactive" into "active" within the 3 s allowed here.
        service = ScalerService(
            {"main": RedisBrokerReader(redis_server.url, timeout_s=1.0)}, MemoryStateStore()
        )
        running = await start(service, port=0, host="127.0.0.1")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stream = pb_grpc.ExternalScalerStub(channel).StreamIsActive(ref())
                first = await asyncio.wait_for(stream.read(), KEDA_DEADLINE_S)
                assert first.result is False
                await asyncio.to_thread(publish, app, [("llama-8b-batch", 3)])
                pushed = await asyncio.wait_for(stream.read(), KEDA_DEADLINE_S)
                assert pushed.result is True
                stream.cancel()
        finally:
            await running.stop(grace_s=0.5)

    run(main)


# ---- /metrics -----------------------------------------------------------------------------------


def test_metrics_endpoint_serves_the_scalers_series(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    publish(app, [("llama-8b", 0)] * 70)

    async def main() -> str:
        async with scaler(redis_server) as (stub, running):
            await metric(stub, ref())
            url = f"http://127.0.0.1:{running.metrics_port}/metrics"
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
            return bytes(body).decode()

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(run(main))
        for sample in family.samples
    }
    trigger = (
        ("model", "llama-8b"),
        ("namespace", "prod"),
        ("queues", ",".join(QUEUES)),
        ("scaled_object", "llama-8b"),
    )

    def value(name: str, *labels: tuple[str, str]) -> float | None:
        return samples.get((name, tuple(sorted(labels))))

    assert value("depthscale_pending_tasks", *trigger) == 70
    assert value("depthscale_desired_replicas", *trigger) == math.ceil(70 / 50)
    assert value("depthscale_decisions_total", *trigger, ("reason", "activate")) == 1
    assert value("depthscale_broker_reads_total", ("broker", "main")) == 1
    for method in ("GetMetricSpec", "GetMetrics", "IsActive"):
        count = value("depthscale_rpc_duration_seconds_count", ("code", "OK"), ("method", method))
        assert count == 1
