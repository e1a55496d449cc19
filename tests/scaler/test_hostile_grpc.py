"""Hostile and unusual input over a real gRPC socket, against a private redis-server and real
Celery publishing: a fuzz run of 10,000 metadata maps, tenancy, and kombu's transport options.
"""

from __future__ import annotations

import asyncio
import random
import resource
from collections import Counter

import grpc
import pytest
from kombu import Connection

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.access import split_options
from scaler.brokers.redis import RedisBrokerReader
from scaler.metadata import KEYS
from scaler.server import start
from scaler.service import ScalerService
from scaler.state_store import MemoryStateStore
from tests.conftest import RedisServer, celery_app, publish, run

pytestmark = pytest.mark.redis

FUZZ_MAPS = 10_000
RSS_GROWTH_BOUND_MB = 150
_NAMES = [k.name for k in KEYS]
_VALUES = [
    "0", "1", "2", "-1", "7.5", "50", "1e400", "1e300", "1e-320", "99999999999999999999",
    "nan", "inf", "-inf", "١٢", "５٠", "1_0", "0x10", "2147483648", "true", "false", "maybe",
    "seed", "depthscale", "replicas", "pending", "target", "llm", "llm\x00x", "llm\x06\x163",
    "a,b", "a,,b", "", " ", "0,3,6,9", "0,1000000000000", "3600,86400", "60", "redis://x",
]  # fmt: skip


def _char(rng: random.Random) -> str:
    """Any character protobuf can carry (UTF-8: no surrogates)."""
    code = rng.randint(0, 0x10FFF)
    return chr(code) if not 0xD800 <= code <= 0xDFFF else "?"


def _fuzz_map(rng: random.Random) -> dict[str, str]:
    """A metadata map: mostly real keys with odd values, sometimes junk keys, long or odd text."""
    metadata = {"broker": "main", "queues": "llm"} if rng.random() < 0.8 else {}
    for _ in range(rng.randint(0, 8)):
        roll = rng.random()
        if roll < 0.7:
            key = rng.choice(_NAMES)
        elif roll < 0.8:
            key = rng.choice(_NAMES) + "FromEnv"
        elif roll < 0.9:
            key = "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(1, 12)))
        else:
            key = "k" * rng.choice((100, 129, 5000))
        roll = rng.random()
        if roll < 0.75:
            value = rng.choice(_VALUES)
        elif roll < 0.9:
            value = "".join(_char(rng) for _ in range(rng.randint(0, 30)))
        else:
            value = "9" * rng.choice((10, 400, 1025, 20_000))
        metadata[key] = value
    return metadata


def test_ten_thousand_fuzzed_maps_never_reach_internal(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    publish(app, [("llm", 0)] * 120)
    rng = random.Random(20261201)
    maps = [_fuzz_map(rng) for _ in range(FUZZ_MAPS)]

    async def main() -> tuple[Counter[str], float]:
        service = ScalerService(
            {"main": RedisBrokerReader(redis_server.url, timeout_s=1.0)}, MemoryStateStore()
        )
        running = await start(service, port=0, host="127.0.0.1")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        codes: Counter[str] = Counter()
        try:
            options = [("grpc.max_send_message_length", 64 * 2**20)]
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{running.port}", options=options
            ) as channel:
                stub = pb_grpc.ExternalScalerStub(channel)

                async def call(index: int, metadata: dict[str, str]) -> None:
                    ref = pb.ScaledObjectRef(
                        name=f"fuzz-{index % 500}", namespace="prod", scalerMetadata=metadata
                    )
                    try:
                        await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=10)
                        codes["OK"] += 1
                    except grpc.aio.AioRpcError as exc:
                        codes[exc.code().name] += 1

                for start_at in range(0, len(maps), 200):
                    batch = maps[start_at : start_at + 200]
                    await asyncio.gather(*(call(start_at + i, m) for i, m in enumerate(batch)))
        finally:
            await running.stop(0)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return codes, rss_after - rss_before

    codes, grown_mb = run(main)
    assert sum(codes.values()) == FUZZ_MAPS
    assert codes["INTERNAL"] == 0, codes
    assert codes["UNKNOWN"] == 0, codes
    assert codes["OK"] > 100, codes  # the fuzz reaches the broker and the policy too
    assert codes["INVALID_ARGUMENT"] > 100, codes
    assert grown_mb < RSS_GROWTH_BOUND_MB, f"RSS grew {grown_mb:.0f} MB"


