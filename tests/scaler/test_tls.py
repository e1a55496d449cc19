"""TLS and mutual TLS, end to end: certificates made in the test (``tests/scaler/certs.py``), the
real scaler server on a real socket, real gRPC clients, and a private redis-server that speaks TLS
and requires client certificates.

KEDA's side, as kedacore/keda v2.20 builds it (``pkg/scalers/external_scaler.go``,
``pkg/util/tls_config.go``): with ``caCert`` it dials TLS trusting that CA (on top of the system's),
verifies the certificate against the host of ``scalerAddress``, and presents ``tlsClientCert``/
``tlsClientKey`` when both are set. The clients here do the same with gRPC Python's credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.brokers.redis import RedisBrokerReader
from scaler.cli import main
from scaler.healthcheck import main as healthcheck
from scaler.ports import BrokerUnavailable, QueueSpec, Unavailable
from scaler.serve import BROKERS_ENV
from scaler.server import RunningServer, start
from scaler.service import ScalerService
from scaler.state_store import MemoryStateStore, RedisStateStore
from scaler.tls import TlsFiles
from tests.conftest import RedisServer, celery_app, free_port, publish, require_binary, run
from tests.scaler.certs import Ca, Pem

pytestmark = pytest.mark.redis

KEDA_DEADLINE_S = 3.0
RELOAD_DEADLINE_S = 10.0
META = {"broker": "main", "queues": "llama-8b", "mode": "pending", "preset": "seed"}
REF = pb.ScaledObjectRef(name="llama-8b", namespace="prod", scalerMetadata=META)
# A fresh connection per channel: gRPC shares subchannels between channels with equal arguments,
# and a test about handshakes must not ride on another channel's connection.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


# ---- a mounted Secret, swapped as the kubelet swaps it ------------------------------------------


class MountedSecret:
    """A directory laid out as the kubelet mounts a Secret: ``tls.crt -> ..data/tls.crt``,
    ``..data -> ..<version>``; ``update`` writes a new version directory and renames a new
    ``..data`` symlink over the old one (one atomic rename, as kubelet's AtomicWriter does)."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        self.root = root
        self.version = 0
        self.update(files)
        for name in files:
            (root / name).symlink_to(Path("..data") / name)

    def update(self, files: dict[str, bytes]) -> None:
        self.version += 1
        version = self.root / f"..v{self.version}"
        version.mkdir()
        for name, data in files.items():
            (version / name).write_bytes(data)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.root / "..data")

    def path(self, name: str) -> Path:
        return self.root / name


@dataclass
class Pki:
    ca: Ca
    server: Pem
    client: Pem
    secret: MountedSecret

    def files(self, *, mtls: bool) -> TlsFiles:
        return TlsFiles(
            self.secret.path("tls.crt"),
            self.secret.path("tls.key"),
            self.secret.path("ca.crt") if mtls else None,
        )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = Ca()
    server = ca.issue("depthscale-scaler", server=True)
    secret = MountedSecret(
        tmp_path, {"tls.crt": server.cert, "tls.key": server.key, "ca.crt": ca.pem}
    )
    return Pki(ca, server, ca.issue("keda-operator", server=False), secret)


# ---- the scaler and its clients -------------------------------------------------------------------


@asynccontextmanager
async def scaler(redis_server: RedisServer, tls: TlsFiles) -> AsyncIterator[RunningServer]:
    service = ScalerService(
        {"main": RedisBrokerReader(redis_server.url, timeout_s=1.0)}, MemoryStateStore()
    )
    running = await start(service, port=0, metrics_port=None, host="127.0.0.1", tls=tls)
    try:
        yield running
    finally:
        await running.stop(grace_s=0.5)


def channel(port: int, ca: bytes | None, client: Pem | None = None) -> grpc.aio.Channel:
    """KEDA's channel: TLS trusting ``ca`` (None: plaintext), ``client`` as its certificate."""
    target = f"127.0.0.1:{port}"
    if ca is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=client.key if client is not None else None,
        certificate_chain=client.cert if client is not None else None,
    )
    return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


