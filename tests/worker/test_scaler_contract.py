"""The contract between the worker and the scaler, read the way KEDA's calls read it: what a
worker holds is what the scaler's ``includeUnacked`` counts as in flight, and what waits (every
priority band) is what it counts as pending. Real worker, real stand-in, the scaler's own Redis
reader on the same private Redis.
"""

from __future__ import annotations

import asyncio

import pytest

from scaler.brokers.redis import RedisBrokerReader
from scaler.ports import Depth, QueueSpec
from tests.worker.conftest import Broker, Processes, wait_until
from worker.client import Client

pytestmark = [pytest.mark.redis]


def read(broker: Broker, spec: QueueSpec) -> Depth:
    async def main() -> Depth:
        reader = RedisBrokerReader(broker.url, timeout_s=2.0)
        try:
            return await reader.read(spec)
        finally:
            await reader.close()

    return asyncio.run(main())


@pytest.mark.parametrize("prefix", ["", "tenant-a:"])
def test_in_flight_is_what_the_workers_hold_and_pending_every_band(
    redis_broker: Broker, processes: Processes, prefix: str
) -> None:
    standin = processes.standin(decode_seconds_per_token=0.1)
    processes.worker(redis_broker, "--concurrency", "3", "--queues", "m1,m1-batch",
                     "--key-prefix", prefix, vllm_url=standin.url)  # fmt: skip
    client = Client(redis_broker.url, redis_broker.backend, key_prefix=prefix)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 30}  # 3 s each
    task_ids = [
        client.submit("m1", body, priority=priority, queue=queue)
        for priority in (0, 3, 5, 9)
        for queue in ("m1", "m1-batch")
    ]
    wait_until("the replica to hold three requests", lambda: standin.gauge(
        "vllm:num_requests_running") == 3)  # fmt: skip

    # The trigger's defaults (priorityLevels 0,3,6,9), its queues and keyPrefix as the worker's.
    spec = QueueSpec(queues=("m1", "m1-batch"), include_unacked=True, key_prefix=prefix)
    assert read(redis_broker, spec) == Depth(pending=5, in_flight=3)
    if prefix:
        # Every key is the tenant's: nothing under the bare names.
        bare = QueueSpec(queues=("m1", "m1-batch"), include_unacked=True)
        assert read(redis_broker, bare) == Depth(pending=0, in_flight=0)
    else:
        # kombu's own count of what waits agrees.
        assert redis_broker.pending("m1") + redis_broker.pending("m1-batch") == 5

    for task_id in task_ids:
        client.wait(task_id, timeout_s=60)
    assert read(redis_broker, spec) == Depth(pending=0, in_flight=0)
    client.close()
