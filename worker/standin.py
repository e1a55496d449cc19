"""A stand-in for vLLM's OpenAI-compatible server, for tests and the demo (no GPU needed).

It serves what the worker and the scaler's world read from a replica:

- ``POST /v1/completions`` and ``POST /v1/chat/completions``: OpenAI-shaped answers
  (``choices``, ``usage``), validated as vLLM validates them: 400 with
  ``{"error": {"message", "type", "code"}}`` for a bad body, 404 for a model it does not serve;
- ``GET /health``: 200 once warm, 503 while warming up (vLLM's server is not listening at all
  then; the worker treats both as "retry later");
- ``GET /metrics``: Prometheus text with vLLM's gauges ``vllm:num_requests_running`` and
  ``vllm:num_requests_waiting`` (label ``model_name``), and a request counter;
- ``GET /standin/log``: every request it finished, in order, as JSON (``X-Request-Id``, status,
  start and end in seconds since start-up), so tests can count what each task cost.

Batching: ``max_num_seqs`` slots (vLLM's ``--max-num-seqs``); a request beyond them waits for a
slot (it counts as waiting), then holds one for ``prefill_seconds_per_token × prompt tokens +
decode_seconds_per_token × output tokens``, all times multiplied by ``time_scale``. Prompt
tokens are whitespace-separated words (at least 1); output tokens are ``max_tokens``
(default 16, as OpenAI's completions API).

Run: ``python -m worker.standin --port 8000 --model llama-8b --warmup-seconds 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class StandinConfig:
    """model:                     the one model name served (others answer 404).
    max_num_seqs:                 batch slots, requests generating at once (>= 1).
    prefill_seconds_per_token:    seconds per prompt token (>= 0), before time_scale.
    decode_seconds_per_token:     seconds per output token (>= 0), before time_scale.
    time_scale:                   multiplier on every latency and on the warm-up (> 0).
    warmup_seconds:               seconds after start before it serves, before time_scale (>= 0).
    max_model_len:                prompt + output tokens one request may hold (>= 1)."""

    model: str = "standin"
    max_num_seqs: int = 256
    prefill_seconds_per_token: float = 0.0002
    decode_seconds_per_token: float = 0.02
    time_scale: float = 1.0
    warmup_seconds: float = 0.0
    max_model_len: int = 4096

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError(f"--max-num-seqs: must be >= 1, got {self.max_num_seqs}")
        if self.max_model_len < 1:
            raise ValueError(f"--max-model-len: must be >= 1, got {self.max_model_len}")
        for name, value in (
            ("--prefill-seconds-per-token", self.prefill_seconds_per_token),
            ("--decode-seconds-per-token", self.decode_seconds_per_token),
            ("--warmup-seconds", self.warmup_seconds),
        ):
            if not 0 <= value < float("inf"):
                raise ValueError(f"{name}: must be a non-negative number, got {value}")
        if not 0 < self.time_scale < float("inf"):
            raise ValueError(f"--time-scale: must be > 0, got {self.time_scale}")

    def service_seconds(self, prompt_tokens: int, output_tokens: int) -> float:
        """Seconds one request holds a slot."""
        return self.time_scale * (
            self.prefill_seconds_per_token * prompt_tokens
            + self.decode_seconds_per_token * output_tokens
        )


class BadRequest(Exception):
    """A request vLLM would refuse: ``status`` 400 or 404, and its message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def count_tokens(text: str) -> int:
    """Prompt tokens as the stand-in counts them: words, at least 1."""
    return max(1, len(text.split()))


