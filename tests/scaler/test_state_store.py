"""Policy state stores: round trip, compare-and-set, sharing between scaler replicas, restarts,
expiry and outages. The Redis store runs against a private redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from policies.state import QueueDepthState, StateError
from policies.types import Decision, Reason
from scaler.ports import Record, StateStore
from scaler.state_store import (
    MemoryStateStore,
    RedisStateStore,
    StateUnavailable,
    StateUnreadable,
    record_from_json,
    record_to_json,
)
from tests.conftest import RedisServer, free_port


def make_record(desired: int, at_s: float, reason: Reason = Reason.SCALE_UP) -> Record:
    state = QueueDepthState(
        desired=desired,
        last_increase_s=at_s - 30.0,
        warming_from=max(desired - 2, 0),
        low_since_s=None,
        idle_since_s=None,
        first_seen_s=at_s - 600.0,
        last_at_s=at_s,
        samples=((at_s - 15.0, 120, 0), (at_s, 180, 4)),
    )
    decision = Decision(desired, reason, f"180 pending over {desired} replicas", float(desired))
    return Record(state=state, decision=decision, at_s=at_s)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


StoreFactory = Callable[[], StateStore]


@pytest.fixture(params=["memory", "redis"])
def new_store(request: pytest.FixtureRequest) -> StoreFactory:
    """A factory of stores sharing one backing place (one dict, or one private Redis)."""
    if request.param == "memory":
        shared = MemoryStateStore()
        return lambda: shared
    server: RedisServer = request.getfixturevalue("redis_server")
    return lambda: RedisStateStore(server.url)


def test_first_write_then_read_back_equal(new_store: StoreFactory) -> None:
    record = make_record(desired=4, at_s=1_700_000_000.5)

    async def scenario() -> tuple[Record | None, bool, Record | None]:
        store = new_store()
        before = await store.load("default/llama-3-8b")
        won = await store.compare_and_set("default/llama-3-8b", None, record)
        after = await store.load("default/llama-3-8b")
        await store.close()
        return before, won, after

    before, won, after = run(scenario())
    assert before is None
    assert won is True
    assert after is not None
    assert after.version == 1
    assert (after.state, after.decision, after.at_s) == (record.state, record.decision, record.at_s)


def test_stale_writer_loses_and_writes_nothing(new_store: StoreFactory) -> None:
    first, second, stale = make_record(2, 100.0), make_record(3, 115.0), make_record(9, 116.0)

    async def scenario() -> list[Any]:
        store = new_store()
        out: list[Any] = [await store.compare_and_set("m", None, first)]
        out.append(await store.compare_and_set("m", 1, second))  # version 1 -> 2
        out.append(await store.compare_and_set("m", 1, stale))  # still thinks it is 1
        out.append(await store.compare_and_set("m", None, stale))  # thinks there is none
        out.append(await store.load("m"))
        await store.close()
        return out

    first_won, second_won, stale_won, none_won, stored = run(scenario())
    assert (first_won, second_won, stale_won, none_won) == (True, True, False, False)
    assert stored.version == 2
    assert stored.decision.desired == 3


def test_keys_are_independent(new_store: StoreFactory) -> None:
    async def scenario() -> tuple[Record | None, Record | None]:
        store = new_store()
        await store.compare_and_set("ns/a", None, make_record(1, 10.0))
        a, b = await store.load("ns/a"), await store.load("ns/b")
        await store.close()
        return a, b

    a, b = run(scenario())
    assert a is not None
    assert a.decision.desired == 1
    assert b is None


def test_two_redis_scaler_replicas_conflict_then_converge(redis_server: RedisServer) -> None:
    # Two scaler replicas answer KEDA for the same ScaledObject.
    async def scenario() -> dict[str, Any]:
        a, b = RedisStateStore(redis_server.url), RedisStateStore(redis_server.url)
        await a.compare_and_set("ns/llama", None, make_record(1, 0.0))
        # both read version 1 ...
        seen_a, seen_b = await a.load("ns/llama"), await b.load("ns/llama")
        assert seen_a is not None
        assert seen_b is not None
        # ... a decides first and writes; b's write from the same starting point must lose.
        a_won = await a.compare_and_set("ns/llama", seen_a.version, make_record(5, 15.0))
        b_won = await b.compare_and_set("ns/llama", seen_b.version, make_record(2, 15.1))
        # b reads again and sees a's decision.
        reread = await b.load("ns/llama")
        await a.close()
        await b.close()
        return {"a": a_won, "b": b_won, "reread": reread}

    out = run(scenario())
    assert out["a"] is True
    assert out["b"] is False
    assert out["reread"].decision.desired == 5
    assert out["reread"].version == 2


def test_many_concurrent_writers_exactly_one_wins(redis_server: RedisServer) -> None:
    async def scenario() -> list[bool]:
        stores = [RedisStateStore(redis_server.url) for _ in range(8)]
        await stores[0].compare_and_set("k", None, make_record(1, 0.0))
        results = await asyncio.gather(
            *(s.compare_and_set("k", 1, make_record(i + 2, 1.0)) for i, s in enumerate(stores))
        )
        for s in stores:
            await s.close()
        return list(results)

    results = run(scenario())
    assert results.count(True) == 1


def test_a_restarted_scaler_finds_the_state(redis_server: RedisServer) -> None:
    async def write() -> None:
        store = RedisStateStore(redis_server.url)
        await store.compare_and_set("ns/llama-70b", None, make_record(7, 500.0, Reason.HOLD))
        await store.close()

    async def read_in_new_process_view() -> Record | None:
        store = RedisStateStore(redis_server.url)
        try:
            return await store.load("ns/llama-70b")
        finally:
            await store.close()

    run(write())
    record = run(read_in_new_process_view())  # a new event loop and client: a restart
    assert record is not None
    assert record.decision.reason is Reason.HOLD
    assert record.state.desired == 7


def test_records_expire_and_every_write_refreshes_the_ttl(redis_server: RedisServer) -> None:
    raw = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        store = RedisStateStore(redis_server.url, key_prefix="t:", ttl_s=1000)
        await store.compare_and_set("m", None, make_record(1, 0.0))
        raw.expire("t:m", 10)  # most of the TTL has gone by
        await store.compare_and_set("m", 1, make_record(2, 1.0))
        await store.close()

    run(scenario())
    ttl = raw.ttl("t:m")
    raw.close()
    assert 10 < ttl <= 1000


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param({"v": "4", "data": '{"state": {"v": 99}}'}, id="newer-state-version"),
        pytest.param({"v": "4", "data": "{not json"}, id="not-json"),
        pytest.param({"v": "4"}, id="no-data-field"),
        pytest.param({"v": "four", "data": "{}"}, id="version-not-a-number"),
    ],
)
def test_unreadable_record_is_reported_and_then_replaced(
    redis_server: RedisServer, stored: dict[str, str]
) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    raw.hset("depthscale:state:m", mapping=stored)

    async def scenario() -> tuple[StateUnreadable | None, bool, Record | None]:
        store = RedisStateStore(redis_server.url)
        try:
            await store.load("m")
            unreadable = None
        except StateUnreadable as exc:
            unreadable = exc
        won = await store.compare_and_set("m", None, make_record(3, 9.0))
        after = await store.load("m")
        await store.close()
        return unreadable, won, after

    unreadable, won, after = run(scenario())
    raw.close()
    assert unreadable is not None, "an unreadable record must be reported, not read as absent"
    assert won is True
    assert after is not None
    assert after.decision.desired == 3


def test_redis_down_is_unavailable_with_password_redacted() -> None:
    url = f"redis://scaler:hunter2secret@127.0.0.1:{free_port()}/0"

    async def scenario() -> None:
        store = RedisStateStore(url, timeout_s=0.5)
        try:
            await store.load("m")
        finally:
            await store.close()

    with pytest.raises(StateUnavailable) as info:
        run(scenario())
    assert "hunter2secret" not in str(info.value)
    assert "scaler:***@127.0.0.1" in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda d: d["decision"].update(reason="panic"), "panic", id="unknown-reason"),
        pytest.param(lambda d: d.pop("at_s"), "at_s", id="missing-at_s"),
        pytest.param(lambda d: d["state"].pop("desired"), "desired", id="missing-state-field"),
        pytest.param(lambda d: d["decision"].update(desired="many"), "many", id="bad-desired"),
    ],
)
def test_bad_stored_json_names_the_field(
    mutate: Callable[[dict[str, Any]], Any], field: str
) -> None:
    import json

    data = json.loads(record_to_json(make_record(2, 3.0)))
    mutate(data)
    with pytest.raises(StateError, match=field):
        record_from_json(json.dumps(data), version=1)


def test_stored_form_is_plain_json_with_the_reason_as_its_name(redis_server: RedisServer) -> None:
    # Other tools (and an operator with redis-cli) read the record: keep it plain JSON.
    import json

    async def write() -> None:
        store = RedisStateStore(redis_server.url)
        await store.compare_and_set("ns/m", None, make_record(4, 12.5, Reason.SCALE_UP_LOOKAHEAD))
        await store.close()

    run(write())
    raw = redis.Redis.from_url(redis_server.url)
    stored = raw.hgetall("depthscale:state:ns/m")
    ttl = raw.ttl("depthscale:state:ns/m")
    raw.close()
    data = json.loads(stored[b"data"])
    assert stored[b"v"] == b"1"
    assert data["decision"]["reason"] == "scale-up-lookahead"
    assert data["decision"]["desired"] == 4
    assert data["state"]["desired"] == 4
    assert data["at_s"] == 12.5
    assert 6 * 24 * 3600 < ttl <= 7 * 24 * 3600


def test_writes_work_again_after_redis_restarts_empty(redis_server: RedisServer) -> None:
    # The compare-and-set script is cached by Redis; a restarted Redis has forgotten it.
    async def scenario() -> list[object]:
        store = RedisStateStore(redis_server.url)
        out: list[object] = [await store.compare_and_set("m", None, make_record(1, 0.0))]
        redis_server.stop()
        try:
            await store.load("m")
        except StateUnavailable as exc:
            out.append(exc)
        redis_server.start()
        out.append(await store.load("m"))  # persistence is off: the record is gone
        out.append(await store.compare_and_set("m", None, make_record(2, 30.0)))
        out.append(await store.load("m"))
        await store.close()
        return out

    first, down, gone, won, after = run(scenario())
    assert first is True
    assert isinstance(down, StateUnavailable)
    assert gone is None
    assert won is True
    assert isinstance(after, Record)
    assert after.decision.desired == 2
