"""The stand-in replica served for real on a loopback port (aiohttp's TestServer), asked over HTTP:
slots, vLLM's gauges, latency proportional to tokens, the warm-up, vLLM-shaped errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from worker.standin import BadRequest, StandinConfig, make_app, parse_request

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await main()

    return asyncio.run(wrapped())


@asynccontextmanager
async def serving(config: StandinConfig) -> AsyncIterator[httpx.AsyncClient]:
    # The client first: building its TLS context takes a good part of a second, which would
    # eat into a warm-up the test is timing.
    async with httpx.AsyncClient(timeout=10) as client:
        server = TestServer(make_app(config), host="127.0.0.1")
        await server.start_server()
        client.base_url = httpx.URL(str(server.make_url("")))
        try:
            yield client
        finally:
            await server.close()


def gauges(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name.split("{")[0]] = float(value)
    return values


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], deadline_s: float = 10) -> None:
    """Poll ``check`` over HTTP (the state lives in the server) until it holds."""
    end = asyncio.get_running_loop().time() + deadline_s
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > end:
            pytest.fail(f"timed out after {deadline_s:g} s waiting for {what}")
        await asyncio.sleep(0.01)


def chat(max_tokens: int, model: str = "m1") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "a b c"}],
            "max_tokens": max_tokens}  # fmt: skip


def test_batch_slots_bound_the_requests_running_and_the_rest_wait() -> None:
    config = StandinConfig(model="m1", max_num_seqs=2, decode_seconds_per_token=0.05)

    async def main() -> None:
        async with serving(config) as client:
            calls = [asyncio.create_task(client.post("/v1/chat/completions", json=chat(8)))
                     for _ in range(5)]  # fmt: skip

            async def two_running_three_waiting() -> bool:
                metrics = gauges((await client.get("/metrics")).text)
                return (
                    metrics["vllm:num_requests_running"],
                    metrics["vllm:num_requests_waiting"],
                ) == (2, 3)

            await wait_for("two running, three waiting", two_running_three_waiting)
            answers = await asyncio.gather(*calls)
            assert [a.status_code for a in answers] == [200] * 5
            metrics = gauges((await client.get("/metrics")).text)
            assert metrics["vllm:num_requests_running"] == 0
            assert metrics["vllm:num_requests_waiting"] == 0
            assert metrics["standin_requests_total"] == 5

    run(main)


@pytest.mark.parametrize(("time_scale", "tokens"), [(1.0, 10), (0.5, 20), (2.0, 5)])
def test_latency_is_prefill_plus_decode_per_token_times_the_scale(
    time_scale: float, tokens: int
) -> None:
    config = StandinConfig(
        model="m1",
        prefill_seconds_per_token=0.01,
        decode_seconds_per_token=0.02,
        time_scale=time_scale,
    )
    expected = time_scale * (0.01 * 3 + 0.02 * tokens)  # "a b c": 3 prompt tokens

    async def main() -> None:
        async with serving(config) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            answer = await client.post("/v1/chat/completions", json=chat(tokens))
            elapsed = loop.time() - start
            assert answer.status_code == 200
            assert answer.json()["usage"] == {
                "prompt_tokens": 3,
                "completion_tokens": tokens,
                "total_tokens": 3 + tokens,
            }
            assert expected <= elapsed < expected + 0.5

    run(main)


def test_health_answers_503_until_warm_and_requests_too() -> None:
    config = StandinConfig(model="m1", warmup_seconds=1.0)

    async def main() -> None:
        async with serving(config) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert (await client.get("/health")).status_code == 503
            early = await client.post("/v1/completions", json={"model": "m1", "prompt": "x"})
            assert early.status_code == 503
            assert "loading" in early.json()["error"]["message"]

            async def healthy() -> bool:
                return (await client.get("/health")).status_code == 200

            await wait_for("health", healthy)
            assert loop.time() - start >= 1.0
            answer = await client.post("/v1/completions", json={"model": "m1", "prompt": "x y"})
            assert answer.status_code == 200
            assert answer.json()["choices"][0]["text"] == " ".join(["token"] * 16)

    run(main)


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "message"),
    [
        ("completions", {"model": "other", "prompt": "x"}, 404, "The model `other` does not exist."),
        ("completions", {"model": "m1"}, 400, "prompt:"),
        ("completions", {"model": "m1", "prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
        ("completions", {"model": "m1", "prompt": "x", "stream": True}, 400, "stream"),
        ("chat/completions", {"model": "m1", "messages": []}, 400, "messages:"),
        ("chat/completions", {"model": "m1", "messages": [{"role": "x", "content": "y"}]}, 400,
         "messages[0].role"),
        ("chat/completions", chat(5000), 400, "This model's maximum context length is 4096 tokens"),
    ],
)  # fmt: skip
def test_bad_requests_answer_like_vllm(
    endpoint: str, body: dict[str, object], status: int, message: str
) -> None:
    async def main() -> None:
        async with serving(StandinConfig(model="m1")) as client:
            answer = await client.post(f"/v1/{endpoint}", json=body)
            assert answer.status_code == status
            error = answer.json()["error"]
            assert error["message"].startswith(message)
            assert error["code"] == status
            log = (await client.get("/standin/log")).json()
            assert [record["status"] for record in log] == [status]

    run(main)


@pytest.mark.parametrize(
    "change",
    [{"max_num_seqs": 0}, {"time_scale": 0}, {"decode_seconds_per_token": -1},
     {"warmup_seconds": float("nan")}, {"max_model_len": 0}],
)  # fmt: skip
def test_bad_config_is_refused(change: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"^--"):
        StandinConfig(**change)  # type: ignore[arg-type]


@given(
    words=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=50),
    max_tokens=st.integers(1, 200),
    limit=st.integers(1, 150),
    chat=st.booleans(),
)
def test_requests_count_prompt_words_and_refuse_past_the_context(
    words: list[str], max_tokens: int, limit: int, chat: bool
) -> None:
    config = StandinConfig(model="m1", max_model_len=limit)
    text = " ".join(words)
    if chat:
        endpoint = "chat/completions"
        body: dict[str, object] = {"model": "m1", "max_tokens": max_tokens,
                                   "messages": [{"role": "user", "content": text}]}  # fmt: skip
    else:
        endpoint, body = "completions", {"model": "m1", "max_tokens": max_tokens, "prompt": text}
    if len(words) + max_tokens <= limit:
        assert parse_request(endpoint, body, config) == (len(words), max_tokens)
    else:
        with pytest.raises(BadRequest, match=f"maximum context length is {limit} tokens"):
            parse_request(endpoint, body, config)
