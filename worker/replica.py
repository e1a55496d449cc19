"""One call to the replica's OpenAI-compatible API, and what its outcome means for the task.

vLLM's OpenAI server answers ``POST /v1/completions`` and ``POST /v1/chat/completions`` with a
JSON body (``stream`` false), an error as ``{"error": {"message": …}}`` (or FastAPI's
``{"detail": …}``) with a 4xx status for a bad request (400: invalid parameters; 404: a model it
does not serve) and 5xx for its own failures (vllm/entrypoints/openai/api_server.py). It takes a
caller's request id from the ``X-Request-Id`` header (``OpenAIServing._base_request_id``,
vllm/entrypoints/openai/engine/serving.py); the worker sends the Celery task id there, so the
replica's logs and answer ids (``cmpl-<id>``, ``chatcmpl-<id>``) name the task.

Outcomes, by what a retry can change:

- ``Unavailable`` (retry with backoff): the connection was refused, reset or timed out while
  connecting (the replica is starting, restarting, or gone), or it answered 429 or a 5xx (408
  too: the server gave up on reading the request).
- ``Rejected`` (fail at once, never retried): any other 4xx. The same request would be refused
  again.
- ``TooSlow`` (fail, not retried): no answer within ``max_generation_seconds``. Running it again
  would cost the GPU the same time; the caller decides.
"""

from __future__ import annotations

import json
import ssl
import threading
from typing import Any

import httpx

# Endpoint names a task may ask for, relative to ``/v1/``.
ENDPOINTS = frozenset({"completions", "chat/completions"})

# Statuses worth retrying: the replica may answer differently later (RFC 9110: 408, 429 with
# Retry-After, 5xx).
RETRYABLE_STATUSES = frozenset({408, 425, 429})

# At most this much of an error body goes into a task's error text.
_ERROR_TEXT_LIMIT = 500


class ReplicaError(Exception):
    """The replica call did not produce a completion. ``status`` is the HTTP status, or None when
    no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.status))


class Unavailable(ReplicaError):
    """Refused, reset, 408/425/429 or 5xx: retried with backoff."""


class Rejected(ReplicaError):
    """A 4xx answer, or a request the worker refuses before calling: not retried."""


class TooSlow(ReplicaError):
    """No answer within ``max_generation_seconds``: not retried."""


def is_retryable(status: int) -> bool:
    """True for statuses a later attempt may turn into a success (408, 425, 429, 5xx)."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def error_text(response: httpx.Response) -> str:
    """The server's own error message when it sent one (OpenAI's ``error.message``, FastAPI's
    ``detail``), else the start of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:_ERROR_TEXT_LIMIT]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:_ERROR_TEXT_LIMIT]
        if isinstance(error, str):
            return error[:_ERROR_TEXT_LIMIT]
        if "detail" in body:
            return json.dumps(body["detail"])[:_ERROR_TEXT_LIMIT]
    return response.text[:_ERROR_TEXT_LIMIT]


def prepare(endpoint: str, body: object, model: str) -> dict[str, Any]:
    """The JSON body to send: ``body`` with ``model`` filled in. Refuses (``Rejected``) an unknown
    endpoint, a body that is not a JSON object, another model's request, and ``stream: true``
    (a streamed answer cannot be stored as one result)."""
    if endpoint not in ENDPOINTS:
        raise Rejected(f"endpoint: {endpoint!r} is not one of {sorted(ENDPOINTS)}")
    if not isinstance(body, dict):
        raise Rejected(f"body: must be a JSON object, got {type(body).__name__}")
    asked = body.get("model", model)
    if asked != model:
        raise Rejected(f"model: this worker serves {model!r}, the request names {asked!r}")
    if body.get("stream"):
        raise Rejected("stream: streamed answers are not supported through the queue")
    return {**body, "model": model}


class Replica:
    """The replica's HTTP API for all of a worker's threads: each thread has its own httpx client
    holding one keep-alive connection. A single client shared by 256 threads serialises them on
    its pool's lock and scans every pooled connection per request (httpcore's pool is O(size)
    per request), which cost more CPU per task than everything else in the worker together."""

    def __init__(
        self,
        base_url: str,
        *,
        max_generation_seconds: float,
        connect_timeout_seconds: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(
            max_generation_seconds, connect=connect_timeout_seconds, pool=max_generation_seconds
        )
        self._transport = transport
        # One TLS context for every thread's client (building one costs milliseconds and memory).
        self._tls = ssl.create_default_context()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        self._max_generation_seconds = max_generation_seconds

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self.base_url,
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                transport=self._transport,
                verify=self._tls,
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def call(self, endpoint: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """POST ``body`` to ``/v1/<endpoint>``; the parsed JSON answer, or a ``ReplicaError``."""
        url = f"/v1/{endpoint}"
        try:
            response = self._client().post(url, json=body, headers={"X-Request-Id": request_id})
        except httpx.ConnectTimeout as exc:
            raise Unavailable(f"replica {self.base_url}: connect timed out ({exc})") from None
        except httpx.TimeoutException:
            raise TooSlow(
                f"replica {self.base_url}: no answer within {self._max_generation_seconds:g} s "
                "(--max-generation-seconds)"
            ) from None
        except httpx.TransportError as exc:
            raise Unavailable(
                f"replica {self.base_url}: {type(exc).__name__}: {exc or 'connection failed'}"
            ) from None
        if response.status_code >= 400:
            text = error_text(response)
            message = f"replica answered {response.status_code} on {url}: {text}"
            if is_retryable(response.status_code):
                raise Unavailable(message, response.status_code)
            raise Rejected(message, response.status_code)
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Unavailable(
                f"replica answered {response.status_code} on {url} with a body that is not JSON",
                response.status_code,
            ) from None
        if not isinstance(answer, dict):
            raise Unavailable(
                f"replica answered {url} with a JSON {type(answer).__name__}", response.status_code
            )
        return answer

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
