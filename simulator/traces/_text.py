"""Refuse what is not a line-oriented text trace before parsing it, in one line."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from simulator.traces._chunks import open_binary
from simulator.traces.trace import TraceError

SNIFF_BYTES = 64 * 1024
"""Bytes read from a file's start (decompressed) to check it."""


def check_text(path: Path) -> None:
    """``TraceError`` unless the file starts as text with LF or CRLF line ends: a NUL byte or
    invalid UTF-8 (binary content), or a CR not followed by LF (classic Mac line ends), within
    its first 64 KB."""
    file = str(path)
    try:
        with open_binary(path) as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TraceError(file, None, f"cannot read: {exc}") from None
    line = head.count(b"\n", 0, max(head.find(b"\0"), 0)) + 1
    if b"\0" in head:
        raise TraceError(file, line, "binary content (a NUL byte), not a text trace")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the 64 KB edge
            line = head.count(b"\n", 0, exc.start) + 1
            raise TraceError(file, line, "not UTF-8 text (binary content?)") from None
    bare = re.search(rb"\r(?!\n)", head[:-1] if head.endswith(b"\r") else head)
    if bare is not None:
        line = head.count(b"\n", 0, bare.start()) + 1
        raise TraceError(
            file, line, "line ends in a bare CR (old Mac line endings); convert them to LF"
        )
