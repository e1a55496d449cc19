"""``depthscale serve`` never prints a broker password, however the URL breaks (finding 5).

Malformed URLs carrying a password go through each configuration path: the flag, the
environment variable and the brokers file, and ``--state``. Each run stops at a configuration
error or at the port check (a port already taken), so nothing is served; the whole output is
searched for the password, raw and percent-decoded.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.cli import main
from scaler.serve import BROKERS_ENV

# Characters that break a URL's shape when left unencoded in a password.
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#/@?:%&=[]!$;,+~"
PASSWORDS = st.text(alphabet=_ALPHABET, min_size=6, max_size=24).map(lambda s: "Zq" + s)
SHAPES = (
    "redis://:{pw}@cache.internal:6379/0",
    "redis://scaler:{pw}@cache.internal/0",
    "rediss://scaler:{pw}@cache.internal:notaport/0",
    "redis://:{pw}@cache.internal:6379/x?db=y",
    "redis://:{pw}@[cache.internal/0",
    "redis://cache.internal/0?password={pw}",
    "amqp://guest:{pw}@mq.internal:5672/%2F",
    "kafka://u:{pw}@k.internal:9092",
    "unix://:{pw}@/var/run/redis.sock",
)


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _invoke(args: list[str], env: dict[str, str]) -> str:
    result = CliRunner().invoke(main, ["serve", *args], env={BROKERS_ENV: "", **env})
    assert result.exit_code != 0, result.output
    return result.output


def _assert_hidden(password: str, output: str) -> None:
    for form in {password, quote(password, safe=""), password.replace("%", "")}:
        if len(form) >= 6:
            assert form not in output, output


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(password=PASSWORDS, shape=st.sampled_from(SHAPES), path=st.sampled_from(range(5)))
def test_no_path_prints_a_password(
    password: str, shape: str, path: int, taken_port: int, tmp_path: Path
) -> None:
    url = shape.format(pw=password)
    base = ["--host", "127.0.0.1", "--port", str(taken_port), "--metrics-port", "0"]
    if path == 0:
        output = _invoke([*base, "--broker", f"main={url}"], {})
    elif path == 1:
        output = _invoke(base, {BROKERS_ENV: f"main={url}"})
    elif path == 2:
        file = tmp_path / "brokers"
        file.write_text(f"# brokers\nmain={url}\n")
        output = _invoke([*base, "--brokers-file", str(file)], {})
    elif path == 3:
        # A missing '=' between the name and the URL.
        output = _invoke([*base, "--broker", f"main:{url}"], {})
    else:
        output = _invoke([*base, "--broker", "m=redis://h/0", "--state", url], {})
    assert output.startswith("Error: ")
    _assert_hidden(password, output)
