"""JSON log lines: one object per record, structured fields kept, credentials scrubbed."""

from __future__ import annotations

import json
import logging

import pytest

from scaler.logs import JsonFormatter, configure, redact


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("dial redis://app:s3cr3t@10.0.0.5:6379/0 failed", "s3cr3t", "redis://app:***@10.0.0.5"),
        ("rediss://:tok3n@cache.internal:6380", "tok3n", "rediss://:***@cache.internal"),
        ("redis://t0ken@cache:6379", "t0ken", "redis://***@cache"),
        ("amqp://guest:gu3st@rabbit//", "gu3st", "amqp://guest:***@rabbit"),
        ("redis://h:6379/0?password=pa55&db=1", "pa55", "password=***&db=1"),
    ],
)
def test_redact_hides_url_passwords(text: str, secret: str, kept: str) -> None:
    scrubbed = redact(text)
    assert secret not in scrubbed
    assert kept in scrubbed


def test_text_without_credentials_is_untouched() -> None:
    text = "broker 'main': redis://10.0.0.5:6379/0 answered in 1 ms (user@example)"
    assert redact(text) == text


def _record(msg: str, fields: dict[str, object] | None = None) -> logging.LogRecord:
    record = logging.LogRecord("depthscale.test", logging.INFO, __file__, 1, msg, None, None)
    if fields is not None:
        record.fields = fields
    return record


def test_formatter_writes_one_json_object_with_fields_scrubbed() -> None:
    line = JsonFormatter().format(
        _record(
            "decision for redis://u:hunter2@h/0",
            {"reason": "scale-up", "desired": 3, "urls": ["redis://:hunter2@h"]},
        )
    )
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "info"
    assert entry["reason"] == "scale-up"
    assert entry["desired"] == 3
    assert "hunter2" not in line


def test_exception_text_is_scrubbed() -> None:
    try:
        raise ConnectionError("cannot reach redis://app:hunter2@db:6379")
    except ConnectionError:
        record = _record("broker read failed")
        record.exc_info = __import__("sys").exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ConnectionError" in entry["error"]
    assert "hunter2" not in entry["error"]


def test_configure_refuses_unknown_levels() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure("verbose")
