"""ScalerService on in-process fakes: caching, coalescing, shared state, errors, the activity stream.

Time is narrated with a hand-driven clock; the real broker and store are exercised in test_grpc.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from policies.types import Reason
from scaler.logs import JsonFormatter
from scaler.metadata import MetadataError
from scaler.ports import BrokerTimeout, BrokerUnavailable, Depth
from scaler.service import ScalerService, metric_name
from tests.scaler.fakes import Clock, FakeBroker, FakeStore

T = TypeVar("T")

META = {"broker": "main", "queues": "llama-8b,llama-8b-batch"}


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await main()

    return asyncio.run(wrapped())


def service(
    broker: FakeBroker | None = None,
    store: FakeStore | None = None,
    clock: Clock | None = None,
    **kwargs: float,
) -> ScalerService:
    return ScalerService(
        {"main": broker or FakeBroker()},
        store or FakeStore(),
        clock=clock or Clock(),
        **kwargs,  # type: ignore[arg-type]
    )


def sample(registry: object, name: str, **labels: str) -> float | None:
    from prometheus_client import CollectorRegistry

    assert isinstance(registry, CollectorRegistry)
    return registry.get_sample_value(name, labels)


# ---- metric names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "name", "model"),
    [
        ("prod", "llama-8b", "llama-8b"),
        ("Prod_EU", "Llama.3/70B", "meta-llama/Llama-3.1-70B-Instruct"),
        ("", "x", "x"),
        ("ns", "a" * 300, "b" * 300),
    ],
)
def test_metric_name_is_lowercase_dash_and_stable(namespace: str, name: str, model: str) -> None:
    first = metric_name(namespace, name, model)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", first), first
    assert metric_name(namespace, name, model) == first
    assert len(first) <= 63


def test_metric_names_differ_when_names_fold_alike() -> None:
    assert metric_name("prod", "llama.8b", "m") != metric_name("prod", "llama-8b", "m")
    assert metric_name("prod", "Llama", "m") != metric_name("prod", "llama", "m")


# ---- one evaluation per interval, shared by the three RPCs -------------------------------------


def test_calls_within_the_interval_share_one_broker_read() -> None:
    broker = FakeBroker(Depth(pending=120))
    clock = Clock()
    svc = service(broker, clock=clock, cache_s=5.0)

    async def main() -> None:
        target = svc.resolve("prod", "llama-8b", META)
        first = await svc.evaluate(target)
        clock.advance(4.9)  # KEDA's IsActive and the HPA sync arrive within the interval
        again = await svc.evaluate(target)
        assert again == first
        assert len(broker.reads) == 1
        clock.advance(0.1)  # the interval is over: read again
        await svc.evaluate(target)
        assert len(broker.reads) == 2

    run(main)


def test_concurrent_calls_coalesce_into_one_read() -> None:
    broker = FakeBroker(Depth(pending=75))
    svc = service(broker)

    async def main() -> None:
        broker.gate = asyncio.Event()
        target = svc.resolve("prod", "llama-8b", META)
        calls = [asyncio.create_task(svc.evaluate(target)) for _ in range(50)]
        await asyncio.sleep(0)
        broker.gate.set()
        answers = await asyncio.gather(*calls)
        assert len(broker.reads) == 1
        assert len({a.decision for a in answers}) == 1

    run(main)


def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    broker = FakeBroker(Depth(pending=75))
    svc = service(broker)

    async def main() -> None:
        broker.gate = asyncio.Event()
        target = svc.resolve("prod", "llama-8b", META)
        first = asyncio.create_task(svc.evaluate(target))
        second = asyncio.create_task(svc.evaluate(target))
        await asyncio.sleep(0)
        first.cancel()  # KEDA's 3 s deadline ran out for one caller
        broker.gate.set()
        answer = await second
        assert answer.decision.desired == math.ceil(75 / 50)
        assert first.cancelled()

    run(main)


def test_observation_time_is_the_clock_read_once_per_evaluation() -> None:
    clock = Clock(now=5_000.0)
    store = FakeStore()
    svc = service(FakeBroker(Depth(pending=10)), store, clock)

    async def main() -> None:
        target = svc.resolve("prod", "llama-8b", META)
        await svc.evaluate(target)
        assert clock.reads == 1
        assert store.records[target.state_key].at_s == 5_000.0

    run(main)


def test_decision_follows_the_seed_rule_and_is_stored() -> None:
    # 120 pending at zero replicas: activate with enough replicas for <= 50 pending each.
    store = FakeStore()
    svc = service(FakeBroker(Depth(pending=120)), store)

    async def main() -> None:
        target = svc.resolve("prod", "llama-8b", META)
        evaluation = await svc.evaluate(target)
        assert evaluation.decision.desired == 3
        assert evaluation.decision.reason is Reason.ACTIVATE
        assert evaluation.decision.active
        assert evaluation.metric_target == 1.0
        assert store.records[target.state_key].decision == evaluation.decision

    run(main)


# ---- errors are errors, never a made-up 0 ------------------------------------------------------


def test_broker_down_raises_and_the_next_call_after_recovery_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = FakeBroker(
        Depth(pending=60),
        error=BrokerUnavailable("redis://scaler@10.1.2.3:6379/0: connection refused"),
    )
    store = FakeStore()
    svc = service(broker, store)

    async def main() -> None:
        target = svc.resolve("prod", "llama-8b", META)
        # KEDA learns the broker's name; its host and user stay in the scaler's log.
        with pytest.raises(BrokerUnavailable, match="broker 'main' is unavailable") as caught:
            await svc.evaluate(target)
        assert "10.1.2.3" not in str(caught.value)
        assert "scaler@" not in str(caught.value)
        assert "connection refused" in caplog.text
        assert store.writes == 0  # no decision was taken on no data
        broker.error = None  # the broker is back; no wait for the cache interval
        assert (await svc.evaluate(target)).decision.desired == 2

    run(main)


def test_hung_broker_times_out_as_unavailable() -> None:
    broker = FakeBroker(Depth(pending=60), hang=True)
    svc = service(broker, broker_timeout_s=0.05)

    async def main() -> None:
        target = svc.resolve("prod", "llama-8b", META)
        with pytest.raises(BrokerTimeout, match=r"no answer within 0\.05 s"):
            await svc.evaluate(target)

    run(main)
    assert (
        sample(
            svc.metrics.registry, "depthscale_broker_errors_total", broker="main", kind="timeout"
        )
        == 1
    )


def test_unknown_broker_name_is_a_metadata_error_naming_the_key() -> None:
    svc = service()
    with pytest.raises(MetadataError) as caught:
        svc.resolve("prod", "llama-8b", {**META, "broker": "other"})
    assert caught.value.key == "broker"
    assert "'other'" in str(caught.value)
    assert "main" in str(caught.value)


def test_nameless_reference_is_refused() -> None:
    with pytest.raises(MetadataError) as caught:
        service().resolve("prod", "", META)
    assert caught.value.key == "name"


# ---- shared state: replicas and restarts answer alike -----------------------------------------


def test_second_replica_answers_from_a_fresh_shared_decision_without_reading() -> None:
    store, clock = FakeStore(), Clock()
    broker_a, broker_b = FakeBroker(Depth(pending=240)), FakeBroker(Depth(pending=0))
    a, b = service(broker_a, store, clock), service(broker_b, store, clock)

    async def main() -> None:
        target_a = a.resolve("prod", "llama-8b", META)
        target_b = b.resolve("prod", "llama-8b", META)
        decided = await a.evaluate(target_a)
        clock.advance(2.0)
        shared = await b.evaluate(target_b)
        assert shared.decision == decided.decision
        assert shared.shared
        assert broker_b.reads == []

    run(main)


def test_compare_and_set_loser_adopts_the_winner() -> None:
    store, clock = FakeStore(), Clock()
    gate = asyncio.Event
    broker_a, broker_b = FakeBroker(Depth(pending=240)), FakeBroker(Depth(pending=40))
    a, b = service(broker_a, store, clock), service(broker_b, store, clock)

    async def main() -> None:
        broker_a.gate, broker_b.gate = gate(), gate()
        first = asyncio.create_task(a.evaluate(a.resolve("prod", "llama-8b", META)))
        second = asyncio.create_task(b.evaluate(b.resolve("prod", "llama-8b", META)))
        # Both have loaded "no record" and wait on their brokers (a read is logged before it
        # waits on the gate).
        await broker_a.wait_for_reads(1)
        await broker_b.wait_for_reads(1)
        broker_a.gate.set()
        winner = await first
        broker_b.gate.set()
        loser = await second
        assert loser.decision == winner.decision
        assert loser.shared
        assert store.writes == 1

    run(main)
    assert sample(b.metrics.registry, "depthscale_state_conflicts_total") == 1


def test_a_replica_with_a_clock_slightly_ahead_is_answered_alike() -> None:
    store = FakeStore()
    ahead, behind = Clock(now=1_002.0), Clock(now=1_000.0)
    broker_b = FakeBroker(Depth(pending=0))
    a = service(FakeBroker(Depth(pending=240)), store, ahead)
    b = service(broker_b, store, behind)

    async def main() -> None:
        decided = await a.evaluate(a.resolve("prod", "llama-8b", META))
        shared = await b.evaluate(b.resolve("prod", "llama-8b", META))
        assert shared.decision == decided.decision
        assert broker_b.reads == []

    run(main)


def test_a_clock_stepping_back_does_not_freeze_the_answer() -> None:
    clock, broker = Clock(now=10_000.0), FakeBroker(Depth(pending=240))
    svc = service(broker, clock=clock)

    async def main() -> None:
        target = svc.resolve("prod", "llama-8b", META)
        await svc.evaluate(target)
        clock.advance(-3_600.0)  # NTP steps the clock back an hour
        again = await svc.evaluate(target)
        assert len(broker.reads) == 2
        assert not again.shared

    run(main)


def test_restarted_scaler_keeps_the_window() -> None:
    store, clock = FakeStore(), Clock()
    broker = FakeBroker(Depth(pending=400))

    async def main() -> None:
        first = service(broker, store, clock)
        up = await first.evaluate(first.resolve("prod", "llama-8b", META))
        # 400 pending need 400 / 50 = 8; from zero, one step adds at most 4 (scaleUpFactor)
        assert up.decision.desired == 4
        # The queue drains; a minute later the scaler restarts with the same store.
        broker.depth = Depth(pending=0)
        clock.advance(60.0)
        restarted = service(broker, store, clock)
        after = await restarted.evaluate(restarted.resolve("prod", "llama-8b", META))
        assert after.decision.desired == 4
        assert after.decision.reason is Reason.HOLD_STABILIZING

    run(main)


# ---- StreamIsActive -------------------------------------------------------------------------


def test_stream_says_true_soon_after_an_idle_model_gets_work() -> None:
    broker = FakeBroker(Depth(pending=0))
    clock = Clock()  # frozen: the cached "inactive" answer never expires on its own
    svc = service(broker, clock=clock, stream_poll_s=0.01)

    async def main() -> None:
        stream = svc.watch_active(svc.resolve("prod", "llama-8b", META))
        assert await anext(stream) is False
        broker.depth = Depth(pending=3)
        assert await asyncio.wait_for(anext(stream), timeout=5) is True
        await stream.aclose()

    run(main)


def test_stream_survives_a_broker_outage() -> None:
    broker = FakeBroker(Depth(pending=0))
    svc = service(broker, stream_poll_s=0.01)

    async def main() -> None:
        stream = svc.watch_active(svc.resolve("prod", "llama-8b", META))
        assert await anext(stream) is False
        broker.error = BrokerUnavailable("down")
        next_value = asyncio.create_task(anext(stream))
        await broker.wait_for_reads(len(broker.reads) + 3)  # three polls while it is down
        assert not next_value.done()  # nothing is pushed while the broker is down
        broker.depth, broker.error = Depth(pending=1), None
        assert await asyncio.wait_for(next_value, timeout=5) is True
        await stream.aclose()

    run(main)


# ---- metrics and logs --------------------------------------------------------------------------


def test_decision_updates_metrics_and_logs_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    svc = service(FakeBroker(Depth(pending=130, in_flight=7)))
    labels = {
        "namespace": "prod",
        "scaled_object": "llama-8b",
        "model": "llama-8b",
        "queues": "llama-8b,llama-8b-batch",
    }

    async def main() -> None:
        await svc.evaluate(svc.resolve("prod", "llama-8b", META))

    with caplog.at_level(logging.INFO, logger="depthscale.scaler"):
        run(main)
    registry = svc.metrics.registry
    assert sample(registry, "depthscale_pending_tasks", **labels) == 130
    assert sample(registry, "depthscale_in_flight_tasks", **labels) == 7
    assert sample(registry, "depthscale_desired_replicas", **labels) == 3
    assert sample(registry, "depthscale_decisions_total", **labels, reason="activate") == 1
    assert sample(registry, "depthscale_broker_reads_total", broker="main") == 1
    [record] = [r for r in caplog.records if r.name == "depthscale.scaler"]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["reason"] == "activate"
    assert entry["desired"] == 3
    assert entry["pending"] == 130


def test_service_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="cache_s"):
        service(cache_s=0)
    with pytest.raises(ValueError, match="broker_timeout_s"):
        service(broker_timeout_s=-1)
