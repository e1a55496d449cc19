"""Queue naming and priorities: the one convention the client, the worker and the scaler share.

Naming: a model's requests wait in the Celery queue named exactly as the model (the string the
ScaledObject's ``queues`` metadata lists); a model may have more queues (``llama-8b-batch``), and
its worker consumes all of them.

Priorities: callers speak one scale on both brokers, 0 (least urgent) to 9 (most urgent). The
brokers disagree on direction, so the number put on the message depends on the transport:

- RabbitMQ orders a queue declared with ``x-max-priority`` by the message's ``priority``, higher
  first (RabbitMQ's priority queue guide); the caller's priority goes on the message as it is.
- kombu's Redis transport files a message under the largest of ``priority_steps`` (default
  ``0, 3, 6, 9``) not above its ``priority``, one list per step, and its BRPOP reads the lists in
  step order, so 0 is served first (kombu/transport/redis.py: ``Channel._put``, ``_q_for_pri``,
  ``_brpop_start``); the message carries ``9 - priority``. With the default steps the ten levels
  fall into four bands served in turn: 7-9, 4-6, 1-3 and 0.
"""

from __future__ import annotations

from kombu.entity import Queue
from kombu.transport import redis as kombu_redis

from worker.settings import SettingsError, Transport

# The Celery task every request is: ``generate(endpoint, body)``; clients publish it by name.
TASK_NAME = "depthscale.generate"

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5

# Celery's ``task_queue_max_priority``: the ``x-max-priority`` argument every queue is declared
# with on RabbitMQ. Every client and worker must declare a queue with the same arguments, or
# RabbitMQ refuses the second declaration (PRECONDITION_FAILED).
QUEUE_MAX_PRIORITY = MAX_PRIORITY

# kombu's default Redis ``priority_steps`` (0, 3, 6, 9), read from kombu itself; the trigger's
# ``priorityLevels`` must list the same.
REDIS_PRIORITY_STEPS: tuple[int, ...] = tuple(kombu_redis.PRIORITY_STEPS)


def check_priority(priority: int) -> int:
    """``priority`` if it is an int in 0..9, else a ``SettingsError`` naming the field."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise SettingsError(f"priority: must be an integer 0 to 9, got {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise SettingsError(
            f"priority: must be 0 (least urgent) to 9 (most urgent), got {priority}"
        )
    return priority


def message_priority(priority: int, transport: Transport) -> int:
    """The ``priority`` to put on a message so that ``priority`` 9 is served first on either
    broker (see the module docstring)."""
    check_priority(priority)
    return MAX_PRIORITY - priority if transport is Transport.REDIS else priority


def redis_step(priority: int) -> int:
    """The kombu Redis priority step (list) a caller's priority lands in: 0 for 7-9, 3 for 4-6,
    6 for 1-3, 9 for 0 with the default steps."""
    on_message = message_priority(priority, Transport.REDIS)
    return max(step for step in REDIS_PRIORITY_STEPS if step <= on_message)


def declared_queue(name: str) -> Queue:
    """The kombu queue as every depthscale client and worker declares it: routed by its own name
    on the default direct exchange, ``x-max-priority`` set (ignored by Redis)."""
    arguments = {"x-max-priority": QUEUE_MAX_PRIORITY}
    return Queue(name, routing_key=name, queue_arguments=arguments)  # type: ignore[no-untyped-call]
