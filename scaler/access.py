"""Per-broker settings the operator gives with the broker's URL: who may read it, and how its
Celery deployment lays out its keys.

The operator defines brokers (``serve --broker NAME=URL``); ScaledObject authors only name them.
depthscale's own settings ride on the URL as query parameters, which are removed before the URL
reaches the broker client:

- ``namespaces=a,b``: the namespaces whose ScaledObjects may name this broker (tenancy). Unset:
  every namespace, logged as a warning at start-up. Others get PERMISSION_DENIED.
- ``queues=llm-*``: shell-style patterns (``fnmatch``, comma-separated) every queue a trigger lists
  must match; unset: any queue.
- kombu's Redis transport options, as Celery's ``broker_transport_options`` name them
  (kombu/transport/redis.py ``Channel``): ``sep`` (the priority separator, default
  ``\\x06\\x16``), ``priority_steps`` (default ``0,3,6,9``), ``unacked_key`` (default
  ``unacked``) and ``global_keyprefix`` (default none). Metadata's ``priorityLevels`` and
  ``keyPrefix`` still override the last two per trigger.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scaler.ports import DEFAULT_PRIORITY_STEPS, DEFAULT_SEP, DEFAULT_UNACKED_KEY

OPTION_NAMES = ("namespaces", "queues", "sep", "priority_steps", "unacked_key", "global_keyprefix")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)  # an RFC 1123 label


class AccessDenied(Exception):
    """A trigger asked for a broker or queue its namespace may not read (PERMISSION_DENIED)."""


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """namespaces:     namespaces allowed to use the broker; None: all.
    queue_patterns: fnmatch patterns every queue must match; empty: any queue.
    sep, priority_steps, unacked_key, global_keyprefix: kombu's transport options."""

    namespaces: frozenset[str] | None = None
    queue_patterns: tuple[str, ...] = ()
    sep: str = DEFAULT_SEP
    priority_steps: tuple[int, ...] = DEFAULT_PRIORITY_STEPS
    unacked_key: str = DEFAULT_UNACKED_KEY
    global_keyprefix: str = ""

    def check(self, broker: str, namespace: str, queues: Sequence[str]) -> None:
        """AccessDenied naming the broker (never its location) when ``namespace`` may not read
        ``queues`` from it."""
        if self.namespaces is not None and namespace not in self.namespaces:
            raise AccessDenied(f"namespace {namespace!r} may not use broker {broker!r}")
        for queue in queues:
            if self.queue_patterns and not any(
                fnmatch.fnmatchcase(queue, pattern) for pattern in self.queue_patterns
            ):
                raise AccessDenied(
                    f"queue {queue[:64]!r} is not allowed on broker {broker!r} "
                    f"(allowed: {', '.join(self.queue_patterns)})"
                )


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def split_options(url: str) -> tuple[str, BrokerOptions]:
    """(the URL without depthscale's parameters, the options they set). ValueError names the
    parameter at fault, never the URL (which may hold a password)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in OPTION_NAMES}
    if len(ours) != sum(1 for k, _ in pairs if k in OPTION_NAMES):
        raise ValueError("a depthscale URL parameter is given twice")
    if not ours:
        return url, BrokerOptions()
    redis_only = sorted(set(ours) & {"sep", "priority_steps", "unacked_key", "global_keyprefix"})
    if redis_only and parts.scheme.lower() not in ("redis", "rediss", "unix"):
        raise ValueError(f"{redis_only[0]}: a kombu Redis transport option, not for this broker")
    rest = [(k, v) for k, v in pairs if k not in OPTION_NAMES]
    namespaces = None
    if "namespaces" in ours:
        names = _list(ours["namespaces"])
        bad = [n for n in names if not _NAMESPACE.fullmatch(n)]
        if not names or bad:
            raise ValueError(
                f"namespaces: {bad[0] if bad else ''!r} is not a namespace name "
                "(comma-separated RFC 1123 labels)"
            )
        namespaces = frozenset(names)
    patterns = tuple(_list(ours.get("queues", "")))
    if "queues" in ours and not patterns:
        raise ValueError("queues: empty pattern list")
    sep = ours.get("sep", DEFAULT_SEP)
    if not sep or len(sep) > 8:
        raise ValueError("sep: must be 1 to 8 characters")
    steps = DEFAULT_PRIORITY_STEPS
    if "priority_steps" in ours:
        parts_ = _list(ours["priority_steps"])
        if not all(re.fullmatch(r"[0-9]{1,3}", p, re.ASCII) for p in parts_):
            raise ValueError("priority_steps: comma-separated whole numbers expected")
        levels = [int(p) for p in parts_]
        if not levels or len(levels) > 32 or any(not 0 <= n <= 255 for n in levels):
            raise ValueError("priority_steps: 1 to 32 distinct numbers within [0, 255] expected")
        if len(set(levels)) != len(levels):
            raise ValueError("priority_steps: a step is listed twice")
        steps = tuple(sorted(levels))
    unacked_key = ours.get("unacked_key", DEFAULT_UNACKED_KEY)
    prefix = ours.get("global_keyprefix", "")
    for name, value in (("unacked_key", unacked_key), ("global_keyprefix", prefix)):
        if len(value) > 255 or not value.isprintable() or (name == "unacked_key" and not value):
            raise ValueError(f"{name}: must be printable and at most 255 characters")
    clean = urlunsplit(parts._replace(query=urlencode(rest)))
    options = BrokerOptions(namespaces, patterns, sep, steps, unacked_key, prefix)
    return clean, options
