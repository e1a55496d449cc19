"""The worker end to end, on a private Redis and on RabbitMQ: real ``depthscale worker``
processes take real Celery tasks published by the client helper and call a real stand-in
replica over HTTP. Every task submitted is counted, and so is every request the replica saw.

Time here is the stand-in's: ``decode_seconds_per_token`` × ``max_tokens`` is how long a
request holds a slot, so "a request takes 2 s" below means ``max_tokens = 20`` at 0.1 s a token.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from tests.conftest import free_port
from tests.worker.conftest import Broker, Processes, wait_until
from worker.client import Client, RequestFailed

pytestmark = [pytest.mark.redis]

CHAT = "chat/completions"
# A deadline, not a pause: on a loaded CI machine a worker can take tens of seconds to start.
RESULT_WAIT_S = 120


def chat(max_tokens: int, text: str = "hello there") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}


def served(records: list[dict[str, object]], status: int = 200) -> Counter[str]:
    """How many times the stand-in answered ``status`` for each request id (task id)."""
    return Counter(str(r["request_id"]) for r in records if r["status"] == status)


def max_overlap(records: list[dict[str, object]]) -> int:
    """The most requests the stand-in held at once, from their start and end times."""
    events = sorted(
        [(float(str(r["start_s"])), 1) for r in records]
        + [(float(str(r["end_s"])), -1) for r in records],
        key=lambda event: (event[0], event[1]),
    )
    held = most = 0
    for _, step in events:
        held += step
        most = max(most, held)
    return most


def test_requests_are_answered_by_the_replica_with_the_workers_concurrency(
    broker: Broker, processes: Processes
) -> None:
    standin = processes.standin(decode_seconds_per_token=0.02)
    processes.worker(broker, "--concurrency", "4", vllm_url=standin.url)
    client = Client(broker.url, broker.backend)
    jobs = {}
    for i in range(16):
        endpoint = CHAT if i % 2 else "completions"
        body = chat(10 + i) if i % 2 else {"prompt": "once upon a time", "max_tokens": 10 + i}
        jobs[client.submit("m1", body, endpoint=endpoint, priority=i % 10)] = (endpoint, 10 + i)

    for task_id, (endpoint, max_tokens) in jobs.items():
        answer = client.wait(task_id, timeout_s=RESULT_WAIT_S)
        # The replica saw the task id as X-Request-Id and generated what was asked.
        prefix = "chatcmpl" if endpoint == CHAT else "cmpl"
        assert answer["id"] == f"{prefix}-{task_id}"
        assert answer["usage"]["completion_tokens"] == max_tokens
        assert client.poll(task_id).state == "SUCCESS"

    log = standin.log()
    assert served(log) == dict.fromkeys(jobs, 1)  # each exactly once
    # Four threads, prefetch 1: the replica held four requests at once, never more.
    assert max_overlap(log) == 4
    client.close()


def test_priority_nine_is_served_first(broker: Broker, processes: Processes) -> None:
    standin = processes.standin(decode_seconds_per_token=0.01)
    client = Client(broker.url, broker.backend)
    # Published before any worker runs, interleaved: 0, 5, 9, 0, 5, 9, ...
    by_priority = {0: [], 5: [], 9: []}  # type: dict[int, list[str]]
    for _ in range(4):
        for priority in (0, 5, 9):
            by_priority[priority].append(client.submit("m1", chat(2), priority=priority))
    assert broker.pending("m1") == 12

    processes.worker(broker, "--concurrency", "1", vllm_url=standin.url)
    for task_ids in by_priority.values():
        for task_id in task_ids:
            client.wait(task_id, timeout_s=RESULT_WAIT_S)

    order = [str(r["request_id"]) for r in standin.log()]
    # One thread, prefetch 1: strictly by priority band, first in first out within one.
    assert order == by_priority[9] + by_priority[5] + by_priority[0]
    client.close()


def test_tasks_wait_out_a_replica_that_is_not_up_then_warming(
    broker: Broker, processes: Processes
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes.worker(
        broker,
        "--concurrency", "4", "--retry-base-seconds", "0.1", "--retry-max-seconds", "0.4",
        "--max-retries", "100", "--connect-timeout-seconds", "1",
        vllm_url=url,
    )  # fmt: skip
    client = Client(broker.url, broker.backend)
    task_ids = [client.submit("m1", chat(3)) for _ in range(4)]
    # Nothing listens yet: connection refused, retried. Wait until every task has been refused
    # at least once (the worker logs each retry with its reason).
    worker_log = processes.tmp_path / "worker-0.log"
    wait_until(
        "every task to be retried after a refused connection",
        lambda: all(f"[{task_id}] retry" in worker_log.read_text() for task_id in task_ids),
    )
    assert "Connection refused" in worker_log.read_text()

    # The replica comes up, still loading for 1.5 s: 503, retried.
    standin = processes.standin(port=port, warmup_seconds=1.5)
    for task_id in task_ids:
        assert client.wait(task_id, timeout_s=RESULT_WAIT_S)["usage"]["completion_tokens"] == 3

    log = standin.log()
    assert served(log) == dict.fromkeys(task_ids, 1)
    assert sum(served(log, 503).values()) >= 1  # some retries met the warm-up
    client.close()


def test_a_request_error_fails_at_once_and_is_not_retried(
    broker: Broker, processes: Processes
) -> None:
    standin = processes.standin(max_model_len=100)
    processes.worker(broker, "--concurrency", "2", "--retry-base-seconds", "0.1",
                     vllm_url=standin.url)  # fmt: skip
    client = Client(broker.url, broker.backend)
    too_long = client.submit("m1", chat(500))
    streamed = client.submit("m1", {**chat(5), "stream": True})
    fine = client.submit("m1", chat(5))

    with pytest.raises(RequestFailed) as caught:
        client.wait(too_long, timeout_s=RESULT_WAIT_S)
    assert caught.value.error_type == "Rejected"
    assert "replica answered 400" in caught.value.message
    assert "maximum context length is 100 tokens" in caught.value.message

    with pytest.raises(RequestFailed) as caught:
        client.wait(streamed, timeout_s=RESULT_WAIT_S)
    assert caught.value.error_type == "Rejected"
    assert caught.value.message.startswith("stream:")

    assert client.wait(fine, timeout_s=RESULT_WAIT_S)["usage"]["completion_tokens"] == 5
    status = client.poll(too_long)
    assert status.state == "FAILURE"
    assert status.error is not None
    assert status.error.startswith("Rejected: replica answered 400")

    log = standin.log()
    assert served(log, 400) == {too_long: 1}  # asked once, never again
    assert streamed not in served(log, 200) + served(log, 400)  # refused before any call
    assert broker.pending("m1") == 0
    client.close()


def test_retries_give_up_with_a_clear_error(redis_broker: Broker, processes: Processes) -> None:
    port = free_port()
    processes.worker(
        redis_broker, "--retry-base-seconds", "0.05", "--retry-max-seconds", "0.1",
        "--max-retries", "3", vllm_url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    client = Client(redis_broker.url, redis_broker.backend)
    task_id = client.submit("m1", chat(3))
    with pytest.raises(RequestFailed) as caught:
        client.wait(task_id, timeout_s=RESULT_WAIT_S)
    assert caught.value.error_type == "Unavailable"
    assert "Connection refused" in caught.value.message
    assert "gave up after 3 retries" in caught.value.message
    client.close()


def test_sigterm_drains_the_tasks_in_hand_and_leaves_the_rest_queued(
    broker: Broker, processes: Processes
) -> None:
    standin = processes.standin(decode_seconds_per_token=0.1)
    first = processes.worker(broker, "--concurrency", "3", vllm_url=standin.url)
    client = Client(broker.url, broker.backend)
    task_ids = [client.submit("m1", chat(40)) for _ in range(8)]  # 4 s each
    wait_until("the replica to hold three requests", lambda: standin.gauge(
        "vllm:num_requests_running") == 3)  # fmt: skip

    # Scale-down: SIGTERM, as the kubelet sends it. The worker stops taking tasks, finishes the
    # three it holds, and exits 0.
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0, first.log()
    assert "Warm shutdown" in first.log()
    done = [t for t in task_ids if client.poll(t).state == "SUCCESS"]
    assert len(done) == 3
    assert broker.pending("m1") == 5  # the rest went back to (or never left) the queue

    processes.worker(broker, "--concurrency", "3", vllm_url=standin.url)
    for task_id in task_ids:
        client.wait(task_id, timeout_s=60)
    assert served(standin.log()) == dict.fromkeys(task_ids, 1)  # nothing lost, nothing twice
    assert broker.pending("m1") == 0
    client.close()


def test_sigkill_mid_task_loses_nothing(broker: Broker, processes: Processes) -> None:
    standin = processes.standin(decode_seconds_per_token=0.1)
    # Redis redelivers an unacked task after the visibility timeout: short here (the longest
    # hold is 0.2 + 1 + 3 s), swept every second.
    timing = ["--max-generation-seconds", "3", "--connect-timeout-seconds", "1",
              "--retry-base-seconds", "0.1", "--retry-max-seconds", "0.2",
              "--visibility-timeout", "6"]  # fmt: skip
    doomed = processes.worker(broker, "--concurrency", "2", *timing, vllm_url=standin.url)
    client = Client(broker.url, broker.backend)
    task_ids = [client.submit("m1", chat(15)) for _ in range(6)]  # 1.5 s each
    wait_until("the replica to hold two requests", lambda: standin.gauge(
        "vllm:num_requests_running") == 2)  # fmt: skip

    doomed.process.send_signal(signal.SIGKILL)  # an OOM kill, a node gone: no shutdown at all
    doomed.process.wait(timeout=10)
    processes.worker(broker, "--concurrency", "2", *timing, vllm_url=standin.url)

    answers = {task_id: client.wait(task_id, timeout_s=60) for task_id in task_ids}
    assert all(answer["usage"]["completion_tokens"] == 15 for answer in answers.values())
    counts = served(standin.log())
    assert set(counts) == set(task_ids)
    # At least once: only the two in flight at the kill may have run twice.
    assert sum(counts.values()) <= len(task_ids) + 2
    assert broker.pending("m1") == 0
    client.close()


def test_sigterm_returns_retries_waiting_out_their_countdown(
    broker: Broker, processes: Processes
) -> None:
    # No replica: every task is refused and retried with a countdown of 4-8 s, which the worker
    # holds (reserved, unacked) while it waits.
    port = free_port()
    waiting = processes.worker(
        broker, "--concurrency", "4", "--retry-base-seconds", "8", "--retry-max-seconds", "8",
        vllm_url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    client = Client(broker.url, broker.backend)
    task_ids = [client.submit("m1", chat(3)) for _ in range(4)]
    wait_until(
        "every task to be waiting for its retry",
        # Received twice: the first delivery, then the retry's own message.
        lambda: all(waiting.log().count(f"[{task_id}] received") == 2 for task_id in task_ids),
    )
    assert broker.pending("m1") == 0  # all four are in the worker's hands

    # SIGTERM: no task is running, so the worker exits at once, and the four retries go back.
    waiting.process.send_signal(signal.SIGTERM)
    assert waiting.process.wait(timeout=15) == 0, waiting.log()
    assert broker.pending("m1") == 4

    standin = processes.standin(port=port)
    processes.worker(broker, "--concurrency", "4", vllm_url=standin.url)
    for task_id in task_ids:
        assert client.wait(task_id, timeout_s=60)["usage"]["completion_tokens"] == 3
    assert served(standin.log()) == dict.fromkeys(task_ids, 1)
    client.close()


def test_a_replica_dying_mid_request_loses_nothing(
    redis_broker: Broker, processes: Processes
) -> None:
    port = free_port()
    first = processes.standin(port=port, decode_seconds_per_token=0.1)
    processes.worker(
        redis_broker, "--concurrency", "4", "--retry-base-seconds", "0.2",
        "--retry-max-seconds", "0.5", "--max-retries", "100", vllm_url=first.url,
    )  # fmt: skip
    client = Client(redis_broker.url, redis_broker.backend)
    task_ids = [client.submit("m1", chat(30)) for _ in range(4)]  # 3 s each
    wait_until("the replica to hold four requests", lambda: first.gauge(
        "vllm:num_requests_running") == 4)  # fmt: skip

    first.process.kill()  # the vLLM container crashes: connections reset mid-generation
    first.process.wait(timeout=10)
    second = processes.standin(port=port, decode_seconds_per_token=0.01)  # restarted
    for task_id in task_ids:
        assert client.wait(task_id, timeout_s=60)["usage"]["completion_tokens"] == 30
    assert served(second.log()) == dict.fromkeys(task_ids, 1)
    client.close()
