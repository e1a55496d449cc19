"""``depthscale demo`` end to end, briefly: real Redis, Celery, gRPC server and poller."""

from __future__ import annotations

import asyncio
import socket

import pytest
from click.testing import CliRunner

from scaler.cli import main
from scaler.demo import DemoOptions, DemoResult, run_demo
from tests.conftest import require_binary

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def short_demo() -> DemoResult:
    require_binary("redis-server")
    # 60x time: a 10 s window, 5 s warm-up; KEDA polls twice a second.
    return asyncio.run(run_demo(DemoOptions(duration_s=10.0, speed=60.0, poll_s=0.5)))


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_replicas_rise_while_tasks_are_pending(short_demo: DemoResult) -> None:
    for model in ("llama-3-8b", "llama-3-70b"):
        rows = [r for r in short_demo.rows if r.model == model]
        busy = [r for r in rows if r.pending]
        assert busy, f"{model}: no poll saw pending tasks"
        assert max(r.replicas for r in busy) > 0
        # Work never waits at zero: every poll that saw pending tasks asked for replicas.
        assert all(r.replicas >= 1 and r.active for r in busy)


def test_the_scaler_answered_every_poll(short_demo: DemoResult) -> None:
    assert short_demo.rows
    assert not [r for r in short_demo.rows if r.reason.startswith("error")]


def test_queues_drain_through_the_replicas_asked_for(short_demo: DemoResult) -> None:
    for model, published in short_demo.published.items():
        assert published > 0
        assert 0 < short_demo.drained[model] <= published


def test_nothing_is_left_running(short_demo: DemoResult) -> None:
    assert refuses(short_demo.redis_port)
    assert refuses(short_demo.grpc_port)


def test_cli_runs_and_prints_the_table() -> None:
    require_binary("redis-server")
    result = CliRunner().invoke(
        main, ["demo", "--duration", "4", "--speed", "60", "--poll-seconds", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert "llama-3-8b" in result.output
    assert "pending=" in result.output
    assert "starting=" in result.output
    assert "published" in result.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        pytest.param(["--speed", "0"], "--speed", id="speed-below-one"),
        pytest.param(["--duration", "1"], "--duration", id="too-short"),
        pytest.param(["--max-replicas", "0"], "--max-replicas", id="no-replicas"),
    ],
)
def test_bad_options_are_refused_naming_the_option(args: list[str], option: str) -> None:
    result = CliRunner().invoke(main, ["demo", *args])
    assert result.exit_code == 2
    assert option in result.output
