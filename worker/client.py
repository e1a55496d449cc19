"""Submit a request to a model and wait for, or poll, its answer.

    client = Client(broker_url, result_backend)
    task_id = client.submit("llama-8b", {"messages": [{"role": "user", "content": "Hi"}]},
                            priority=7)
    answer = client.wait(task_id, timeout_s=120)       # the replica's JSON answer
    client.poll(task_id)                               # Status(state="SUCCESS", answer=…)

The request goes to the queue named as the model unless ``queue`` says otherwise
(``worker/queues.py``), as Celery task ``depthscale.generate``; priority 9 is served first on
either broker. The client needs no worker code: it publishes by task name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult

from worker.celeryconf import client_config
from worker.queues import DEFAULT_PRIORITY, TASK_NAME, declared_queue, message_priority
from worker.replica import ENDPOINTS
from worker.settings import SettingsError, Transport, parse_queues, transport_of


class RequestFailed(Exception):
    """The task ended in failure: ``error_type`` names the worker's exception (``Rejected`` for a
    4xx, ``Unavailable`` after the last retry, ``TooSlow``), ``message`` says why."""

    def __init__(self, task_id: str, error_type: str, message: str) -> None:
        super().__init__(f"task {task_id}: {error_type}: {message}")
        self.task_id = task_id
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Status:
    """Where a request is. state: Celery's PENDING (queued, or unknown), STARTED (a replica has
    it), RETRY (waiting to try again), SUCCESS or FAILURE. answer: the replica's JSON answer on
    SUCCESS; error: ``"Type: message"`` on FAILURE or RETRY."""

    state: str
    answer: dict[str, Any] | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.state in ("SUCCESS", "FAILURE", "REVOKED")


def _error_text(result: object) -> tuple[str, str]:
    return type(result).__name__, str(result)


class Client:
    """Publishes requests and reads their results. One per process; thread-safe as Celery's
    producer pool is."""

    def __init__(self, broker_url: str, result_backend: str, *, key_prefix: str = "") -> None:
        """``key_prefix``: the workers' ``--key-prefix`` (Redis only), "" for none."""
        self.transport = transport_of(broker_url, "broker_url")
        if key_prefix and self.transport is not Transport.REDIS:
            raise SettingsError("key_prefix: only a Redis broker has key prefixes")
        self.app = Celery("depthscale-client", set_as_current=False)
        self.app.conf.update(client_config(broker_url, result_backend, key_prefix))
        self._declared: set[str] = set()

    def _declare(self, queue: str) -> None:
        """Declare the queue once, with the worker's arguments: on RabbitMQ a message for a
        queue nobody declared yet would be dropped by the default exchange."""
        if queue in self._declared or self.transport is not Transport.AMQP:
            return
        with self.app.connection_for_write() as connection:
            bound = declared_queue(queue)(connection.default_channel)
            bound.declare()  # type: ignore[no-untyped-call]
        self._declared.add(queue)

    def submit(
        self,
        model: str,
        body: dict[str, Any],
        *,
        endpoint: str = "chat/completions",
        priority: int = DEFAULT_PRIORITY,
        queue: str | None = None,
    ) -> str:
        """Queue one request for ``model``; its task id. ``endpoint``: ``"chat/completions"`` or
        ``"completions"``; ``priority``: 0 (least urgent) to 9 (most urgent)."""
        if endpoint not in ENDPOINTS:
            raise SettingsError(f"endpoint: {endpoint!r} is not one of {sorted(ENDPOINTS)}")
        if body.get("model", model) != model:
            raise SettingsError(f"body.model: {body['model']!r} differs from model {model!r}")
        names = parse_queues(queue if queue is not None else model, "queue")
        if len(names) != 1:
            raise SettingsError(f"queue: one queue name, got {len(names)}")
        name = names[0]
        on_message = message_priority(priority, self.transport)
        self._declare(name)
        result = self.app.send_task(
            TASK_NAME,
            args=(endpoint, {**body, "model": model}),
            queue=declared_queue(name),
            routing_key=name,
            priority=on_message,
        )
        return str(result.id)

    def poll(self, task_id: str) -> Status:
        """The request's state now, without waiting."""
        result = AsyncResult(task_id, app=self.app)
        state = str(result.state)
        if state == "SUCCESS":
            return Status(state, answer=result.result)
        if state in ("FAILURE", "RETRY"):
            kind, text = _error_text(result.result)
            return Status(state, error=f"{kind}: {text}")
        return Status(state)

    def wait(self, task_id: str, timeout_s: float) -> dict[str, Any]:
        """The replica's answer, waiting at most ``timeout_s`` seconds (TimeoutError past it);
        ``RequestFailed`` when the task failed."""
        result = AsyncResult(task_id, app=self.app)
        try:
            value = result.get(timeout=timeout_s, propagate=False, disable_sync_subtasks=False)
        except ResultTimeout:
            raise TimeoutError(f"task {task_id}: no result within {timeout_s:g} s") from None
        if result.state == "SUCCESS":
            answer: dict[str, Any] = value
            return answer
        kind, text = _error_text(value)
        raise RequestFailed(task_id, kind, text)

    def close(self) -> None:
        self.app.close()
