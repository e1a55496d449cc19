"""Replica counts from watches: API requests, memory and latency for N ScaledObjects.

    .venv/bin/python benchmarks/kube_watch.py               # 1,000 ScaledObjects, 1 namespace
    .venv/bin/python benchmarks/kube_watch.py --objects 1000 --namespaces 10

The API server is the tests' fake (tests/scaler/test_kube.py: real HTTP on loopback, lists and
chunked watch streams), holding N ScaledObjects each targeting its own Deployment. The scaler
side is ``KubeReplicaSource`` as shipped. What it prints:

- API requests per ScaledObject per minute: a minute of evaluations (12 rounds of ``counts`` for
  every ScaledObject, the service's 5 s interval) after the first round, counted at the server;
  and what the watches themselves cost (lightkube re-opens each watch when the server ends it,
  every ``timeoutSeconds`` = 300 s);
- memory the mirror keeps for N targets (its dicts, names and values, deep ``sys.getsizeof``),
  and the process's RSS growth over the first round (lists decoded, watches opened);
- a count's latency (p50 / p99) from the mirror, and the first (cold) round's, which waits for
  the lists;
- events: N Deployment status changes made at once, and how long until every one is applied
  (the watch keeping up with a scale-out of the whole fleet).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaler.kube import KubeReplicaSource, ReplicaCounts
from scaler.kube_watch import Informer
from tests.scaler.test_kube import FakeApi, _serve, scaled_object, workload

ROUNDS_PER_MINUTE = 12  # evaluations per minute at the service's default 5 s interval
POLLING_BEFORE = 12.2  # the polling client: a GET per 5 s, the ScaledObject again every 300 s


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(api: FakeApi, objects: int, namespaces: int) -> list[tuple[str, str]]:
    keys = []
    for i in range(objects):
        ns = f"models-{i % namespaces}"
        so = scaled_object(f"m{i}", f"m{i}-vllm")
        so["metadata"]["namespace"] = ns
        api.put(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects", so)
        deploy = workload(3, 3, 2, name=f"m{i}-vllm")
        deploy["metadata"]["namespace"] = ns
        api.put(f"/apis/apps/v1/namespaces/{ns}/deployments", deploy)
        keys.append((ns, f"m{i}"))
    return keys


def mirror_bytes(src: KubeReplicaSource, namespaces: set[str]) -> int:
    """Deep size of what the watches keep: each mirror's dict, names and values."""
    total = 0
    for ns in namespaces:
        for kind in ("ScaledObject", "Deployment", "StatefulSet"):
            informer = src.informer(ns, kind)
            if informer is None:
                continue
            total += sys.getsizeof(informer.items)
            for name, value in informer.items.items():
                total += sys.getsizeof(name) + sys.getsizeof(value)
                total += sum(
                    sys.getsizeof(getattr(value, f)) for f in getattr(value, "__slots__", ())
                )
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure(api: FakeApi, keys: list[tuple[str, str]], namespaces: int) -> None:
    src = KubeReplicaSource(api.url, token="bench", timeout_s=30.0)
    objects = len(keys)
    try:
        rss_before = rss_mb()
        started = time.perf_counter()
        cold = await asyncio.gather(*(src.counts(ns, name) for ns, name in keys))
        cold_s = time.perf_counter() - started
        assert all(c is not None for c in cold), "every count known after the first round"
        gc.collect()
        rss_after = rss_mb()
        mirror_mb = mirror_bytes(src, {ns for ns, _ in keys}) / 1e6

        # Wait for every watch to be open before counting requests.
        for ns in {ns for ns, _ in keys}:
            for kind in ("ScaledObject", "Deployment"):
                informer = src.informer(ns, kind)
                assert informer is not None
                await informer.wait_for(lambda i: i.watches >= 1)
        setup_requests = len(api.seen)

        latencies: list[float] = []
        for _ in range(ROUNDS_PER_MINUTE):
            for ns, name in keys:
                t = time.perf_counter()
                await src.counts(ns, name)
                latencies.append(time.perf_counter() - t)
        minute_requests = len(api.seen) - setup_requests

        # The whole fleet scales at once: every Deployment's status changes.
        started = time.perf_counter()
        last = ""
        for i, (ns, _) in enumerate(keys):
            deploy = workload(4, 4, 3, name=f"m{i}-vllm")
            deploy["metadata"]["namespace"] = ns
            last = api.put(f"/apis/apps/v1/namespaces/{ns}/deployments", deploy)
        for ns in {ns for ns, _ in keys}:
            informer = src.informer(ns, "Deployment")
            assert informer is not None
            await informer.wait_for(all_scaled)
        events_s = time.perf_counter() - started
        assert last

        watches_per_minute = 2 * namespaces * 60 / src.server_timeout_s
        print(f"{objects:,} ScaledObjects in {namespaces} namespace(s)")
        print(
            f"  API requests per ScaledObject per minute: {minute_requests / objects:.3f} "
            f"({minute_requests} requests in {ROUNDS_PER_MINUTE} rounds of counts); "
            f"before (polling): {POLLING_BEFORE}"
        )
        print(
            f"  the watches themselves: {setup_requests} requests to start "
            f"(a list and a watch per collection), then {watches_per_minute:.2f}/min re-opened "
            f"(computed: each watch ends after timeoutSeconds={src.server_timeout_s}) "
            f"= {watches_per_minute / objects:.5f} per ScaledObject per minute"
        )
        print(
            f"  memory: mirror {mirror_mb:.2f} MB ({mirror_mb * 1e6 / objects:.0f} B per "
            f"ScaledObject and its target); RSS +{rss_after - rss_before:.1f} MB over the "
            f"first round"
        )
        print(
            f"  a count from the mirror: p50 {statistics.median(latencies) * 1e6:.1f} µs, "
            f"p99 {percentile(latencies, 0.99) * 1e6:.1f} µs over {len(latencies):,}; "
            f"first round (lists) {cold_s * 1e3:.0f} ms for all {objects:,}"
        )
        print(
            f"  events: {objects:,} Deployment changes applied in {events_s * 1e3:.0f} ms "
            f"({objects / events_s:,.0f} events/s, fake server included)"
        )
    finally:
        await src.close()


def all_scaled(informer: Informer[Any]) -> bool:
    """Every Deployment of the mirror shows the scale-out (3 ready, 1 warming)."""
    return all(c == ReplicaCounts(3, 1) for c in informer.items.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=1)
    args = parser.parse_args()
    for api in _serve(FakeApi()):
        keys = fill(api, args.objects, args.namespaces)
        asyncio.run(measure(api, keys, args.namespaces))


if __name__ == "__main__":
    main()