def test_tenancy_and_errors_over_grpc(redis_server: RedisServer) -> None:
    down = f"redis://scaler:hunter2@127.0.0.1:{redis_server.port + 1}/0"
    main_url, main_options = split_options(f"{redis_server.url}?namespaces=llm&queues=llm-*")
    down_url, down_options = split_options(down)

    async def scenario() -> dict[str, tuple[str, str]]:
        service = ScalerService(
            {
                "main": RedisBrokerReader(main_url, timeout_s=1.0),
                "down": RedisBrokerReader(down_url, timeout_s=0.5),
            },
            MemoryStateStore(),
            access={"main": main_options, "down": down_options},
        )
        running = await start(service, port=0, host="127.0.0.1")
        results: dict[str, tuple[str, str]] = {}
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stub = pb_grpc.ExternalScalerStub(channel)
                cases = {
                    "allowed": ("llm", {"broker": "main", "queues": "llm-8b"}),
                    "other namespace": ("payments", {"broker": "main", "queues": "llm-8b"}),
                    "other queue": ("llm", {"broker": "main", "queues": "payouts"}),
                    "down": ("llm", {"broker": "down", "queues": "llm-8b"}),
                }
                for case, (namespace, metadata) in cases.items():
                    ref = pb.ScaledObjectRef(name="m", namespace=namespace, scalerMetadata=metadata)
                    try:
                        await stub.IsActive(ref, timeout=3)
                        results[case] = ("OK", "")
                    except grpc.aio.AioRpcError as exc:
                        results[case] = (exc.code().name, exc.details() or "")
        finally:
            await running.stop(0)
        return results

    results = run(scenario)
    assert results["allowed"][0] == "OK"
    assert results["other namespace"][0] == "PERMISSION_DENIED"
    assert results["other queue"][0] == "PERMISSION_DENIED"
    code, details = results["down"]
    assert code == "UNAVAILABLE"
    assert "'down'" in details
    for secret_or_location in ("hunter2", "scaler@", "127.0.0.1", str(redis_server.port + 1)):
        assert secret_or_location not in details


def test_kombu_transport_options_per_broker_count_every_task(redis_server: RedisServer) -> None:
    # With sep=':' and ten priority steps, a scaler that assumed kombu's defaults counted 5 of 50.
    steps = list(range(10))
    options = {
        "sep": ":",
        "priority_steps": steps,
        "global_keyprefix": "team-a/",
        "unacked_key": "team-a-unacked",
    }
    app = celery_app(redis_server.url, **options)
    publish(app, [("llm", priority) for priority in steps for _ in range(5)])
    # One task reserved and not acked, as a worker with acks_late holds it.
    with Connection(redis_server.url, transport_options=options) as connection:
        queue = connection.SimpleQueue("llm")
        held = queue.get(block=True, timeout=5)
        assert held is not None
        url, broker_options = split_options(
            f"{redis_server.url}?sep=%3A&priority_steps={','.join(map(str, steps))}"
            "&global_keyprefix=team-a%2F&unacked_key=team-a-unacked"
        )

        async def scenario() -> tuple[int, int | None]:
            service = ScalerService(
                {"main": RedisBrokerReader(url, timeout_s=1.0)},
                MemoryStateStore(),
                access={"main": broker_options},
            )
            target = service.resolve(
                "prod", "llm", {"broker": "main", "queues": "llm", "includeUnacked": "true"}
            )
            depth = await service.read_depth(target)
            await service.close()
            return depth.pending, depth.in_flight

        pending, in_flight = run(scenario)
        queue.close()
    assert (pending, in_flight) == (49, 1)
