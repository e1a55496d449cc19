"""What each answer of a replica means for the task: retried, refused, or too slow.

Statuses the stand-in never sends (429, 5xx, a body that is not JSON) come through httpx's
transport seam (``MockTransport``); the worker's own client and error handling run unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.replica import (
    Rejected,
    Replica,
    ReplicaError,
    TooSlow,
    Unavailable,
    is_retryable,
    prepare,
)


def replica(handler: Callable[[httpx.Request], httpx.Response]) -> Replica:
    return Replica(
        "http://vllm:8000/",
        max_generation_seconds=5,
        connect_timeout_seconds=1,
        transport=httpx.MockTransport(handler),
    )


def answering(status: int, body: object) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return handler


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def test_the_request_goes_to_v1_with_the_task_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "cmpl-1", "choices": []})

    answer = replica(handler).call("chat/completions", {"model": "m1"}, request_id="task-7")
    assert answer == {"id": "cmpl-1", "choices": []}
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", "http://vllm:8000/v1/chat/completions")
    assert request.headers["X-Request-Id"] == "task-7"
    assert json.loads(request.content) == {"model": "m1"}


VLLM_ERROR = {"error": {"message": "max_tokens is too large", "type": "BadRequestError"}}


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (400, VLLM_ERROR, Rejected, "replica answered 400 on /v1/completions: max_tokens is too large"),
        (404, {"error": {"message": "The model `x` does not exist."}}, Rejected, "does not exist"),
        (422, {"detail": [{"loc": ["body", "prompt"]}]}, Rejected, '"prompt"'),
        (413, b"too big", Rejected, "413 on /v1/completions: too big"),
        (429, {"error": "rate limited"}, Unavailable, "429 on /v1/completions: rate limited"),
        (408, b"", Unavailable, "408"),
        (500, b"Internal Server Error", Unavailable, "500 on /v1/completions: Internal Server Error"),
        (503, VLLM_ERROR, Unavailable, "503"),
        (200, b"<html>", Unavailable, "not JSON"),
        (200, [1, 2], Unavailable, "JSON list"),
    ],
)  # fmt: skip
def test_answers_are_classified_by_what_a_retry_can_change(
    status: int, body: object, kind: type[ReplicaError], text: str
) -> None:
    with pytest.raises(ReplicaError) as caught:
        replica(answering(status, body)).call("completions", {}, request_id="t")
    assert type(caught.value) is kind
    assert text in str(caught.value)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), Unavailable, "Connection refused"),
        (httpx.ConnectTimeout("slow"), Unavailable, "connect timed out"),
        (httpx.RemoteProtocolError("peer closed connection"), Unavailable, "peer closed"),
        (httpx.ReadTimeout("slow"), TooSlow, "no answer within 5 s"),
    ],
)
def test_transport_failures(exc: Exception, kind: type[ReplicaError], text: str) -> None:
    with pytest.raises(ReplicaError) as caught:
        replica(raising(exc)).call("completions", {}, request_id="t")
    assert type(caught.value) is kind
    assert text in str(caught.value)


@given(st.integers(100, 599))
def test_only_408_425_429_and_5xx_are_retried(status: int) -> None:
    assert is_retryable(status) == (status in (408, 425, 429) or status >= 500)


@pytest.mark.parametrize(
    ("endpoint", "body", "text"),
    [
        ("embeddings", {}, "endpoint:"),
        ("completions", ["not", "an", "object"], "body:"),
        ("completions", {"model": "other"}, "model: this worker serves 'm1'"),
        ("chat/completions", {"stream": True}, "stream:"),
    ],
)
def test_requests_refused_before_any_call(endpoint: str, body: object, text: str) -> None:
    with pytest.raises(Rejected, match=text):
        prepare(endpoint, body, "m1")


def test_prepare_fills_in_the_model() -> None:
    assert prepare("completions", {"prompt": "x"}, "m1") == {"prompt": "x", "model": "m1"}


def test_errors_survive_pickling_with_their_status() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(Unavailable("replica answered 503", 503)))
    assert (type(error), str(error), error.status) == (Unavailable, "replica answered 503", 503)
