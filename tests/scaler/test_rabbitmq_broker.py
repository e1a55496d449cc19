"""The RabbitMQ broker reader against real Celery publishing: on the machine's RabbitMQ
(127.0.0.1:5672, vhost ``/``, queues of its own) and on a private node with the management plugin
(``rabbitmq_node``: a vhost per test, unacked counts, TLS, outages). Counts are checked against what
the test published and against kombu's own passive ``queue_declare``."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import grpc
import pytest
from celery import Celery
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import Connection, Queue
from kombu.utils.url import parse_url

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.brokers import check_broker_url, open_broker
from scaler.brokers.rabbitmq import (
    BrokerResponseError,
    QueueNotFound,
    RabbitMQBrokerReader,
    endpoint_from_url,
)
from scaler.cli import main
from scaler.metadata import MetadataError
from scaler.ports import BrokerTimeout, BrokerUnavailable, Depth, QueueSpec
from scaler.serve import BROKERS_ENV
from scaler.server import start
from scaler.service import ScalerService
from scaler.state_store import MemoryStateStore
from tests.conftest import IN_CI, RabbitMQNode, free_port, publish, run
from tests.scaler.fakes import Clock

pytestmark = pytest.mark.rabbitmq

SHARED_URL = "amqp://guest:guest@127.0.0.1:5672//"


def rabbit_app(url: str, max_priority: int | None = 10) -> Celery:
    """A Celery app on ``url`` whose queues are priority queues (``x-max-priority``), as
    ``task_queue_max_priority`` makes them."""
    # kombu hands every URL option to its Connection, which knows no ``management``: the
    # scaler's URL option stays out of Celery's own broker URL.
    app = Celery("depthscale-tests", broker=url.partition("?")[0], set_as_current=False)
    app.conf.task_queue_max_priority = max_priority
    # Publisher confirms: each publish returns once RabbitMQ has the message in its queue, so a
    # read on another connection right after sees it (without them nothing orders the two).
    app.conf.broker_transport_options = {"confirm_publish": True}
    app.conf.broker_connection_retry_on_startup = False
    return app


def read(url: str, spec: QueueSpec, timeout_s: float = 5.0) -> Depth:
    """One read by a fresh reader. The deadline is generous where the test is not about it: a
    busy CI machine can take more than a second to open the AMQP and HTTP connections."""

    async def main() -> Depth:
        reader = RabbitMQBrokerReader(url, timeout_s)
        try:
            return await reader.read(spec)
        finally:
            await reader.close()

    return run(main)


def declared_count(app: Celery, queue: str) -> int:
    """kombu's own count: a passive queue_declare's message_count."""
    with app.connection() as conn:
        return int(conn.default_channel.queue_declare(queue, passive=True).message_count)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@contextmanager
def reserved(app: Celery, queue: str, count: int) -> Iterator[Connection]:
    """A real kombu consumer that takes ``count`` tasks from ``queue`` and does not ack them (a
    Celery worker with acks_late running them). Leaving the block closes its connection, and
    RabbitMQ puts the tasks back in the queue."""
    conn = app.connection()
    conn.connect()
    got: list[Any] = []
    consumer = conn.Consumer(
        Queue(queue, no_declare=True),
        callbacks=[lambda body, message: got.append(message)],
        accept=["json"],
    )
    consumer.qos(prefetch_count=count)
    consumer.consume()
    try:
        while len(got) < count:
            conn.drain_events(timeout=5)
        yield conn
    finally:
        conn.release()


def wait_for_ready(node: RabbitMQNode, vhost: str, queue: str, ready: int) -> None:
    """Wait until the management API's statistics (refreshed every 100 ms on the private node)
    show ``ready`` messages in ``queue``: from then on they describe the queue as it is now."""
    path = f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    deadline = time.monotonic() + 15
    while True:
        stats = node.api("GET", path)
        if stats.get("messages_ready") == ready:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the management API never showed {ready} ready in {queue}")
        time.sleep(0.05)


# ---- the machine's RabbitMQ: pending, exactly kombu's count --------------------------------------


@pytest.fixture(scope="module")
def shared_rabbitmq() -> str:
    """The machine's RabbitMQ on 127.0.0.1:5672 (guest/guest); every test uses queues of its
    own and deletes them."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        message = "no RabbitMQ on 127.0.0.1:5672"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_URL


