"""The Celery configuration a worker runs with, as a pure function of its settings.

Each value and the reason for it (Celery's configuration reference and its glossary of
acknowledgement; kombu's Redis transport options):

- ``task_acks_late``: a message is acked after the task returns, not before it starts, so a
  worker killed mid-task leaves the message with the broker: RabbitMQ requeues it when the
  channel closes, Redis restores it after ``visibility_timeout``.
- ``task_reject_on_worker_lost``: with the prefork pool, a child process that dies mid-task
  requeues its message instead of acking it (the threads pool has no children; it matters only
  if someone runs this app with ``--pool prefork``).
- ``worker_prefetch_multiplier = 1``: a worker reserves at most ``concurrency`` messages, one per
  thread, so nothing waits behind a busy replica that an idle one could take, and priorities
  decide among everything not yet running.
- ``worker_pool = "threads"``, ``worker_concurrency = concurrency``: a task spends its life
  waiting on HTTP, so a thread per task costs a stack and a socket, where 256 prefork children
  would cost 256 interpreters (gigabytes); gevent would need monkey-patching httpx and Celery.
- ``broker_transport_options``: Redis ``visibility_timeout`` above the longest hold of a message
  (``WorkerSettings.visibility_timeout_seconds``); the restore sweep every
  ``restore_interval_seconds`` with its throttle at 1; ``priority_steps`` kombu's default.
- ``task_queues``: every consumed queue declared with ``x-max-priority`` (``worker/queues.py``).
- ``task_track_started``: a polling client sees STARTED once a replica has the request.
- ``broker_connection_retry_on_startup``: keep retrying a broker that is not up yet at start.
- ``worker_cancel_long_running_tasks_on_connection_loss = False``: a thread cannot be stopped;
  a task running when the broker connection drops finishes and stores its answer, and its
  message, which it can no longer ack, is delivered again (at least once).
"""

from __future__ import annotations

from typing import Any

from worker.queues import QUEUE_MAX_PRIORITY, REDIS_PRIORITY_STEPS, declared_queue
from worker.settings import Transport, WorkerSettings


def transport_options(settings: WorkerSettings) -> dict[str, Any]:
    """kombu ``broker_transport_options`` for the settings' broker."""
    if settings.transport is not Transport.REDIS:
        return {}
    return {
        **prefix_options(settings.key_prefix),
        "visibility_timeout": settings.visibility_timeout_seconds,
        "unacked_restore_interval": settings.restore_interval_seconds,
        "unacked_restore_throttle": 1,
        "priority_steps": list(REDIS_PRIORITY_STEPS),
    }


def prefix_options(key_prefix: str) -> dict[str, Any]:
    """kombu's ``global_keyprefix`` transport option, when there is a prefix."""
    return {"global_keyprefix": key_prefix} if key_prefix else {}


def client_config(broker_url: str, result_backend: str, key_prefix: str = "") -> dict[str, Any]:
    """What a publishing client needs: the broker (and its key prefix), the backend and the
    queue arguments."""
    return {
        "broker_transport_options": prefix_options(key_prefix),
        "broker_url": broker_url,
        "result_backend": result_backend,
        "task_queue_max_priority": QUEUE_MAX_PRIORITY,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
    }


def worker_config(settings: WorkerSettings) -> dict[str, Any]:
    """The whole Celery configuration of a worker (see the module docstring for each reason)."""
    return {
        **client_config(settings.broker_url, settings.result_backend),
        "broker_transport_options": transport_options(settings),
        "task_queues": [declared_queue(name) for name in settings.queues],
        "task_default_queue": settings.queues[0],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        "worker_prefetch_multiplier": 1,
        "worker_pool": "threads",
        "worker_concurrency": settings.concurrency,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }
