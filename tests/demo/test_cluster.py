"""The demo's Deployment: replicas are real processes, started and stopped as a pod is.

A replica's worker starts only once its stand-in is warm (so the stand-in never answers it 503),
and a scale-down lets the worker finish the tasks in its hands before anything stops.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest

from demo.cluster import Deployment, ReplicaSpec
from tests.conftest import RedisServer
from worker.client import Client

pytestmark = pytest.mark.redis

DEADLINE_S = 60.0


def spec(redis_server: RedisServer) -> ReplicaSpec:
    # Time as it is (scale 1): a 1 s warm-up; a request of 2 output tokens holds a slot 1 s.
    return ReplicaSpec(
        model="m1",
        slots=2,
        warmup_s=1.0,
        time_scale=1.0,
        prefill_s=0.0,
        decode_s=0.5,
        broker_url=redis_server.url,
        result_backend=f"redis://127.0.0.1:{redis_server.port}/1",
    )


def standin_log(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(url + "/standin/log", timeout=5) as response:
        records: list[dict[str, object]] = json.loads(response.read())
    return records


def running(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("vllm:num_requests_running{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no running gauge")


async def until(what: str, check: object, deadline_s: float = DEADLINE_S) -> None:
    assert callable(check)
    end = time.monotonic() + deadline_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def submit(client: Client, n: int, tokens: int) -> list[str]:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens}
    return [client.submit("m1", body) for _ in range(n)]


def test_a_replica_serves_once_warm_and_drains_when_removed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    client = Client(redis_server.url, f"redis://127.0.0.1:{redis_server.port}/1")

    async def main() -> None:
        deployment = Deployment(spec(redis_server), tmp_path)
        try:
            # Three tasks wait before any replica exists; one replica is asked for.
            first = submit(client, 3, tokens=2)
            deployment.scale_to(1, time.monotonic())
            assert (deployment.desired, deployment.ready()) == (1, 0)
            replica = deployment.replicas[0]
            await until("the replica to be ready", lambda: replica.ready_s is not None)
            assert replica.worker_start_s is not None
            answers = [await asyncio.to_thread(client.wait, t, DEADLINE_S) for t in first]
            assert [a["usage"]["completion_tokens"] for a in answers] == [2, 2, 2]
            # The worker started after the warm-up: the stand-in never refused it.
            log = standin_log(replica.url)
            assert sorted(str(r["request_id"]) for r in log) == sorted(first)
            assert {r["status"] for r in log} == {200}
            # Two long tasks in the worker's hands (4 s each), then the replica is removed.
            held = submit(client, 2, tokens=8)
            await until("both tasks in the stand-in's slots", lambda: running(replica.url) == 2)
            deployment.scale_to(0, time.monotonic())
            assert deployment.desired == 0
            await deployment.close()
            assert replica.worker is not None
            assert replica.standin is not None
            assert replica.worker.returncode == 0  # a warm shutdown, not a kill
            assert replica.standin.returncode is not None
            # Both held tasks were finished before the worker left: nothing to redeliver.
            for task_id in held:
                assert client.poll(task_id).state == "SUCCESS"
            assert deployment.errors == []
        finally:
            await deployment.close()

    try:
        asyncio.run(main())
    finally:
        client.close()


def test_scaling_below_zero_is_refused(tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> None:
        deployment = Deployment(spec(redis_server), tmp_path)
        with pytest.raises(ValueError, match="replicas must be >= 0"):
            deployment.scale_to(-1, 0.0)

    asyncio.run(main())
