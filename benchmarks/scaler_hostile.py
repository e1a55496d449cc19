"""What hostile ScaledObject authors can cost the scaler: time, memory, and other triggers' latency.

    python benchmarks/scaler_hostile.py

Runs a real scaler (grpc.aio, /metrics over HTTP) on an in-process broker that answers at once,
so every figure is the scaler's own cost:

1. redaction of a 1 MB key (the text a refused key's error carries into the log);
2. a legitimate trigger's GetMetrics latency while 200 requests with 160,000-character keys
   arrive at the same time;
3. 10,000 fuzzed metadata maps: status codes and RSS growth;
4. 50,000 triggers seen once each: RSS, /metrics size and scrape time, and a legitimate call's
   latency during a scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import statistics
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.brokers.redact import redact
from scaler.ports import Depth, QueueSpec
from scaler.server import start, tune_process
from scaler.service import ScalerService
from scaler.state_store import MemoryStateStore
from tests.scaler.test_hostile_grpc import _fuzz_map

LEGIT = {"broker": "main", "queues": "llm", "preset": "seed"}


class InstantBroker:
    async def read(self, spec: QueueSpec) -> Depth:
        return Depth(pending=120)

    async def close(self) -> None:
        pass


def p99(samples: list[float]) -> float:
    return sorted(samples)[min(len(samples) - 1, int(len(samples) * 0.99))]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ref(name: str, metadata: dict[str, str]) -> pb.GetMetricsRequest:
    return pb.GetMetricsRequest(
        scaledObjectRef=pb.ScaledObjectRef(name=name, namespace="prod", scalerMetadata=metadata)
    )


async def timed(stub: pb_grpc.ExternalScalerStub, request: pb.GetMetricsRequest) -> float:
    started = time.perf_counter()
    with contextlib.suppress(grpc.aio.AioRpcError):
        await stub.GetMetrics(request, timeout=30)
    return (time.perf_counter() - started) * 1000


async def main() -> None:
    tune_process()  # as `depthscale serve` runs
    started = time.perf_counter()
    redact("k" * 1_000_000)
    print(f"1. redacting a 1 MB key: {(time.perf_counter() - started) * 1000:.1f} ms")

    service = ScalerService({"main": InstantBroker()}, MemoryStateStore(), cache_s=0.001)
    running = await start(service, port=0, metrics_port=0, host="127.0.0.1")
    options = [("grpc.max_send_message_length", 64 * 2**20)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}", options=options) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        await timed(stub, ref("legit", LEGIT))
        quiet = [await timed(stub, ref("legit", LEGIT)) for _ in range(200)]
        # The flood comes from another process, as it would from KEDA's: one process's client
        # serialising 32 MB would otherwise be measured as the server's delay.
        flood = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--flood", str(running.port)
        )
        during = []
        while flood.returncode is None:
            during.append(await timed(stub, ref("legit", LEGIT)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flood.wait(), 0.001)
        print(
            "2. a legitimate GetMetrics: p50 "
            f"{statistics.median(quiet):.2f} ms alone, {statistics.median(during):.2f} ms "
            f"(p99 {p99(during):.2f} ms, max {max(during):.2f} ms, {len(during)} calls) while "
            "another process sends 400 "
            "requests with 160,000-character keys"
        )

        rng = random.Random(20261201)
        before = rss_mb()
        codes: Counter[str] = Counter()
        for start_at in range(0, 10_000, 200):

            async def call(i: int) -> str:
                try:
                    await stub.GetMetrics(ref(f"f{i % 500}", _fuzz_map(rng)), timeout=30)
                    return "OK"
                except grpc.aio.AioRpcError as exc:
                    return exc.code().name

            codes.update(await asyncio.gather(*(call(start_at + i) for i in range(200))))
        print(f"3. 10,000 fuzzed maps: {dict(codes)}; RSS {before:.0f} → {rss_mb():.0f} MB")

        before = rss_mb()
        for start_at in range(0, 50_000, 500):
            await asyncio.gather(
                *(timed(stub, ref(f"once-{start_at + i}", LEGIT)) for i in range(500))
            )
        url = f"http://127.0.0.1:{running.metrics_port}/metrics"
        scrape_started = time.perf_counter()
        scrape = asyncio.create_task(
            asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=60).read())
        )
        during_scrape = []
        while not scrape.done():
            during_scrape.append(await timed(stub, ref("legit", LEGIT)))
        body = await scrape
        print(
            f"4. 50,000 triggers seen once: RSS {before:.0f} → {rss_mb():.0f} MB; /metrics "
            f"{len(body) / 1e6:.2f} MB in {(time.perf_counter() - scrape_started) * 1000:.0f} ms; "
            f"a legitimate call during the scrape: p50 {statistics.median(during_scrape):.2f} ms, "
            f"max {max(during_scrape, default=0):.2f} ms "
            f"({len(during_scrape)} calls); triggers kept {len(service._caches.targets)}"
        )
    await running.stop(0)


async def flood(port: int) -> None:
    options = [("grpc.max_send_message_length", 64 * 2**20)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        for round_ in range(2):
            hostile = [
                ref(f"h{i}", {**LEGIT, "k" * 160_000 + f"{round_}-{i}": "1"}) for i in range(200)
            ]
            await asyncio.gather(*(timed(stub, r) for r in hostile))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        asyncio.run(flood(int(sys.argv[2])))
    else:
        asyncio.run(main())