def parse_request(endpoint: str, body: object, config: StandinConfig) -> tuple[int, int]:
    """(prompt tokens, output tokens) of a request, or ``BadRequest``."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if model != config.model:
        raise BadRequest(f"The model `{model}` does not exist.", status=404)
    if body.get("stream"):
        raise BadRequest("stream is not supported by the stand-in")
    if endpoint == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompt_tokens = count_tokens(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompt_tokens = sum(count_tokens(p) for p in prompt)
        else:
            raise BadRequest("prompt: a string or a non-empty list of strings is required")
    else:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages: a non-empty list is required")
        prompt_tokens = 0
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                raise BadRequest(f"messages[{index}]: an object with a string content is required")
            if message.get("role") not in ("system", "user", "assistant", "tool", "developer"):
                raise BadRequest(f"messages[{index}].role: {message.get('role')!r} is not a role")
            prompt_tokens += count_tokens(message["content"])
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", DEFAULT_MAX_TOKENS))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest(f"max_tokens must be at least 1, got {max_tokens!r}.")
    if prompt_tokens + max_tokens > config.max_model_len:
        raise BadRequest(
            f"This model's maximum context length is {config.max_model_len} tokens. However, you "
            f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            "completion."
        )
    return prompt_tokens, max_tokens


def answer(
    endpoint: str, request_id: str, model: str, prompt_tokens: int, output_tokens: int, now: float
) -> dict[str, Any]:
    """An OpenAI-shaped answer of ``output_tokens`` words."""
    text = " ".join("token" for _ in range(output_tokens))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": prompt_tokens + output_tokens,
    }
    if endpoint == "completions":
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": "length"}
        kind, prefix = "text_completion", "cmpl"
    else:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "length",
        }
        kind, prefix = "chat.completion", "chatcmpl"
    return {
        "id": f"{prefix}-{request_id}",
        "object": kind,
        "created": int(now),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


@dataclass
class Standin:
    """The server's state: slots, counts and the log of finished requests."""

    config: StandinConfig
    started_at: float = 0.0
    running: int = 0
    waiting: int = 0
    served: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    _slots: asyncio.Semaphore | None = None

    def clock(self) -> float:
        return asyncio.get_running_loop().time()

    def warm(self, now: float) -> bool:
        return now - self.started_at >= self.config.warmup_seconds * self.config.time_scale

    async def on_startup(self, app: web.Application) -> None:
        self.started_at = self.clock()
        self._slots = asyncio.Semaphore(self.config.max_num_seqs)

    async def health(self, request: web.Request) -> web.Response:
        if not self.warm(self.clock()):
            return web.json_response({"status": "warming up"}, status=503)
        return web.Response(status=200)

    async def metrics(self, request: web.Request) -> web.Response:
        label = f'model_name="{self.config.model}"'
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{label}}} {self.running}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{label}}} {self.waiting}",
            "# HELP standin_requests_total Requests answered 200.",
            "# TYPE standin_requests_total counter",
            f"standin_requests_total{{{label}}} {self.served}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def history(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    def _record(self, request_id: str, endpoint: str, status: int, start: float) -> None:
        self.log.append(
            {
                "request_id": request_id,
                "endpoint": endpoint,
                "status": status,
                "start_s": start - self.started_at,
                "end_s": self.clock() - self.started_at,
            }
        )

    async def complete(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        start = self.clock()
        request_id = request.headers.get("X-Request-Id", f"standin-{len(self.log)}")
        if not self.warm(start):
            self._record(request_id, endpoint, 503, start)
            return _error(503, "the model is still loading", "ServiceUnavailableError")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            self._record(request_id, endpoint, 400, start)
            return _error(400, "request body is not valid JSON", "BadRequestError")
        try:
            prompt_tokens, output_tokens = parse_request(endpoint, body, self.config)
        except BadRequest as exc:
            self._record(request_id, endpoint, exc.status, start)
            kind = "NotFoundError" if exc.status == 404 else "BadRequestError"
            return _error(exc.status, str(exc), kind)
        assert self._slots is not None
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            await asyncio.sleep(self.config.service_seconds(prompt_tokens, output_tokens))
        finally:
            self.running -= 1
            self._slots.release()
        self.served += 1
        self._record(request_id, endpoint, 200, start)
        return web.json_response(
            answer(endpoint, request_id, self.config.model, prompt_tokens, output_tokens,
                   time.time())
        )  # fmt: skip


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": status}},
        status=status,
    )


def make_app(config: StandinConfig) -> web.Application:
    """The aiohttp application serving ``config``."""
    standin = Standin(config)
    app = web.Application()
    app.on_startup.append(standin.on_startup)
    app.router.add_get("/health", standin.health)
    app.router.add_get("/metrics", standin.metrics)
    app.router.add_get("/standin/log", standin.history)
    app.router.add_post("/v1/{endpoint:completions|chat/completions}", standin.complete)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m worker.standin", description=__doc__.split("\n")[0]
    )
    defaults = StandinConfig()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--max-num-seqs", type=int, default=defaults.max_num_seqs)
    parser.add_argument(
        "--prefill-seconds-per-token", type=float, default=defaults.prefill_seconds_per_token
    )
    parser.add_argument(
        "--decode-seconds-per-token", type=float, default=defaults.decode_seconds_per_token
    )
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale)
    parser.add_argument("--warmup-seconds", type=float, default=defaults.warmup_seconds)
    parser.add_argument("--max-model-len", type=int, default=defaults.max_model_len)
    args = parser.parse_args(argv)
    try:
        config = StandinConfig(
            model=args.model,
            max_num_seqs=args.max_num_seqs,
            prefill_seconds_per_token=args.prefill_seconds_per_token,
            decode_seconds_per_token=args.decode_seconds_per_token,
            time_scale=args.time_scale,
            warmup_seconds=args.warmup_seconds,
            max_model_len=args.max_model_len,
        )
    except ValueError as exc:
        parser.exit(1, f"error: {exc}\n")
    web.run_app(make_app(config), host=args.host, port=args.port, print=None,
                shutdown_timeout=5)  # fmt: skip


if __name__ == "__main__":
    main()
