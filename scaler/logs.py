"""Structured JSON logs: one object per line, each decision with its reason, no credentials.

Every record passes through ``JsonFormatter``, which scrubs the userinfo of any URL in the message
and in the structured fields (``redis://user:pw@host`` → ``redis://user:***@host``), so a broker URL
that slips into an exception text never reaches the log with its password.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from scaler.brokers.redact import redact

FIELDS_ATTR = "fields"
"""Pass structured fields as ``log.info(msg, extra={"fields": {...}})``."""


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields}`` on one line; ``ts`` is UTC ISO-8601."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(str(key), _scrub(value))
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


LEVELS = ("debug", "info", "warning", "error")


def configure(level: str = "info") -> None:
    """Send every log record to stderr as JSON at ``level`` (one of ``LEVELS``)."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
