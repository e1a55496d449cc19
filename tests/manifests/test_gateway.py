"""The gateway's NGINX config, run by a real NGINX on loopback in front of stub upstreams.

The config is the manifest's own text (ConfigMap gateway-config) with the rendered routes
(manifests/models/gateway-routes.yaml); the test changes only listen addresses and upstream
servers, and fails if one of those substitutions finds nothing to replace. NGINX runs in the
foreground (the config says ``daemon off``) with a private prefix directory for its pid and temp
files; its workers run as the current user.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, require_binary
from tests.manifests.conftest import MANIFESTS
from tests.manifests.kustomize import load_documents

pytestmark = pytest.mark.tools

KEYS = {"sk-alice-123": "alice", "sk-bob-456": "bob", "sk-burst-789": "burst"}


def _config_maps() -> tuple[dict[str, str], dict[str, str]]:
    [config] = load_documents(MANIFESTS / "base" / "gateway" / "configmap.yaml")
    [routes] = load_documents(MANIFESTS / "models" / "gateway-routes.yaml")
    return config["data"], routes["data"]


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected exactly one {old!r} in the gateway config"
    return text.replace(old, new)


@dataclass
class Stub:
    """An upstream that answers with who it is and what it received."""

    name: str
    server: ThreadingHTTPServer
    hits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


def _start_stub(name: str) -> Stub:
    stub: Stub

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            seen = {
                "upstream": name,
                "path": self.path,
                "x_model": self.headers.get("X-Model"),
                "authorization": self.headers.get("Authorization"),
                "client": self.headers.get("X-Client"),
                "body_bytes": len(body),
            }
            stub.hits.append(seen)
            payload = json.dumps(seen).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub = Stub(name, server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stub


@dataclass
class Gateway:
    port: int
    stubs: dict[str, Stub]
    routes: dict[str, str]  # model name as clients send it -> upstream (model Service)

    def request(
        self,
        body: bytes | None,
        key: str | None,
        path: str = "/v1/chat/completions",
        headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, dict[str, Any]]:
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        try:
            conn.request("POST" if body is not None else "GET", path, body, all_headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            if own:
                conn.close()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            data = {"raw": raw.decode(errors="replace")}
        return response.status, data


def _write_config(prefix: Path, ports: tuple[int, int], upstream_ports: dict[str, int]) -> None:
    config, routes = _config_maps()
    public, internal = ports
    text = _replace_once(config["nginx.conf"], "listen 8080;", f"listen 127.0.0.1:{public};")
    text = _replace_once(text, "listen 127.0.0.1:8081;", f"listen 127.0.0.1:{internal};")
    text = _replace_once(
        text, "proxy_pass http://127.0.0.1:8081;", f"proxy_pass http://127.0.0.1:{internal};"
    )
    (prefix / "nginx.conf").write_text(text)
    upstreams = routes["upstreams.conf"]
    for name, port in upstream_ports.items():
        upstreams = _replace_once(upstreams, f"server {name}:8000;", f"server 127.0.0.1:{port};")
    (prefix / "upstreams.conf").write_text(upstreams)
    (prefix / "routes.map").write_text(routes["routes.map"])
    (prefix / "api-keys.map").write_text(
        "".join(f'"Bearer {key}" {client};\n' for key, client in KEYS.items())
    )


def _nginx_command(nginx: str, prefix: Path, *extra: str) -> list[str]:
    command = [nginx, "-e", "stderr", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf")]
    if os.geteuid() == 0:
        # As root NGINX would switch its workers to "nobody"; keep them the current user.
        command += ["-g", "user root;"]
    return command + list(extra)


def _routes() -> dict[str, str]:
    _, routes = _config_maps()
    return dict(re.findall(r'^"([^"]+)" (\S+);$', routes["routes.map"], re.M))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    nginx = require_binary("nginx")
    routes = _routes()
    stubs = {name: _start_stub(name) for name in sorted(set(routes.values()))}
    prefix = tmp_path_factory.mktemp("gateway")
    ports = (free_port(), free_port())
    _write_config(prefix, ports, {name: stub.port for name, stub in stubs.items()})
    process = subprocess.Popen(
        _nginx_command(nginx, prefix),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail(f"nginx exited: {process.stderr.read().decode()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start listening")
                time.sleep(0.05)
        yield Gateway(ports[0], stubs, routes)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for stub in stubs.values():
            stub.server.shutdown()
            stub.server.server_close()


def _chat(model: str, padding: int = 0) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi" + "x" * padding}]}
    return json.dumps(body).encode()


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = require_binary("nginx")
    routes = _routes()
    # nginx -t resolves upstream addresses but never connects: any port will do.
    _write_config(tmp_path, (free_port(), free_port()), {n: 9 for n in set(routes.values())})
    result = subprocess.run(
        _nginx_command(nginx, tmp_path, "-t"), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_health_needs_no_key(gateway: Gateway) -> None:
    status, data = gateway.request(None, None, path="/healthz")
    assert status == 200
    assert data == {"raw": "ok\n"}


@pytest.mark.parametrize("key", [None, "sk-wrong", "sk-alice-123x"])
def test_missing_or_wrong_key_is_401_and_reaches_no_model(
    gateway: Gateway, key: str | None
) -> None:
    before = sum(len(s.hits) for s in gateway.stubs.values())
    status, data = gateway.request(_chat("llama-3-8b"), key)
    assert status == 401
    assert data["error"]["type"] == "authentication_error"
    assert sum(len(s.hits) for s in gateway.stubs.values()) == before


def test_each_model_is_routed_to_its_own_upstream(gateway: Gateway) -> None:
    assert len(set(gateway.routes.values())) >= 2, "routing is only tested with two models"
    for model, upstream in gateway.routes.items():
        status, data = gateway.request(_chat(model), "sk-alice-123")
        assert status == 200, model
        assert data["upstream"] == upstream
        assert data["x_model"] == model
        assert data["client"] == "alice"
        assert data["authorization"] is None, "the client's key must not reach the model"


def test_a_client_cannot_pick_the_upstream_with_its_own_header(gateway: Gateway) -> None:
    names = sorted(set(gateway.routes.values()))
    status, data = gateway.request(_chat(names[0]), "sk-bob-456", headers={"X-Model": names[1]})
    assert status == 200
    assert data["upstream"] == names[0]


@pytest.mark.parametrize(
    "body",
    [
        _chat("gpt-unknown"),
        b'{"messages": [{"role": "user", "content": "no model"}]}',
        b"",
    ],
    ids=["unknown-model", "no-model-key", "empty-body"],
)
def test_unknown_or_missing_model_is_404(gateway: Gateway, body: bytes) -> None:
    before = sum(len(s.hits) for s in gateway.stubs.values())
    status, data = gateway.request(body, "sk-alice-123")
    assert status == 404
    assert data["error"]["message"] == "unknown model"
    assert sum(len(s.hits) for s in gateway.stubs.values()) == before


def test_a_one_megabyte_body_is_routed_whole(gateway: Gateway) -> None:
    upstream = sorted(set(gateway.routes.values()))[-1]
    body = _chat(upstream, padding=1024 * 1024)
    status, data = gateway.request(body, "sk-bob-456")
    assert status == 200
    assert data["upstream"] == upstream
    assert data["body_bytes"] == len(body)


def test_a_body_over_the_limit_is_413(gateway: Gateway) -> None:
    status, _ = gateway.request(_chat("llama-3-8b", padding=9 * 1024 * 1024), "sk-bob-456")
    assert status == 413


def test_over_the_rate_is_429_per_client(gateway: Gateway) -> None:
    # 20 requests/s with a burst of 40: well before 300 back-to-back requests, one is refused.
    model = next(iter(gateway.routes))
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    statuses = []
    try:
        for _ in range(300):
            status, _ = gateway.request(_chat(model), "sk-burst-789", conn=conn)
            statuses.append(status)
            if status == 429:
                break
    finally:
        conn.close()
    assert statuses[-1] == 429
    assert set(statuses) == {200, 429}
    assert len(statuses) > 40, "the burst of 40 is served before limiting"
    # Another client is not limited by the first one's burst.
    status, _ = gateway.request(_chat(model), "sk-alice-123")
    assert status == 200


# --- drain -------------------------------------------------------------------------------------


def _gateway_container() -> dict[str, Any]:
    [deployment] = load_documents(MANIFESTS / "base" / "gateway" / "deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _seconds(directive: str) -> int:
    config, _ = _config_maps()
    found = re.search(rf"^\s*{directive} (\d+)s;$", config["nginx.conf"], re.M)
    assert found, f"nginx.conf sets no {directive}"
    return int(found[1])


def test_termination_grace_covers_the_drain_delay_and_the_longest_stream() -> None:
    # A stream may idle proxy_read_timeout between tokens; graceful shutdown waits for it up to
    # worker_shutdown_timeout, after the preStop's delay for endpoint removal. The kubelet kills
    # the pod at terminationGracePeriodSeconds: it must come after all of that.
    [deployment] = load_documents(MANIFESTS / "base" / "gateway" / "deployment.yaml")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    [hook] = _gateway_container()["lifecycle"]["preStop"]["exec"]["command"][2:]
    delay = re.match(r"sleep (\d+);", hook)
    assert delay, "the preStop hook first waits for endpoint removal"
    shutdown = _seconds("worker_shutdown_timeout")
    assert shutdown >= _seconds("proxy_read_timeout")
    assert grace > int(delay[1]) + shutdown


def test_prestop_signals_the_nginx_the_container_runs() -> None:
    # `nginx -s quit` finds the master through the pid file of the same prefix and config.
    container = _gateway_container()
    hook = container["lifecycle"]["preStop"]["exec"]["command"][2]
    assert f"nginx {' '.join(container['args'])} -s quit" in hook
    assert "while [ -e /var/cache/nginx/nginx.pid ]" in hook, "waits until the master is gone"
    assert container["args"][container["args"].index("-p") + 1] == "/var/cache/nginx/"


def _start_streaming_stub(chunks: int, pause_s: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(chunks):
                data = f"data: token-{i}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(pause_s)
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_graceful_quit_finishes_a_stream_in_flight_and_takes_no_new_one(tmp_path: Path) -> None:
    # What the preStop hook does, against the real config: a streamed completion is running
    # when `nginx -s quit` arrives; it must finish whole, new connections must be refused, and
    # the master must exit (removing its pid file) once the stream is done.
    nginx = require_binary("nginx")
    chunks, pause_s = 6, 0.4
    stub = _start_streaming_stub(chunks, pause_s)
    routes = _routes()
    ports = (free_port(), free_port())
    _write_config(tmp_path, ports, {n: int(stub.server_address[1]) for n in set(routes.values())})
    process = subprocess.Popen(
        _nginx_command(nginx, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "nginx.pid").exists():
            assert process.poll() is None, "nginx exited at start"
            assert time.monotonic() < deadline, "nginx wrote no pid file"
            time.sleep(0.05)
        while True:
            try:
                with socket.create_connection(("127.0.0.1", ports[0]), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=30)
        conn.request(
            "POST",
            "/v1/chat/completions",
            _chat(next(iter(routes))),
            {"Content-Type": "application/json", "Authorization": "Bearer sk-alice-123"},
        )
        response = conn.getresponse()
        assert response.status == 200
        first = response.readline()
        assert first.startswith(b"data: token-0"), first
        started = time.monotonic()
        quit_ = subprocess.run(
            _nginx_command(nginx, tmp_path, "-s", "quit"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert quit_.returncode == 0, quit_.stderr
        # The workers close their listeners on the signal; on a busy machine give them a moment.
        refused_by = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=1).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < refused_by, "new connections still accepted after quit"
            time.sleep(0.05)
        rest = response.read()
        conn.close()
        tokens = [line for line in (first + rest).splitlines() if line.startswith(b"data:")]
        assert tokens == [f"data: token-{i}".encode() for i in range(chunks)]
        assert time.monotonic() - started >= (chunks - 2) * pause_s, "the stream was not cut"
        assert process.wait(timeout=15) == 0
        assert not (tmp_path / "nginx.pid").exists(), "the preStop hook waits on this file"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        stub.shutdown()
        stub.server_close()
