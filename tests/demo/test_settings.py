"""One set of settings for the live run and the simulation: the scenario the simulator runs
carries the same numbers the live replicas, the trigger metadata and the KEDA/HPA loop use."""

from __future__ import annotations

import numpy as np
import pytest

from demo.settings import ReplaySettings
from demo.traffic import MODEL, burst_trace
from scaler.metadata import parse_metadata
from worker.standin import StandinConfig


def test_the_built_in_trace_is_seeded_and_bursts() -> None:
    trace = burst_trace(seed=7)
    assert np.array_equal(trace.arrival_s, burst_trace(seed=7).arrival_s)
    assert trace.models == (MODEL,)
    quiet = np.count_nonzero(trace.arrival_s < 300) / 300
    burst = np.count_nonzero((trace.arrival_s >= 300) & (trace.arrival_s < 720)) / 420
    assert burst > 3 * quiet


def test_the_simulated_service_time_is_the_stand_ins() -> None:
    settings = ReplaySettings(prefill_s=0.001, decode_s=0.03)
    trace = burst_trace()
    standin = StandinConfig(prefill_seconds_per_token=0.001, decode_seconds_per_token=0.03)
    served = settings.served_trace(trace)
    assert served.service_s is not None
    for i in (0, len(trace) // 2, len(trace) - 1):
        expected = standin.service_seconds(int(trace.input_tokens[i]), int(trace.output_tokens[i]))
        assert served.service_s[i] == pytest.approx(expected)


def test_the_scenario_carries_the_live_settings() -> None:
    settings = ReplaySettings(slots=3, warmup_s=90.0, window_s=240.0, max_replicas=5)
    trace = burst_trace()
    scenario = settings.scenario(trace, startup_s=(100.0, 130.0))
    model = scenario.models[MODEL]
    assert model.max_concurrency == 3
    assert (model.startup_s.low, model.startup_s.high) == (100.0, 130.0)
    assert scenario.node_pools["standin"].launch_s.high == 0.0  # no node to launch
    assert scenario.control_plane.replicas_from == "decisions"  # no Kubernetes API to ask
    assert scenario.simulation.warm_start is False  # the live run starts with nothing running
    assert scenario.simulation.duration_s == settings.end_s(trace)
    # The trigger metadata the live poller sends is the policy block the simulator runs.
    metadata = settings.metadata(scenario, MODEL)
    config = parse_metadata(metadata).config
    assert config == model.policy.to_policy_config()
    assert (config.replica_concurrency, config.max_replicas) == (3, 5)
    assert (config.warmup_s, config.stabilization_window_s) == (90.0, 240.0)


def test_in_flight_counts_only_where_the_broker_gives_them() -> None:
    assert "includeUnacked" in ReplaySettings().policy_block()
    plain = ReplaySettings(broker="rabbitmq")
    assert "includeUnacked" not in plain.policy_block()
    managed = plain.with_broker("rabbitmq", "amqp://g:g@h:5672/v?management=http://h:15672")
    assert managed.policy_block()["includeUnacked"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("time_scale", 0.5, id="time-runs-backwards-or-slower"),
        pytest.param("slots", 0, id="no-slots"),
        pytest.param("max_replicas", 0, id="no-replicas"),
        pytest.param("sample_s", 0.0, id="no-sampling-step"),
    ],
)
def test_bad_settings_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ReplaySettings(**{field: value})  # type: ignore[arg-type]
