"""``depthscale replay``, short, on real processes: a trace file through the live system at
x20, then the simulator on the same trace and settings.

What must hold exactly: every task submitted has a result and none is lost; both sides decide at
the same instants (one decision per KEDA poll and HPA sync). What must hold within a tolerance:
the replica series. The tolerance is set from measured runs (docs/demo.md, "How closely they
agree"): on this trace at x20 the Deployment's replica count differed from the simulator's by
0.02 to 0.30 replicas on average over the run, and the replicas serving by 0.03 to 0.21, also
with another process keeping a core busy. 0.5 leaves room for a slower machine; one replica
missing or extra for the whole run would be about 1.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from demo.command import replay
from demo.compare import ModelComparison, compare
from demo.live import LiveResult
from demo.settings import ReplaySettings
from demo.traffic import MODEL, burst_trace
from simulator.results import PolicyResult
from simulator.traces.loader import load_trace
from simulator.traces.write import write_trace
from tests.conftest import IN_CI, require_binary

pytestmark = pytest.mark.redis

DESIRED_MEAN_TOLERANCE = 0.5
"""Replicas: the largest mean |live − simulated| of the Deployment's count accepted."""
READY_MEAN_TOLERANCE = 0.5
"""Replicas: the same for the replicas serving."""


def rabbitmq_or_skip() -> None:
    """RabbitMQ on 127.0.0.1:5672 and rabbitmqctl (the run makes its own vhost): skip
    locally without them, fail in CI."""
    require_binary("rabbitmqctl")
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1.0).close()
    except OSError:
        message = "RabbitMQ is not listening on 127.0.0.1:5672"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(
    scope="module", params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
)
def replayed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LiveResult, PolicyResult, str]:
    require_binary("redis-server")  # the broker, or the result backend beside RabbitMQ
    if request.param == "rabbitmq":
        rabbitmq_or_skip()
    path = write_trace(burst_trace(), tmp_path_factory.mktemp("trace") / "burst.csv")
    trace = load_trace(path)  # through the project's loader, as `depthscale replay` reads it
    settings = ReplaySettings(time_scale=20.0, broker=request.param)
    runner = CliRunner()
    with runner.isolation() as (out, _err, _):
        live, simulated = replay(trace, settings)
    return live, simulated, out.getvalue().decode()


@pytest.fixture(scope="module")
def comparison(replayed: tuple[LiveResult, PolicyResult, str]) -> ModelComparison:
    live, simulated, _ = replayed
    (only,) = compare(live, simulated)
    return only


def test_every_task_is_answered_and_none_lost(
    replayed: tuple[LiveResult, PolicyResult, str],
) -> None:
    live, simulated, _ = replayed
    assert live.submitted == {MODEL: len(burst_trace())}
    assert live.succeeded == live.submitted
    assert live.failed == {MODEL: 0}
    assert live.lost == 0
    assert simulated.per_model[MODEL].unserved == 0
    assert live.replica_errors == []


def test_both_decide_at_the_same_instants(
    replayed: tuple[LiveResult, PolicyResult, str],
) -> None:
    live, simulated, _ = replayed
    series = live.series[MODEL]
    assert series.errors == 0  # the scaler answered every poll
    assert sum(series.reasons.values()) == sum(simulated.reasons.values())
    assert series.t_s == simulated.series[MODEL].t_s.tolist()


def test_the_replicas_follow_the_simulation(comparison: ModelComparison) -> None:
    assert comparison.desired.points > 100
    # The burst is seen by both: the Deployment grows past one replica and comes back.
    assert comparison.desired.live_mean > 1.0
    assert comparison.desired.mean_abs <= DESIRED_MEAN_TOLERANCE, comparison
    assert comparison.ready.mean_abs <= READY_MEAN_TOLERANCE, comparison


def test_the_output_states_the_scale_then_a_verdict(
    replayed: tuple[LiveResult, PolicyResult, str],
) -> None:
    _, _, output = replayed
    lines = output.splitlines()
    assert lines[1].startswith("time x20: the run covers")
    assert any("policy window 300 s (15 s wall)" in line for line in lines)
    assert any("policy wants" in line and "scale-up" in line for line in lines)
    assert any(" HPA sets " in line for line in lines)
    assert any("serving;" in line and "pending" in line for line in lines)  # progress
    verdict = next(i for i, line in enumerate(lines) if line.startswith(f"{MODEL}: replicas"))
    table = next(i for i, line in enumerate(lines) if line.strip().startswith("tasks lost"))
    assert verdict < table
    assert "0 lost" in output


def test_every_replica_stopped_and_every_worker_drained(
    replayed: tuple[LiveResult, PolicyResult, str],
) -> None:
    live, _, _ = replayed
    workers, standins = live.exit_codes["worker"], live.exit_codes["standin"]
    assert len(workers) >= 2  # the burst needed more than one replica
    assert len(standins) >= len(workers)
    assert workers == [0] * len(workers)  # each a warm shutdown, none killed
    assert None not in standins


def test_a_trace_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    from scaler.cli import main

    result = CliRunner().invoke(main, ["replay", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
