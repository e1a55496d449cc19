"""The Redis broker reader against real Celery publishing on a private redis-server, checked
against kombu's own count (``Channel._size``; without a key prefix also the passive
``queue_declare`` that AMQP clients use)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection, Queue

from scaler.brokers import open_broker
from scaler.brokers.redis import BrokerResponseError, RedisBrokerReader, list_keys
from scaler.brokers.resp import Endpoint, endpoint_from_url
from scaler.ports import BrokerTimeout, BrokerUnavailable, Depth, QueueSpec
from tests.conftest import RedisServer, free_port, require_binary

pytestmark = pytest.mark.redis

TASK = "depthscale.tests.infer"


def celery_app(url: str, **transport_options: Any) -> Celery:
    app = Celery("depthscale-tests", broker=url, set_as_current=False)
    app.conf.broker_transport_options = transport_options
    return app


def publish(app: Celery, jobs: list[tuple[str, int]]) -> None:
    """Real Celery publishing: one task per (queue, priority)."""
    with app.producer_or_acquire() as producer:
        for queue, priority in jobs:
            app.send_task(TASK, args=(queue,), queue=queue, priority=priority, producer=producer)


def kombu_size(app: Celery, queue: str) -> int:
    with app.connection() as conn:
        return int(conn.default_channel._size(queue))


def read(url: str, spec: QueueSpec, timeout_s: float = 1.0) -> Depth:
    async def main() -> Depth:
        reader = RedisBrokerReader(url, timeout_s)
        try:
            return await reader.read(spec)
        finally:
            await reader.close()

    return asyncio.run(main())


@contextmanager
def reserved(app: Celery, queue: str, count: int) -> Iterator[Connection]:
    """A real kombu consumer that takes ``count`` tasks from ``queue`` and does not ack them (as a
    prefetching Celery worker does). Leaving the block closes it: kombu restores them."""
    conn = app.connection()
    conn.connect()
    got: list[Any] = []
    consumer = conn.Consumer(
        Queue(queue), callbacks=[lambda body, message: got.append(message)], accept=["json"]
    )
    consumer.qos(prefetch_count=count)
    consumer.consume()
    try:
        while len(got) < count:
            conn.drain_events(timeout=5)
        yield conn
    finally:
        consumer.cancel()
        conn.release()


# ---- pending: exactly kombu's count ------------------------------------------------------------

JOBS = [
    ("llama-3-8b", 0), ("llama-3-8b", 0), ("llama-3-8b", 2), ("llama-3-8b", 3),
    ("llama-3-8b", 5), ("llama-3-8b", 9), ("llama-3-8b", 9),
    ("llama-3-8b-batch", 6), ("llama-3-8b-batch", 8), ("llama-3-8b-batch", 1),
    ("llama-3-70b", 4), ("llama-3-70b", 7), ("llama-3-70b", 9),
]  # fmt: skip


@pytest.mark.parametrize(
    ("prefix", "steps"),
    [
        pytest.param("", (0, 3, 6, 9), id="no-prefix-default-steps"),
        pytest.param("tenant-a:", (0, 3, 6, 9), id="prefix-default-steps"),
        pytest.param("tenant-b/", (0, 2, 4, 6, 8), id="prefix-custom-steps"),
    ],
)
def test_pending_matches_kombu_size(
    redis_server: RedisServer, prefix: str, steps: tuple[int, ...]
) -> None:
    options: dict[str, Any] = {"priority_steps": list(steps)}
    if prefix:
        options["global_keyprefix"] = prefix
    app = celery_app(redis_server.url, **options)
    publish(app, JOBS)

    spec_8b = QueueSpec(("llama-3-8b", "llama-3-8b-batch"), priority_steps=steps, key_prefix=prefix)
    spec_70b = QueueSpec(("llama-3-70b",), priority_steps=steps, key_prefix=prefix)

    assert read(redis_server.url, spec_8b).pending == (
        kombu_size(app, "llama-3-8b") + kombu_size(app, "llama-3-8b-batch")
    )
    assert read(redis_server.url, spec_70b).pending == kombu_size(app, "llama-3-70b")
    # and kombu's count is the number we published: the priority lists are all there.
    assert read(redis_server.url, spec_8b).pending == 10
    assert read(redis_server.url, spec_70b).in_flight is None


def test_without_prefix_matches_passive_queue_declare(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    publish(app, JOBS)
    with app.connection() as conn:
        declared = conn.default_channel.queue_declare("llama-3-70b", passive=True)
    assert read(redis_server.url, QueueSpec(("llama-3-70b",))).pending == declared.message_count


def test_a_prefixed_broker_is_invisible_without_the_prefix(redis_server: RedisServer) -> None:
    # The trap keyPrefix exists for: the same queue name read unprefixed finds nothing.
    app = celery_app(redis_server.url, global_keyprefix="celery-prod:")
    publish(app, JOBS)
    assert read(redis_server.url, QueueSpec(("llama-3-70b",))).pending == 0
    assert read(redis_server.url, QueueSpec(("llama-3-70b",), key_prefix="celery-prod:")).pending


def test_a_single_list_read_misses_priority_lists(redis_server: RedisServer) -> None:
    # What KEDA's built-in Redis scaler sees (one list) versus the whole queue.
    app = celery_app(redis_server.url)
    publish(app, JOBS)
    one_list = read(redis_server.url, QueueSpec(("llama-3-70b",), priority_steps=(0,))).pending
    assert one_list < read(redis_server.url, QueueSpec(("llama-3-70b",))).pending


QUEUES = ("q-a", "q-b", "q-c")


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    jobs=st.lists(st.tuples(st.sampled_from(QUEUES), st.integers(0, 9)), max_size=25),
    counted=st.sets(st.sampled_from(QUEUES), min_size=1),
)
def test_any_mix_of_priorities_and_queues_matches_kombu(
    redis_server: RedisServer, jobs: list[tuple[str, int]], counted: set[str]
) -> None:
    app = celery_app(redis_server.url, global_keyprefix="h:")
    with app.connection() as conn:
        conn.default_channel.client.flushdb()
    publish(app, jobs)
    spec = QueueSpec(tuple(sorted(counted)), key_prefix="h:")
    assert read(redis_server.url, spec).pending == sum(kombu_size(app, q) for q in counted)


# ---- in flight: reserved, not acked ---------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "tenant-a:"])
def test_reserved_tasks_count_as_in_flight_for_their_queue_only(
    redis_server: RedisServer, prefix: str
) -> None:
    app = (
        celery_app(redis_server.url, global_keyprefix=prefix)
        if prefix
        else celery_app(redis_server.url)
    )
    publish(app, [("llama-3-8b", p) for p in range(8)] + [("llama-3-70b", 5)] * 4)
    spec_8b = QueueSpec(("llama-3-8b",), key_prefix=prefix, include_unacked=True)
    spec_70b = QueueSpec(("llama-3-70b",), key_prefix=prefix, include_unacked=True)

    with reserved(app, "llama-3-8b", 3), reserved(app, "llama-3-70b", 1):
        depth_8b = read(redis_server.url, spec_8b)
        depth_70b = read(redis_server.url, spec_70b)
        size_8b = kombu_size(app, "llama-3-8b")

    assert depth_8b == Depth(pending=size_8b, in_flight=3)
    assert depth_8b.pending == 5
    assert depth_70b == Depth(pending=3, in_flight=1)
    # The consumers closed without acking: kombu put the tasks back in the lists.
    assert read(redis_server.url, spec_8b) == Depth(pending=8, in_flight=0)


def test_in_flight_for_a_queue_name_json_escapes(redis_server: RedisServer) -> None:
    # kombu stores the routing key JSON-escaped ("mod\u00e8le"): the script must decode it.
    app = celery_app(redis_server.url)
    publish(app, [("modèle-fr", 1), ("modèle-fr", 4), ('quote"queue', 0)])
    with reserved(app, "modèle-fr", 2), reserved(app, 'quote"queue', 1):
        depth = read(redis_server.url, QueueSpec(("modèle-fr",), include_unacked=True))
        quoted = read(redis_server.url, QueueSpec(('quote"queue',), include_unacked=True))
    assert depth == Depth(pending=0, in_flight=2)
    assert quoted == Depth(pending=0, in_flight=1)


# ---- failures: never a made-up 0 ---------------------------------------------------------------


def test_broker_killed_mid_run_then_back_on_the_same_port(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    spec = QueueSpec(("llama-3-8b",))

    async def scenario() -> list[object]:
        reader = RedisBrokerReader(redis_server.url, timeout_s=1.0)
        out: list[object] = []
        publish(app, [("llama-3-8b", 0)] * 3)
        out.append(await reader.read(spec))
        redis_server.stop()  # the broker dies under an open connection pool
        for _ in range(2):
            try:
                out.append(await reader.read(spec))
            except BrokerUnavailable as exc:
                out.append(exc)
        redis_server.start()  # back, empty (no persistence), same port
        publish(app, [("llama-3-8b", 9)] * 2)
        out.append(await reader.read(spec))
        await reader.close()
        return out

    before, down_1, down_2, after = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert before == Depth(pending=3)
    assert isinstance(down_1, BrokerUnavailable)
    assert isinstance(down_2, BrokerUnavailable)
    assert after == Depth(pending=2)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung broker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
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


def test_a_hung_broker_times_out_instead_of_waiting(silent_server: int) -> None:
    url = f"redis://127.0.0.1:{silent_server}/0"
    with pytest.raises(BrokerTimeout, match=r"did not answer within 0\.3 s"):
        read(url, QueueSpec(("llama-3-8b",)), timeout_s=0.3)


def test_a_paused_broker_times_out_then_the_next_read_succeeds(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    publish(app, [("q", 3)] * 4)
    spec = QueueSpec(("q",))

    async def scenario() -> tuple[object, Depth]:
        reader = RedisBrokerReader(redis_server.url, timeout_s=0.3)
        await reader.read(spec)  # a pooled connection exists
        with app.connection() as conn:
            conn.default_channel.client.execute_command("CLIENT", "PAUSE", "800", "ALL")
        try:
            slow: object = await reader.read(spec)
        except BrokerUnavailable as exc:
            slow = exc
        with app.connection() as conn:  # the pause ends
            conn.default_channel.client.execute_command("CLIENT", "UNPAUSE")
        after = await reader.read(spec)
        await reader.close()
        return slow, after

    slow, after = asyncio.run(scenario())
    assert isinstance(slow, BrokerTimeout)
    assert after == Depth(pending=4)


def test_refused_connection_error_hides_the_password() -> None:
    url = f"redis://scaler:s3cr%40t-pw@127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerUnavailable) as info:
        read(url, QueueSpec(("q",)))
    text = str(info.value)
    assert "s3cr" not in text
    assert "scaler:***@127.0.0.1" in text
    assert info.value.__cause__ is None or "s3cr" not in str(info.value.__cause__)


def test_a_key_of_the_wrong_type_is_an_error_not_zero(redis_server: RedisServer) -> None:
    app = celery_app(redis_server.url)
    with app.connection() as conn:
        conn.default_channel.client.set("llama-3-8b\x06\x163", "not a list")
    with pytest.raises(BrokerResponseError, match="WRONGTYPE"):
        read(redis_server.url, QueueSpec(("llama-3-8b",)))


# ---- small pure parts -------------------------------------------------------------------------


def test_list_keys_follow_kombu_naming() -> None:
    spec = QueueSpec(("a", "b"), priority_steps=(0, 5), key_prefix="p:")
    assert list_keys(spec) == ("p:a", "p:a\x06\x165", "p:b", "p:b\x06\x165")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "kafka://u:pw@kafka:9092", "unsupported broker URL scheme 'kafka'", id="kafka"
        ),
        pytest.param("http://u:pw@host/", "u:\\*\\*\\*@host", id="redacted"),
    ],
)
def test_open_broker_refuses_other_schemes(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        open_broker(url)
    assert ":pw@" not in str(info.value)


# ---- connection options: password, database, unix socket -------------------------------------------


@pytest.fixture
def locked_server(tmp_path: Any) -> Iterator[tuple[int, str]]:
    """A private redis-server with a password and a unix socket: (port, socket path)."""
    binary = require_binary("redis-server")
    port, sock = free_port(), str(tmp_path / "redis.sock")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--unixsocket", sock, "--requirepass", "pa ss/w@rd"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password="pa ss/w@rd")
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.rpush("q", b"a", b"b")  # db 0
        client.select(3)
        client.rpush("q", b"a", b"b", b"c")  # db 3
        client.close()
        yield port, sock
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("redis://:pa%20ss%2Fw%40rd@127.0.0.1:{port}", 2, id="password-db0"),
        pytest.param("redis://default:pa%20ss%2Fw%40rd@127.0.0.1:{port}/3", 3, id="user-db-path"),
        pytest.param("unix://:pa%20ss%2Fw%40rd@{sock}?db=3", 3, id="unix-socket"),
    ],
)
def test_password_database_and_unix_socket(
    locked_server: tuple[int, str], url: str, expected: int
) -> None:
    port, sock = locked_server
    assert read(url.format(port=port, sock=sock), QueueSpec(("q",))).pending == expected


def test_wrong_password_is_unavailable_and_not_echoed(locked_server: tuple[int, str]) -> None:
    port, _ = locked_server
    with pytest.raises(BrokerUnavailable, match="AUTH failed") as info:
        read(f"redis://:not-the-pw-xyz@127.0.0.1:{port}/0", QueueSpec(("q",)))
    assert "not-the-pw-xyz" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("redis://h:99999/0", "port", id="bad-port"),
        pytest.param("redis://h/zero", "database 'zero'", id="bad-db"),
        pytest.param("redis://h/0?health_check=1", "health_check", id="unknown-option"),
        pytest.param("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs", id="bad-tls-option"),
        pytest.param("unix://", "socket path", id="unix-without-path"),
        pytest.param("redis://s3cret@h/0", "without a password", id="user-without-password"),
    ],
)
def test_bad_urls_are_refused_naming_the_part(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        RedisBrokerReader(url)
    assert "s3cret" not in str(info.value)


def test_endpoint_from_url_reads_every_part() -> None:
    assert endpoint_from_url("rediss://u:p%40ss@cache.internal:6380/2?ssl_cert_reqs=none") == (
        Endpoint(
            host="cache.internal", port=6380, db=2, username="u", password="p@ss", tls=True,
            verify=False,
        )
    )  # fmt: skip


def test_many_concurrent_reads_get_their_own_answers_on_few_connections(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    for i in range(20):
        client.rpush(f"q{i}", *[b"t"] * (i + 1))
        client.rpush(f"q{i}\x06\x169", *[b"t"] * (2 * i + 2))

    async def scenario() -> tuple[list[Depth], int]:
        reader = RedisBrokerReader(redis_server.url, max_idle=4, max_open=4)
        depths = await asyncio.gather(
            *(reader.read(QueueSpec((f"q{i % 20}",))) for i in range(200))
        )
        connected = int(client.info("clients")["connected_clients"])
        await reader.close()
        return list(depths), connected

    depths, connected = asyncio.run(scenario())
    client.close()
    assert [d.pending for d in depths] == [3 * (i % 20 + 1) for i in range(200)]
    assert connected <= 4 + 1  # the reader's, and this test's own client


def test_unacked_entries_in_other_json_shapes_are_still_counted(redis_server: RedisServer) -> None:
    # kombu writes json.dumps([message, exchange, routing_key]); the count also holds for
    # compact separators and for values that need a full decode, and ignores non-JSON junk.
    client = redis.Redis.from_url(redis_server.url)
    client.hset(
        "unacked",
        mapping={
            "a": '[{"body": "x"}, "", "q"]',  # kombu's own form
            "b": '[{"body": "x"},"","q"]',  # compact separators
            "c": '[{"body": "x"}, "", "q"]\n',  # needs a decode
            "d": '[{"body": "x"}, "", "mod\\u00e8le"]',  # escaped, another queue
            "e": '[{"body": "x"}, "", "other"]',  # another queue
            "f": "not json at all",
            "g": '[{"body": ", \\"q\\"]"}, "", "other"]',  # the suffix inside the message
        },
    )
    client.close()
    depth = read(redis_server.url, QueueSpec(("q",), include_unacked=True))
    both = read(redis_server.url, QueueSpec(("q", "modèle"), include_unacked=True))
    assert depth == Depth(pending=0, in_flight=3)
    assert both == Depth(pending=0, in_flight=4)


# ---- TLS (rediss://) ------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[int, str]]:
    """A private redis-server speaking TLS only, with a throw-away CA: (port, CA file)."""
    binary = require_binary("redis-server")
    openssl = require_binary("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=t")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf")  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--tls-cert-file", "server.pem",
         "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem",
         "--tls-auth-clients", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30  # generous: a loaded CI machine starts servers slowly
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"TLS redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield port, str(tmp_path / "ca.pem")
    finally:
        process.kill()
        process.wait(timeout=10)


def test_tls_with_the_servers_ca(tls_server: tuple[int, str]) -> None:
    port, ca = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    assert read(url, QueueSpec(("q",))) == Depth(pending=0)


def test_tls_refuses_an_unknown_certificate_unless_told_not_to_check(
    tls_server: tuple[int, str],
) -> None:
    port, _ = tls_server
    with pytest.raises(BrokerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        read(f"rediss://127.0.0.1:{port}/0", QueueSpec(("q",)))
    unchecked = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"
    assert read(unchecked, QueueSpec(("q",))) == Depth(pending=0)


def test_a_least_privilege_acl_user_is_enough(redis_server: RedisServer) -> None:
    # The ACL documented in scaler/brokers/redis.py: three commands, nothing else.
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command(
        "ACL", "SETUSER", "depthscale", "on", ">pw", "~*", "+llen", "+eval", "+hvals"
    )
    admin.rpush("q", b"a", b"b")
    admin.hset("unacked", "t1", '[{"body": "x"}, "", "q"]')
    admin.close()
    url = f"redis://depthscale:pw@127.0.0.1:{redis_server.port}/0"
    assert read(url, QueueSpec(("q",), include_unacked=True)) == Depth(pending=2, in_flight=1)


@contextmanager
def replying_server(reply: bytes) -> Iterator[int]:
    """A TCP port whose server answers every request with ``reply``: a broken broker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    if conn.recv(65536):
                        conn.sendall(reply)
                    conn.recv(65536)  # hold the connection until the client closes it
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        pytest.param(b":1x\r\n" * 4, BrokerUnavailable, "malformed", id="bad-integer"),
        pytest.param(b"*1\r\n:1\r\n" * 4, BrokerUnavailable, "unexpected reply", id="array"),
        pytest.param(b"$1\r\n7\r\n" * 4, BrokerResponseError, "not an integer", id="bulk-not-int"),
        pytest.param(b"-ERR nope\r\n" * 4, BrokerResponseError, "ERR nope", id="error-reply"),
    ],
)
def test_a_reply_that_is_not_a_count_is_an_error_never_zero(
    reply: bytes, error: type[Exception], message: str
) -> None:
    with replying_server(reply) as port, pytest.raises(error, match=message):
        read(f"redis://127.0.0.1:{port}/0", QueueSpec(("q",)), timeout_s=2.0)