async def pending_and_health(port: int, ca: bytes | None, client: Pem | None = None) -> float:
    """GetMetricSpec, GetMetrics and the health Check over a new connection: the pending count."""
    async with channel(port, ca, client) as chan:
        stub = pb_grpc.ExternalScalerStub(chan)
        spec = await stub.GetMetricSpec(REF, timeout=KEDA_DEADLINE_S)
        values = await stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=REF, metricName=spec.metricSpecs[0].metricName),
            timeout=KEDA_DEADLINE_S,
        )
        health = await health_pb2_grpc.HealthStub(chan).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=KEDA_DEADLINE_S
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        return float(values.metricValues[0].metricValueFloat)


async def refused(port: int, ca: bytes | None, client: Pem | None = None) -> grpc.StatusCode:
    async with channel(port, ca, client) as chan:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(chan).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=KEDA_DEADLINE_S
            )
        code: grpc.StatusCode = caught.value.code()
        return code


async def presented_serial(port: int, client: Pem | None = None) -> int:
    """One new TLS handshake (ALPN h2, as gRPC's): the serial number of the server's leaf."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only looking: which certificate does it present?
    context.set_alpn_protocols(["h2"])
    if client is not None:
        with tempfile.TemporaryDirectory() as directory:
            cert, key = client.write(Path(directory), "client")
            context.load_cert_chain(cert, key)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return int(x509.load_der_x509_certificate(der).serial_number)


async def wait_for_serial(port: int, serial: int, client: Pem | None = None) -> int:
    """New handshakes until one presents ``serial``, within RELOAD_DEADLINE_S; the attempts."""
    deadline = time.monotonic() + RELOAD_DEADLINE_S
    attempts = 0
    while True:
        attempts += 1
        if await presented_serial(port, client) == serial:
            return attempts
        assert time.monotonic() < deadline, f"no handshake presented serial {serial}"
        await asyncio.sleep(0)


# ---- TLS ------------------------------------------------------------------------------------------


def test_tls_serves_metrics_and_health_to_a_client_trusting_the_ca(
    redis_server: RedisServer, pki: Pki
) -> None:
    publish(celery_app(redis_server.url), [("llama-8b", 0)] * 7)

    async def main() -> None:
        async with scaler(redis_server, pki.files(mtls=False)) as running:
            assert await pending_and_health(running.port, pki.ca.pem) == 7
            # Server-side TLS only: a client certificate is neither needed nor in the way.
            assert await pending_and_health(running.port, pki.ca.pem, pki.client) == 7
            assert await presented_serial(running.port) == pki.server.serial

    run(main)


def test_tls_refuses_plaintext_and_clients_not_trusting_its_ca(
    redis_server: RedisServer, pki: Pki
) -> None:
    async def main() -> None:
        async with scaler(redis_server, pki.files(mtls=False)) as running:
            assert await refused(running.port, None) is grpc.StatusCode.UNAVAILABLE
            assert await refused(running.port, Ca("another CA").pem) is grpc.StatusCode.UNAVAILABLE

    run(main)


# ---- mutual TLS -----------------------------------------------------------------------------------


def test_mtls_requires_a_client_certificate_from_the_client_ca(
    redis_server: RedisServer, pki: Pki
) -> None:
    stranger = Ca("another CA").issue("keda-operator", server=False)

    async def main() -> None:
        async with scaler(redis_server, pki.files(mtls=True)) as running:
            port, ca = running.port, pki.ca.pem
            assert await refused(port, ca) is grpc.StatusCode.UNAVAILABLE  # no certificate
            assert await refused(port, ca, stranger) is grpc.StatusCode.UNAVAILABLE
            assert await refused(port, None) is grpc.StatusCode.UNAVAILABLE
            assert await pending_and_health(port, ca, pki.client) == 0

    run(main)


# ---- reload ---------------------------------------------------------------------------------------


def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(
    redis_server: RedisServer, pki: Pki
) -> None:
    renewed_ca = Ca("renewed CA")
    renewed = renewed_ca.issue("depthscale-scaler", server=True)

    async def main() -> None:
        async with scaler(redis_server, pki.files(mtls=False)) as running:
            port = running.port
            async with channel(port, pki.ca.pem) as old:  # opened before the renewal
                stub = health_pb2_grpc.HealthStub(old)
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=KEDA_DEADLINE_S)

                # cert-manager renews the Secret; the kubelet swaps the mounted files at once.
                pki.secret.update(
                    {"tls.crt": renewed.cert, "tls.key": renewed.key, "ca.crt": renewed_ca.pem}
                )
                await wait_for_serial(port, renewed.serial)
                assert await pending_and_health(port, renewed_ca.pem) == 0
                assert await refused(port, pki.ca.pem) is grpc.StatusCode.UNAVAILABLE
                # The connection opened before keeps working on the certificate it agreed.
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=KEDA_DEADLINE_S)
            assert running.tls is not None
            assert (running.tls.reloads, running.tls.rejected) == (1, 0)

    run(main)


def test_a_mismatched_pair_is_ignored_with_a_warning_and_the_old_certificate_kept(
    redis_server: RedisServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    renewed = pki.ca.issue("depthscale-scaler", server=True)
    caplog.set_level(logging.WARNING, logger="depthscale.tls")

    async def main() -> None:
        async with scaler(redis_server, pki.files(mtls=True)) as running:
            port = running.port
            # Half way through a renewal: the new certificate beside the old key.
            pki.secret.update(
                {"tls.crt": renewed.cert, "tls.key": pki.server.key, "ca.crt": pki.ca.pem}
            )
            # The fetcher runs before every handshake, so this one has seen the new files.
            assert await presented_serial(port, pki.client) == pki.server.serial
            assert running.tls is not None
            assert running.tls.rejected == 1
            assert await pending_and_health(port, pki.ca.pem, pki.client) == 0
            [warning] = [r for r in caplog.records if r.name == "depthscale.tls"]
            assert "does not match" in warning.getMessage()
            assert warning.levelno == logging.WARNING

            # The renewal completes: the matching key arrives and new handshakes use the pair.
            pki.secret.update(
                {"tls.crt": renewed.cert, "tls.key": renewed.key, "ca.crt": pki.ca.pem}
            )
            await wait_for_serial(port, renewed.serial, pki.client)
            assert await pending_and_health(port, pki.ca.pem, pki.client) == 0
            assert (running.tls.reloads, running.tls.rejected) == (1, 1)

    run(main)


# ---- start-up: one line naming the flag -------------------------------------------------------


def test_bad_tls_flags_fail_at_start_with_one_line(pki: Pki, tmp_path: Path) -> None:
    other = Ca("another CA").issue("x", server=True)
    other_key = tmp_path / "other.key"
    other_key.write_bytes(other.key)
    unreadable = tmp_path / "unreadable.key"
    unreadable.write_bytes(pki.server.key)
    unreadable.chmod(0)
    cert, key, ca = (pki.secret.path(n) for n in ("tls.crt", "tls.key", "ca.crt"))
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        serialization.load_pem_private_key(pki.server.key, None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    not_a_ca = tmp_path / "empty.crt"
    not_a_ca.write_text("nothing here\n")
    cases = [
        (["--tls-key", str(key)], "--tls-key needs --tls-cert"),
        (["--tls-cert", str(cert)], "--tls-cert needs --tls-key"),
        (["--tls-client-ca", str(ca)], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope")], "--tls-key"),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)], "does not match --tls-cert"),
        (["--tls-cert", str(key), "--tls-key", str(key)], "no PEM certificate"),
        (["--tls-cert", str(cert), "--tls-key", str(encrypted)], "cannot load"),
        (["--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca", str(not_a_ca)],
         "--tls-client-ca"),
    ]  # fmt: skip
    if os.geteuid() != 0:  # root reads a file whatever its mode
        cases.append((["--tls-cert", str(cert), "--tls-key", str(unreadable)], "Permission denied"))
    for flags, message in cases:
        args = ["serve", "--host", "127.0.0.1", "--port", str(free_port()), "--metrics-port", "0"]
        args += ["--broker", "m=redis://127.0.0.1:1/0", *flags]
        result = CliRunner().invoke(main, args, env={BROKERS_ENV: ""})
        # JSON log lines (a warning about a broker, say) may come first; the error is one line.
        lines = [ln for ln in result.output.strip().splitlines() if not ln.startswith("{")]
        assert result.exit_code == 1, (flags, result.output)
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: "), (flags, lines)
        assert message in lines[0], (flags, lines)


# ---- rediss:// with client certificates -------------------------------------------------------


@dataclass
class TlsRedis:
    """A private redis-server: plaintext on ``plain_port`` (to publish with Celery), TLS on
    ``tls_port`` requiring a client certificate issued by ``ca`` (``tls-auth-clients yes``)."""

    plain_port: int
    tls_port: int
    ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path

    def url(self, db: int = 0, **query: Path) -> str:
        params = "&".join(f"{k}={v}" for k, v in {"ssl_ca_certs": self.ca, **query}.items())
        return f"rediss://127.0.0.1:{self.tls_port}/{db}?{params}"

    def with_cert(self, db: int = 0) -> str:
        return self.url(db, ssl_certfile=self.client_cert, ssl_keyfile=self.client_key)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    binary = require_binary("redis-server")
    ca = Ca("redis CA")
    ca_file = ca.write(tmp_path)
    server_cert, server_key = ca.issue("redis", server=True).write(tmp_path, "server")
    client_cert, client_key = ca.issue("depthscale", server=False).write(tmp_path, "client")
    stranger = Ca("another CA").issue("depthscale", server=False)
    stranger_cert, stranger_key = stranger.write(tmp_path, "stranger")
    plain_port, tls_port = free_port(), free_port()
    process = subprocess.Popen(
        [binary, "--port", str(plain_port), "--tls-port", str(tls_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
         "--tls-cert-file", str(server_cert), "--tls-key-file", str(server_key),
         "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=plain_port)
        deadline = time.monotonic() + 30  # a loaded CI machine starts servers slowly
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("TLS redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield TlsRedis(
            plain_port, tls_port, ca_file, client_cert, client_key, stranger_cert, stranger_key
        )
    finally:
        process.kill()
        process.wait(timeout=10)


def read(url: str, spec: QueueSpec) -> Any:
    async def main() -> Any:
        reader = RedisBrokerReader(url, timeout_s=2.0)
        try:
            return await reader.read(spec)
        finally:
            await reader.close()

    return run(main)


def test_broker_reads_over_tls_with_a_client_certificate(tls_redis: TlsRedis) -> None:
    app = celery_app(f"redis://127.0.0.1:{tls_redis.plain_port}/0")
    publish(app, [("llama-8b", p) for p in (0, 0, 3, 9)])
    spec = QueueSpec(("llama-8b",))
    assert read(tls_redis.with_cert(), spec).pending == 4
    with pytest.raises(BrokerUnavailable):  # the server asks for a certificate; none is sent
        read(tls_redis.url(), spec)
    with pytest.raises(BrokerUnavailable):  # one the server's CA did not issue
        read(
            tls_redis.url(ssl_certfile=tls_redis.stranger_cert, ssl_keyfile=tls_redis.stranger_key),
            spec,
        )


def test_scaler_answers_unavailable_without_the_client_certificate_and_counts_with_it(
    tls_redis: TlsRedis,
) -> None:
    publish(celery_app(f"redis://127.0.0.1:{tls_redis.plain_port}/0"), [("llama-8b", 0)] * 3)

    async def main() -> None:
        service = ScalerService(
            {
                "main": RedisBrokerReader(tls_redis.with_cert(), timeout_s=2.0),
                "nocert": RedisBrokerReader(tls_redis.url(), timeout_s=2.0),
            },
            RedisStateStore(tls_redis.with_cert(db=1), timeout_s=2.0),
        )
        running = await start(service, port=0, metrics_port=None, host="127.0.0.1")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
                stub = pb_grpc.ExternalScalerStub(chan)
                refs = {
                    broker: pb.ScaledObjectRef(
                        name="llama-8b", namespace="prod", scalerMetadata={**META, "broker": broker}
                    )
                    for broker in ("main", "nocert")
                }
                spec = await stub.GetMetricSpec(refs["main"], timeout=KEDA_DEADLINE_S)
                name = spec.metricSpecs[0].metricName
                values = await stub.GetMetrics(
                    pb.GetMetricsRequest(scaledObjectRef=refs["main"], metricName=name),
                    timeout=KEDA_DEADLINE_S,
                )
                assert values.metricValues[0].metricValueFloat == 3
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.IsActive(refs["nocert"], timeout=KEDA_DEADLINE_S)
                assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        finally:
            await running.stop(grace_s=0.5)

    run(main)
    # The decision reached the state store over TLS with the client certificate.
    stored = redis.Redis(port=tls_redis.plain_port, db=1).keys("depthscale:state:*")
    assert stored


def test_state_store_needs_the_client_certificate(tls_redis: TlsRedis) -> None:
    async def main() -> None:
        with_cert = RedisStateStore(tls_redis.with_cert(db=1), timeout_s=2.0)
        without = RedisStateStore(tls_redis.url(db=1), timeout_s=2.0)
        try:
            assert await with_cert.load("prod/llama-8b/llama-8b") is None
            with pytest.raises(Unavailable):
                await without.load("prod/llama-8b/llama-8b")
        finally:
            await with_cert.close()
            await without.close()

    run(main)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("ssl_keyfile=/k", "ssl_keyfile needs ssl_certfile"),
        ("ssl_certfile=/nonexistent/c.crt", "ssl_certfile /nonexistent/c.crt: No such file"),
    ],
)
def test_bad_client_certificate_options_are_refused(query: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RedisBrokerReader(f"rediss://127.0.0.1:6380/0?{query}")
    # Connects to nothing: the options and files are checked when the reader is made.
    with pytest.raises(ValueError, match="need a rediss:// URL"):
        RedisBrokerReader("redis://127.0.0.1:6379/0?ssl_certfile=/c.crt")


@pytest.mark.parametrize("client", ["broker", "state-store"])
def test_a_renewed_client_certificate_is_sent_at_the_next_connection(
    tls_redis: TlsRedis, tmp_path: Path, client: str
) -> None:
    good = Pem(tls_redis.client_cert.read_bytes(), tls_redis.client_key.read_bytes())
    stranger = Pem(tls_redis.stranger_cert.read_bytes(), tls_redis.stranger_key.read_bytes())
    mount = tmp_path / "client-tls"
    mount.mkdir()
    secret = MountedSecret(mount, {"tls.crt": good.cert, "tls.key": good.key})
    url = tls_redis.url(ssl_certfile=secret.path("tls.crt"), ssl_keyfile=secret.path("tls.key"))
    admin = redis.Redis(port=tls_redis.plain_port)

    async def main() -> None:
        reader = RedisBrokerReader(url, timeout_s=2.0)
        store = RedisStateStore(url, timeout_s=2.0)

        async def call() -> None:
            if client == "broker":
                await reader.read(QueueSpec(("llama-8b",)))
            else:
                await store.load("prod/llama-8b/llama-8b")

        try:
            await call()
            # The files now hold a certificate the server's CA did not issue; the server drops
            # every client, so the next calls must connect again.
            secret.update({"tls.crt": stranger.cert, "tls.key": stranger.key})
            admin.client_kill_filter(_type="normal", skipme=True)
            with contextlib.suppress(Unavailable):
                await call()  # may fail on the connection the server closed
            with pytest.raises(Unavailable):
                await call()  # a new connection, presenting the certificate now in the files
            secret.update({"tls.crt": good.cert, "tls.key": good.key})
            await call()
        finally:
            await reader.close()
            await store.close()

    run(main)
    admin.close()


# ---- the probe: python -m scaler.healthcheck over (mutual) TLS -------------------------------


def test_healthcheck_probes_the_mtls_port_with_the_servers_own_certificate(
    redis_server: RedisServer, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the Deployment's exec probe: dial 127.0.0.1, check the certificate for the Service's
    # name, present the serving certificate (issued for server and client auth) as the client's.
    ca, cert, key = (str(pki.secret.path(n)) for n in ("ca.crt", "tls.crt", "tls.key"))

    async def main() -> list[int]:
        async with scaler(redis_server, pki.files(mtls=True)) as running:
            port = ["--port", str(running.port), "--timeout", "2"]
            probes = [
                [*port, "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key,
                 "--server-name", "localhost"],
                [*port, "--tls-ca", ca, "--server-name", "localhost"],  # no client certificate
                [*port, "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key,
                 "--server-name", "depthscale-scaler.elsewhere"],  # not a name it carries
                port,  # plaintext
            ]  # fmt: skip
            return [await asyncio.to_thread(healthcheck, argv) for argv in probes]

    assert run(main) == [0, 1, 1, 1]
    assert capsys.readouterr().err.count("unhealthy: 127.0.0.1:") == 3


def test_a_client_key_that_does_not_match_is_refused_naming_the_files(tmp_path: Path) -> None:
    ca = Ca()
    cert, _ = ca.issue("depthscale", server=False).write(tmp_path, "client")
    _, other_key = ca.issue("other", server=False).write(tmp_path, "other")
    url = f"rediss://127.0.0.1:6380/0?ssl_certfile={cert}&ssl_keyfile={other_key}"
    with pytest.raises(
        ValueError, match=f"ssl_certfile {cert} / ssl_keyfile {other_key}: KEY_VALUES"
    ):
        RedisBrokerReader(url)