def test_pending_is_every_priority_of_real_celery_tasks(shared_rabbitmq: str) -> None:
    app = rabbit_app(shared_rabbitmq)
    fast, batch, big = unique("llama-3-8b"), unique("llama-3-8b-batch"), unique("llama-3-70b")
    jobs = [(fast, p) for p in (0, 0, 2, 3, 5, 9, 9)] + [(batch, p) for p in (6, 8, 1)]
    jobs += [(big, p) for p in (4, 7, 9)]
    try:
        publish(app, jobs)
        depth_8b = read(shared_rabbitmq, QueueSpec((fast, batch)))
        depth_70b = read(shared_rabbitmq, QueueSpec((big,)))
        assert depth_8b == Depth(pending=declared_count(app, fast) + declared_count(app, batch))
        assert depth_8b.pending == 10  # every priority is in the one queue
        assert depth_70b == Depth(pending=3)
    finally:
        with app.connection() as conn:
            for queue in (fast, batch, big):
                conn.default_channel.queue_delete(queue)


# ---- the private node: vhosts, priorities, in flight -------------------------------------------


def test_celery_declares_priority_queues_and_all_priorities_count(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    app = rabbit_app(url, max_priority=9)
    publish(app, [("q", p) for p in range(10)] * 2)
    info = rabbitmq_node.api("GET", f"/api/queues/{rabbitmq_vhost}/q")
    assert info["arguments"] == {"x-max-priority": 9}  # a native priority queue
    assert read(url, QueueSpec(("q",))) == Depth(pending=20)


@pytest.mark.parametrize("vhost", ["prod/eu", "a b", "modèle", "%2F-not-root"])
def test_vhost_names_are_percent_decoded_as_kombu_does(
    rabbitmq_node: RabbitMQNode, vhost: str
) -> None:
    rabbitmq_node.add_vhost(vhost)
    try:
        url = rabbitmq_node.url(quote(vhost, safe=""))
        app = rabbit_app(url)
        publish(app, [("q", 1)] * 3)
        assert declared_count(app, "q") == 3  # kombu reached the same vhost
        assert read(url, QueueSpec(("q",))) == Depth(pending=3)
        # and the management API's path carries the vhost percent-encoded
        wait_for_ready(rabbitmq_node, vhost, "q", 3)
        assert read(url, QueueSpec(("q",), include_unacked=True)) == Depth(3, in_flight=0)
    finally:
        rabbitmq_node.delete_vhost(vhost)


@pytest.mark.parametrize("path", ["/", "//", "/%2F", ""])
def test_the_default_vhost_however_it_is_spelt(rabbitmq_node: RabbitMQNode, path: str) -> None:
    queue = unique("default-vhost")
    url = f"amqp://guest:guest@127.0.0.1:{rabbitmq_node.amqp_port}{path}"
    url += f"?management={rabbitmq_node.management}"
    app = rabbit_app(url)
    try:
        publish(app, [(queue, 0)] * 2)
        assert read(url, QueueSpec((queue,))) == Depth(pending=2)
        if path == "//":  # once (a new queue's first statistics take seconds to appear)
            wait_for_ready(rabbitmq_node, "/", queue, 2)  # the API's path: /api/queues/%2F/...
            assert read(url, QueueSpec((queue,), include_unacked=True)) == Depth(2, in_flight=0)
    finally:
        with app.connection() as conn:
            conn.default_channel.queue_delete(queue)


def test_a_missing_queue_is_an_error_until_celery_declares_it(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    app = rabbit_app(url)
    spec = QueueSpec(("llama-3-8b",))

    async def scenario() -> tuple[object, Depth, Depth]:
        reader = RabbitMQBrokerReader(url)
        try:
            missing: object = await reader.read(spec)
        except BrokerUnavailable as exc:
            missing = exc
        publish(app, [("llama-3-8b", 3)] * 2)  # the first task declares the queue
        first = await reader.read(spec)  # the channel the 404 closed is replaced
        publish(app, [("llama-3-8b", 5)])
        second = await reader.read(spec)
        await reader.close()
        return missing, first, second

    missing, first, second = run(scenario())
    assert isinstance(missing, QueueNotFound)
    assert f"queue 'llama-3-8b' does not exist in vhost '{rabbitmq_vhost}'" in str(missing)
    assert (first, second) == (Depth(pending=2), Depth(pending=3))


def test_one_missing_queue_among_several_is_an_error_not_a_partial_sum(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    publish(rabbit_app(url), [("here", 0)] * 4)
    with pytest.raises(QueueNotFound, match="'not-here'"):
        read(url, QueueSpec(("here", "not-here")))


def test_reserved_tasks_are_in_flight_through_the_management_api(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    app = rabbit_app(url)
    publish(app, [("llama-3-8b", p) for p in range(8)] + [("llama-3-70b", 5)] * 4)
    spec_8b = QueueSpec(("llama-3-8b",), include_unacked=True)
    both = QueueSpec(("llama-3-8b", "llama-3-70b"), include_unacked=True)

    with reserved(app, "llama-3-8b", 3), reserved(app, "llama-3-70b", 1):
        wait_for_ready(rabbitmq_node, rabbitmq_vhost, "llama-3-8b", 5)
        wait_for_ready(rabbitmq_node, rabbitmq_vhost, "llama-3-70b", 3)
        depth_8b = read(url, spec_8b)
        depth_both = read(url, both)
        ready_8b = declared_count(app, "llama-3-8b")

    assert depth_8b == Depth(pending=ready_8b, in_flight=3)
    assert depth_8b.pending == 5
    assert depth_both == Depth(pending=8, in_flight=4)
    # The consumers' connections closed without acking: RabbitMQ requeued the tasks.
    wait_for_ready(rabbitmq_node, rabbitmq_vhost, "llama-3-8b", 8)
    assert read(url, spec_8b) == Depth(pending=8, in_flight=0)


def test_quorum_queues_count_the_same(rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str) -> None:
    # Celery's quorum queues (task_create_missing_queue_type, task_default_queue_type; no
    # x-max-priority on RabbitMQ 3.x quorum queues): counted as classic queues are.
    url = rabbitmq_node.url(rabbitmq_vhost)
    app = rabbit_app(url, max_priority=None)
    app.conf.task_create_missing_queue_type = "quorum"
    publish(app, [("q", 0)] * 7)
    info = rabbitmq_node.api("GET", f"/api/queues/{rabbitmq_vhost}/q")
    assert info["type"] == "quorum"
    with reserved(app, "q", 3):
        wait_for_ready(rabbitmq_node, rabbitmq_vhost, "q", 4)
        depth = read(url, QueueSpec(("q",), include_unacked=True))
        ready = declared_count(app, "q")
    assert depth == Depth(pending=ready, in_flight=3)
    assert ready == 4


def test_in_flight_without_a_management_api_is_a_config_error_not_zero(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = f"amqp://guest:pw-XYZZY@127.0.0.1:{rabbitmq_node.amqp_port}/{rabbitmq_vhost}"
    with pytest.raises(MetadataError, match="no management API configured") as info:
        read(url, QueueSpec(("q",), include_unacked=True))
    assert info.value.key == "includeUnacked"
    assert "127.0.0.1" not in str(info.value)  # KEDA sees it: no location, no user
    assert "guest" not in str(info.value)
    assert "XYZZY" not in str(info.value)


def test_a_redis_key_prefix_is_refused_for_rabbitmq(rabbitmq_node: RabbitMQNode) -> None:
    with pytest.raises(MetadataError, match="keyPrefix"):
        read(rabbitmq_node.url(), QueueSpec(("q",), key_prefix="tenant:"))


# ---- permissions: the least a scaler's user needs ----------------------------------------------


@pytest.fixture
def scaler_user(rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str) -> Iterator[str]:
    """A user as docs/rabbitmq.md asks for: the 'management' tag, and only read permission on
    the vhost (configure and write match nothing). Its password: 'p@ss/w:rd %'."""
    name = unique("scaler")
    rabbitmq_node.api(
        "PUT", f"/api/users/{name}", {"password": "p@ss/w:rd %", "tags": "management"}
    )
    rabbitmq_node.api(
        "PUT",
        f"/api/permissions/{rabbitmq_vhost}/{name}",
        {"configure": "^$", "write": "^$", "read": ".*"},
    )
    try:
        yield name
    finally:
        rabbitmq_node.api("DELETE", f"/api/users/{name}")


def test_a_read_only_management_user_is_enough(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str, scaler_user: str
) -> None:
    app = rabbit_app(rabbitmq_node.url(rabbitmq_vhost))
    publish(app, [("q", 1)] * 5)
    url = rabbitmq_node.url(rabbitmq_vhost, user=scaler_user, password=quote("p@ss/w:rd %", ""))
    with reserved(app, "q", 2):
        wait_for_ready(rabbitmq_node, rabbitmq_vhost, "q", 3)
        assert read(url, QueueSpec(("q",), include_unacked=True)) == Depth(pending=3, in_flight=2)


def test_a_user_without_the_management_tag_is_refused_by_the_api(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str, scaler_user: str
) -> None:
    publish(rabbit_app(rabbitmq_node.url(rabbitmq_vhost)), [("q", 1)])
    rabbitmq_node.api("PUT", f"/api/users/{scaler_user}", {"password": "p@ss/w:rd %", "tags": ""})
    url = rabbitmq_node.url(rabbitmq_vhost, user=scaler_user, password=quote("p@ss/w:rd %", ""))
    assert read(url, QueueSpec(("q",))) == Depth(pending=1)  # AMQP alone needs no tag
    with pytest.raises(BrokerUnavailable, match=r"refused the user \(401\).*'management'") as info:
        read(url, QueueSpec(("q",), include_unacked=True))
    assert "w:rd" not in str(info.value)


def test_a_wrong_password_is_unavailable_and_not_echoed(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = f"amqp://guest:wrong-pw-QUUX@127.0.0.1:{rabbitmq_node.amqp_port}/{rabbitmq_vhost}"
    with pytest.raises(BrokerUnavailable, match="refused the login") as info:
        read(url, QueueSpec(("q",)))
    assert "QUUX" not in str(info.value)
    assert "guest:***@127.0.0.1" in str(info.value)


def test_a_vhost_that_does_not_exist_is_unavailable(rabbitmq_node: RabbitMQNode) -> None:
    with pytest.raises(BrokerUnavailable, match="no-such-vhost"):
        read(rabbitmq_node.url("no-such-vhost"), QueueSpec(("q",)))


# ---- failures: never a made-up 0 ---------------------------------------------------------------


def test_a_closed_port_is_unavailable_at_once() -> None:
    url = f"amqp://scaler:s3cr%40t-pw@127.0.0.1:{free_port()}//"
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        read(url, QueueSpec(("q",)))
    elapsed = time.monotonic() - started
    assert not isinstance(info.value, BrokerTimeout)
    assert elapsed < 1.0  # refused at once, far from the 5 s deadline
    assert "s3cr" not in str(info.value)
    assert "scaler:***@127.0.0.1" in str(info.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung broker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_hung_broker_times_out_within_the_deadline(silent_port: int) -> None:
    url = f"amqp://guest:hung-pw-FROB@127.0.0.1:{silent_port}//"
    started = time.monotonic()
    with pytest.raises(BrokerTimeout, match=r"did not answer within 1 s") as info:
        read(url, QueueSpec(("q",)), timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert 0.95 < elapsed < 2.0
    assert "FROB" not in str(info.value)


def test_a_hung_management_api_times_out(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str, silent_port: int
) -> None:
    publish(rabbit_app(rabbitmq_node.url(rabbitmq_vhost)), [("q", 0)])
    url = (
        f"amqp://guest:guest@127.0.0.1:{rabbitmq_node.amqp_port}/{rabbitmq_vhost}"
        f"?management=http://127.0.0.1:{silent_port}"
    )
    started = time.monotonic()
    with pytest.raises(BrokerTimeout):
        read(url, QueueSpec(("q",), include_unacked=True), timeout_s=0.5)
    assert time.monotonic() - started < 1.0
    assert read(url, QueueSpec(("q",))) == Depth(pending=1)  # AMQP alone answers


def test_node_killed_then_back_on_the_same_port(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    app = rabbit_app(url)
    publish(app, [("before", 0)] * 3)

    async def scenario() -> tuple[Depth, list[object], float, Depth]:
        reader = RabbitMQBrokerReader(url, timeout_s=2.0)
        before = await reader.read(QueueSpec(("before",)))
        rabbitmq_node.stop()  # the node dies under the open connection
        down: list[object] = []
        started = time.monotonic()
        for _ in range(2):
            try:
                down.append(await reader.read(QueueSpec(("before",))))
            except BrokerUnavailable as exc:
                down.append(exc)
        down_s = time.monotonic() - started
        rabbitmq_node.start()
        publish(app, [("after", 9)] * 2)
        after = await reader.read(QueueSpec(("after",)))  # the same reader reconnects
        await reader.close()
        return before, down, down_s, after

    before, down, down_s, after = run(scenario())
    assert before == Depth(pending=3)
    assert all(isinstance(d, BrokerUnavailable) for d in down)
    assert down_s < 1.0  # refused at once, not waited out to the 2 s deadline
    assert after == Depth(pending=2)


def test_a_frozen_node_times_out_then_the_next_read_succeeds(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    publish(rabbit_app(url), [("q", 4)] * 4)
    assert rabbitmq_node.process is not None
    group = os.getpgid(rabbitmq_node.process.pid)

    async def scenario() -> tuple[object, float, Depth]:
        reader = RabbitMQBrokerReader(url, timeout_s=1.0)
        await reader.read(QueueSpec(("q",)))  # a connection and a channel exist
        os.killpg(group, signal.SIGSTOP)  # the node hangs: the socket stays open, no answer
        started = time.monotonic()
        try:
            slow: object = await reader.read(QueueSpec(("q",)))
        except BrokerUnavailable as exc:
            slow = exc
        slow_s = time.monotonic() - started
        os.killpg(group, signal.SIGCONT)
        after = await reader.read(QueueSpec(("q",)))
        await reader.close()
        return slow, slow_s, after

    try:
        slow, slow_s, after = run(scenario())
    finally:
        os.killpg(group, signal.SIGCONT)
    assert isinstance(slow, BrokerTimeout)
    assert 0.95 < slow_s < 2.0
    assert after == Depth(pending=4)


# ---- concurrency and connection reuse ----------------------------------------------------------


def listed(node: RabbitMQNode, path: str, keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    """The names of the objects the management API lists under ``path`` that ``keep`` selects,
    once its statistics (refreshed every 100 ms) list at least one."""
    deadline = time.monotonic() + 10
    while True:
        found = [item["name"] for item in node.api("GET", path) if keep(item)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def scaler_connections(node: RabbitMQNode, vhost: str) -> list[str]:
    """The node's names (client address -> server address) of the readers' connections."""
    return listed(
        node,
        f"/api/vhosts/{vhost}/connections",
        lambda c: c.get("client_properties", {}).get("connection_name") == "depthscale-scaler",
    )


def open_connections_to(port: int) -> int:
    """Established TCP connections to 127.0.0.1:``port``, from the kernel's table (no lag, unlike
    the management API's statistics)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                count += remote_port == port and fields[3] == "01"  # 01: ESTABLISHED
    return count


def test_many_concurrent_reads_share_one_connection(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    app = rabbit_app(url)
    publish(app, [(f"q{i}", i % 10) for i in range(20) for _ in range(i + 1)])

    async def scenario() -> tuple[list[Depth], list[Depth], int, list[str]]:
        reader = RabbitMQBrokerReader(url, timeout_s=5.0, max_channels=4)
        try:
            first = await asyncio.gather(
                *(reader.read(QueueSpec((f"q{i % 20}",))) for i in range(200))
            )
            pairs = await asyncio.gather(
                *(reader.read(QueueSpec((f"q{i % 20}", f"q{(i + 1) % 20}"))) for i in range(100))
            )
            opened = open_connections_to(rabbitmq_node.amqp_port) - before
            connections = scaler_connections(rabbitmq_node, rabbitmq_vhost)
            channels = listed(
                rabbitmq_node,
                f"/api/vhosts/{rabbitmq_vhost}/channels",
                lambda ch: ch.get("connection_details", {}).get("name") in connections,
            )
            return list(first), list(pairs), opened, channels
        finally:
            await reader.close()

    before = open_connections_to(rabbitmq_node.amqp_port)
    first, pairs, opened, channels = run(scenario())
    assert [d.pending for d in first] == [i % 20 + 1 for i in range(200)]
    assert [d.pending for d in pairs] == [i % 20 + 1 + (i + 1) % 20 + 1 for i in range(100)]
    assert opened == 1  # 300 concurrent reads, one connection
    assert 1 <= len(channels) <= 4  # and at most max_channels channels on it


def test_reads_reuse_one_connection(rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str) -> None:
    url = rabbitmq_node.url(rabbitmq_vhost)
    publish(rabbit_app(url), [("q", 0)])

    async def scenario() -> tuple[list[str], int, int]:
        reader = RabbitMQBrokerReader(url)
        await reader.read(QueueSpec(("q",)))
        named = scaler_connections(rabbitmq_node, rabbitmq_vhost)
        after_one = open_connections_to(rabbitmq_node.amqp_port)
        for _ in range(20):
            await reader.read(QueueSpec(("q",)))
        after_many = open_connections_to(rabbitmq_node.amqp_port)
        await reader.close()
        return named, after_one - before, after_many - before

    before = open_connections_to(rabbitmq_node.amqp_port)
    named, after_one, after_many = run(scenario())
    assert len(named) == 1  # the node knows it by its name
    assert (after_one, after_many) == (1, 1)  # one connection, kept for every later read


# ---- TLS (amqps://) ------------------------------------------------------------------------------


def tls_url(node: RabbitMQNode, *, ca: bool = True, client: bool = True, extra: str = "") -> str:
    tls = node.tls_dir
    options = []
    if ca:
        options.append(f"ssl_ca_certs={tls / 'ca.pem'}")
    if client:
        options += [f"ssl_certfile={tls / 'client.pem'}", f"ssl_keyfile={tls / 'client.key'}"]
    if extra:
        options.append(extra)
    return f"amqps://guest:guest@127.0.0.1:{node.amqps_port}//?{'&'.join(options)}"


def test_tls_with_the_servers_ca_and_a_client_certificate(
    rabbitmq_node: RabbitMQNode,
) -> None:
    queue = unique("tls")
    app = rabbit_app(rabbitmq_node.url())
    try:
        publish(app, [(queue, 0)] * 2)
        assert read(tls_url(rabbitmq_node), QueueSpec((queue,))) == Depth(pending=2)
        unchecked = tls_url(rabbitmq_node, ca=False, extra="ssl_cert_reqs=none")
        assert read(unchecked, QueueSpec((queue,))) == Depth(pending=2)
    finally:
        with app.connection() as conn:
            conn.default_channel.queue_delete(queue)


def test_tls_refuses_an_unknown_server_certificate(rabbitmq_node: RabbitMQNode) -> None:
    with pytest.raises(BrokerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        read(tls_url(rabbitmq_node, ca=False), QueueSpec(("q",)))


def test_tls_without_the_client_certificate_the_node_requires(
    rabbitmq_node: RabbitMQNode,
) -> None:
    with pytest.raises(BrokerUnavailable) as info:
        read(tls_url(rabbitmq_node, client=False), QueueSpec(("q",)))
    assert not isinstance(info.value, BrokerTimeout)


def test_the_management_api_over_https_with_the_servers_ca(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    # Plain AMQP and an https management URL: the ssl_* options apply to the API's connection.
    app = rabbit_app(rabbitmq_node.url(rabbitmq_vhost))
    publish(app, [("q", 2)] * 6)
    base = f"amqp://guest:guest@127.0.0.1:{rabbitmq_node.amqp_port}/{rabbitmq_vhost}"
    https = f"management=https://127.0.0.1:{rabbitmq_node.https_port}"
    ca = f"ssl_ca_certs={rabbitmq_node.tls_dir / 'ca.pem'}"
    spec = QueueSpec(("q",), include_unacked=True)
    with reserved(app, "q", 2):
        wait_for_ready(rabbitmq_node, rabbitmq_vhost, "q", 4)
        assert read(f"{base}?{https}&{ca}", spec) == Depth(pending=4, in_flight=2)
        with pytest.raises(BrokerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            read(f"{base}?{https}", spec)


# ---- the URL -------------------------------------------------------------------------------------


def test_open_broker_picks_the_rabbitmq_reader() -> None:
    reader = open_broker("amqp://u:pw@rabbit.llm:5672/prod?management=http://rabbit.llm:15672")
    assert isinstance(reader, RabbitMQBrokerReader)
    assert reader.endpoint.vhost == "prod"
    assert reader.endpoint.management == "http://rabbit.llm:15672"
    run(reader.close())


def test_endpoint_from_url_reads_every_part() -> None:
    ep = endpoint_from_url(
        "amqps://scaler:p%40ss@rabbit.internal/celery%2Fprod?management=https://rabbit.internal:15671/"
        "&ssl_ca_certs=/etc/ca.pem&ssl_certfile=/etc/c.pem&ssl_keyfile=/etc/c.key"
        "&ssl_check_hostname=false"
    )
    assert (ep.host, ep.port, ep.username, ep.password, ep.vhost, ep.tls) == (
        "rabbit.internal", 5671, "scaler", "p@ss", "celery/prod", True,
    )  # fmt: skip
    assert ep.management == "https://rabbit.internal:15671"
    assert (ep.ca_file, ep.cert_file, ep.key_file) == ("/etc/ca.pem", "/etc/c.pem", "/etc/c.key")
    assert (ep.verify, ep.check_hostname) == (True, False)
    assert endpoint_from_url("pyamqp://rabbit").port == 5672  # Celery's spelling, kombu's guest
    assert endpoint_from_url("pyamqp://rabbit").username == "guest"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("amqp://h:99999/", "port", id="bad-port"),
        pytest.param("amqp:///vhost", "no host", id="no-host"),
        pytest.param("amqp://h/?heartbeat=5", "unknown option 'heartbeat'", id="unknown-option"),
        pytest.param("amqp://h/?ssl_ca_certs=/ca.pem", "need TLS", id="tls-option-without-tls"),
        pytest.param("amqps://h/?ssl_cert_reqs=maybe", "ssl_cert_reqs", id="bad-cert-reqs"),
        pytest.param("amqps://h/?ssl_keyfile=/k", "needs ssl_certfile", id="key-without-cert"),
        pytest.param("amqp://h/?management=ftp://h", "http:// or https://", id="mgmt-scheme"),
        pytest.param(
            "amqp://u:s3cret@h/?management=http://u:s3cret@h:15672",
            "must not carry credentials",
            id="mgmt-credentials",
        ),
        pytest.param("amqp://h/?management=http://h:1/?x=1", "no query", id="mgmt-query"),
        pytest.param("amqp://h/?management=http://h&management=http://g", "twice", id="twice"),
    ],
)
def test_bad_urls_are_refused_at_start_up_naming_the_part(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        check_broker_url(url)
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match=problem):
        RabbitMQBrokerReader(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("amqp://u:hunter2@rabbit//?heartbeat=1", "unknown option 'heartbeat'", id="option"),
        pytest.param(
            "amqp://u:hunter2@rabbit//?management=http://u:hunter2@rabbit:15672",
            "",  # refused, by serve's own URL check or the reader's, whichever comes first
            id="management-credentials",
        ),
    ],
)  # fmt: skip
def test_serve_refuses_a_bad_rabbitmq_url_in_one_line(url: str, message: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--broker", f"main={url}"], env={BROKERS_ENV: ""})
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: broker 'main': ")
    assert message in lines[0]
    assert "hunter2" not in result.output


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
_secrets = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=16
)


@settings(max_examples=300, deadline=None)
@given(
    user=_secrets,
    password=_secrets,
    vhost=_names,
    host=st.sampled_from(["rabbit", "rabbit.llm.svc", "10.0.0.7", "[::1]"]),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    tls=st.booleans(),
)
def test_any_encoded_url_parses_to_its_parts_as_kombu_reads_them(
    user: str, password: str, vhost: str, host: str, port: int | None, tls: bool
) -> None:
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    netloc += f":{port}" if port else ""
    url = f"{'amqps' if tls else 'amqp'}://{netloc}/{quote(vhost, safe='')}"
    ep = endpoint_from_url(url)
    assert (ep.username, ep.password, ep.vhost) == (user, password, vhost or "/")
    assert ep.host == host.strip("[]")
    assert ep.port == (port or (5671 if tls else 5672))
    kombu = parse_url(url)  # the oracle: what Celery's own connection would use
    assert (kombu["userid"], kombu["password"]) == (user, password)
    assert (kombu["virtual_host"] or "/") == ep.vhost


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(st.sampled_from("QXZJKqxzjk0123456789"), min_size=6, max_size=16),
    junk=st.sampled_from(
        ["?heartbeat=1", ":99999", "?ssl_ca_certs=/x", "?management=ftp://x", "?ssl_keyfile=k"]
    ),
)
def test_a_refused_url_never_shows_its_password(password: str, junk: str) -> None:
    url = (
        f"amqp://scaler:{password}@rabbit:99999/" if junk == ":99999" else
        f"amqp://scaler:{password}@rabbit/{junk}"
    )  # fmt: skip
    for parse in (check_broker_url, RabbitMQBrokerReader):
        with pytest.raises(ValueError, match="bad broker URL") as info:
            parse(url)
        assert password not in str(info.value)


@contextmanager
def management_answering(
    body: bytes, status: int = 200, paths: list[str] | None = None
) -> Iterator[int]:
    """A port whose HTTP server answers every GET with ``status`` and ``body``: a management API
    (or something in its place) that does not state a count. The paths asked for go to ``paths``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if paths is not None:
                paths.append(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        pytest.param(200, b'{"messages_unacknowledged": "7"}', BrokerResponseError, "is '7'", id="string"),
        pytest.param(200, b'{"messages_unacknowledged": -1}', BrokerResponseError, "is -1", id="negative"),
        pytest.param(200, b'{"messages_unacknowledged": true}', BrokerResponseError, "is True", id="bool"),
        pytest.param(200, b'{"name": "q"}', BrokerResponseError, "no messages_unacknowledged", id="absent"),
        pytest.param(200, b"<html>proxy</html>", BrokerResponseError, "no messages_unacknowledged", id="not-json"),
        pytest.param(404, b'{"error": "Object Not Found"}', QueueNotFound, "does not exist", id="404"),
        pytest.param(503, b"", BrokerUnavailable, "answered 503", id="503"),
    ],
)  # fmt: skip
def test_a_management_answer_that_is_not_a_count_is_an_error_never_zero(
    rabbitmq_node: RabbitMQNode,
    rabbitmq_vhost: str,
    status: int,
    body: bytes,
    error: type[Exception],
    message: str,
) -> None:
    publish(rabbit_app(rabbitmq_node.url(rabbitmq_vhost)), [("q", 0)])
    with management_answering(body, status) as port:
        url = (
            f"amqp://guest:guest@127.0.0.1:{rabbitmq_node.amqp_port}/{rabbitmq_vhost}"
            f"?management=http://127.0.0.1:{port}"
        )
        with pytest.raises(error, match=message):
            read(url, QueueSpec(("q",), include_unacked=True))


# ---- end to end: KEDA's calls over gRPC on a RabbitMQ broker -------------------------------------


def test_keda_sees_rabbitmq_depth_and_a_clear_error_for_unacked_without_the_api(
    rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str
) -> None:
    with_api = rabbitmq_node.url(rabbitmq_vhost)
    without_api = with_api.partition("?")[0]
    app = rabbit_app(with_api)
    publish(app, [("llama-8b", p % 10) for p in range(120)])
    meta = {"broker": "rabbit", "queues": "llama-8b", "preset": "seed"}

    async def main() -> tuple[float, bool, grpc.StatusCode, str]:
        service = ScalerService(
            {
                "rabbit": RabbitMQBrokerReader(with_api),
                "plain": RabbitMQBrokerReader(without_api),
            },
            MemoryStateStore(),
            clock=Clock(),
        )
        running = await start(service, port=0, metrics_port=0, host="127.0.0.1")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        stub = pb_grpc.ExternalScalerStub(channel)
        try:
            request = pb.ScaledObjectRef(name="llama-8b", namespace="prod", scalerMetadata=meta)
            [spec] = (await stub.GetMetricSpec(request, timeout=3)).metricSpecs
            values = await stub.GetMetrics(
                pb.GetMetricsRequest(scaledObjectRef=request, metricName=spec.metricName),
                timeout=3,
            )
            active = (await stub.IsActive(request, timeout=3)).result
            unacked = pb.ScaledObjectRef(
                name="llama-8b-plain",
                namespace="prod",
                scalerMetadata={**meta, "broker": "plain", "includeUnacked": "true"},
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.IsActive(unacked, timeout=3)
            return (
                values.metricValues[0].metricValueFloat,
                active,
                caught.value.code(),
                caught.value.details() or "",
            )
        finally:
            await channel.close()
            await running.stop(grace_s=0.5)

    value, active, code, details = run(main)
    assert (value, active) == (3.0, True)  # the seed rule: ceil(120 pending / 50) replicas
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "includeUnacked" in details
    assert "no management API configured" in details
    assert "127.0.0.1" not in details


def test_a_management_path_prefix_is_kept(rabbitmq_node: RabbitMQNode, rabbitmq_vhost: str) -> None:
    # management.path_prefix (e.g. behind an ingress): the API sits under /rabbitmq/api/...
    publish(rabbit_app(rabbitmq_node.url(rabbitmq_vhost)), [("q", 0)])
    paths: list[str] = []
    with management_answering(b'{"messages_unacknowledged": 4}', paths=paths) as port:
        url = (
            f"amqp://guest:guest@127.0.0.1:{rabbitmq_node.amqp_port}/{rabbitmq_vhost}"
            f"?management=http://127.0.0.1:{port}/rabbitmq/"
        )
        depth = read(url, QueueSpec(("q",), include_unacked=True))
    assert depth == Depth(pending=1, in_flight=4)
    assert paths == [f"/rabbitmq/api/queues/{rabbitmq_vhost}/q"]
