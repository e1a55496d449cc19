"""The Celery application beside one vLLM replica, and its one task.

``celery -A worker.app worker`` builds the app from environment variables (``worker/settings.py``:
``ENV_VARS``) on first use; ``depthscale worker`` builds it from flags (``worker/cli.py``).

The task, ``depthscale.generate(endpoint, body)``: ``endpoint`` is ``"completions"`` or
``"chat/completions"``, ``body`` the OpenAI request as JSON. It returns the replica's JSON answer,
which Celery stores in the result backend. A replica that refuses connections or answers
408/425/429/5xx is retried with exponential backoff (a new message with a countdown, same queue
and priority); a 4xx request error fails the task at once with the replica's message.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

from celery import Celery, Task

from worker.celeryconf import worker_config
from worker.queues import TASK_NAME
from worker.replica import Rejected, Replica, TooSlow, Unavailable, prepare
from worker.settings import WorkerSettings, settings_from_env


def retry_delay_seconds(retries: int, base: float, cap: float, unit: float) -> float:
    """Countdown before retry number ``retries + 1``, seconds: ``base × 2^retries`` capped at
    ``cap``, then jittered into its upper half by ``unit`` in [0, 1), so a fleet of workers
    retrying one replica does not knock in step."""
    ceiling = min(cap, base * 2.0 ** min(retries, 64))
    return ceiling / 2 + ceiling / 2 * unit


def generate(
    task: Task, replica: Replica, settings: WorkerSettings, endpoint: str, body: object
) -> dict[str, Any]:
    """The task's body: check the request, call the replica, retry what a retry can change."""
    request = prepare(endpoint, body, settings.model)
    try:
        return replica.call(endpoint, request, request_id=str(task.request.id))
    except Unavailable as exc:
        retries = int(task.request.retries or 0)
        if retries >= settings.max_retries:
            raise Unavailable(
                f"{exc} (gave up after {retries} retries, --max-retries)", exc.status
            ) from None
        countdown = retry_delay_seconds(
            retries, settings.retry_base_seconds, settings.retry_max_seconds, random.random()
        )
        raise task.retry(exc=exc, countdown=countdown, max_retries=settings.max_retries) from None


def make_app(settings: WorkerSettings) -> Celery:
    """A Celery app consuming ``settings.queues`` and calling ``settings.vllm_url``."""
    # httpx logs every request at INFO: at 256 tasks at once that drowns Celery's own lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = Celery("depthscale-worker", set_as_current=False)
    app.conf.update(worker_config(settings))
    replica = Replica(
        settings.vllm_url,
        max_generation_seconds=settings.max_generation_seconds,
        connect_timeout_seconds=settings.connect_timeout_seconds,
    )

    # ``throws``: expected failures are logged in one line, without a traceback.
    @app.task(name=TASK_NAME, bind=True, throws=(Rejected, TooSlow))  # type: ignore[untyped-decorator]
    def generate_task(self: Task, endpoint: str, body: object) -> dict[str, Any]:
        return generate(self, replica, settings, endpoint, body)

    return app


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``worker.app.app`` (what ``celery -A worker.app`` looks up): built from the environment
    on first access, so importing this module never needs a broker URL."""
    global _app
    if name not in ("app", "celery"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = make_app(settings_from_env(os.environ))
    return _app
