"""Keep credentials out of logs and error text: broker URLs carry passwords.

Redaction works on the text, before and without any URL parsing, so a URL too malformed to parse
(a ``#``, ``/`` or ``@`` inside an unencoded password, a missing ``=`` between name and URL) is
hidden all the same: after every ``scheme://``, everything up to the last ``@`` before the next
whitespace is userinfo, and its password (or the whole of it, when it has no ``:``) becomes
``***``; so does every ``password=`` query value. One pass, linear in the text's length, whatever
the text holds (a regex that restarts at every letter of a long word is quadratic, and a ScaledObject
author chooses the words that reach an error message).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

REDACTED = "***"

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_MAX_SCHEME = 32
_SPACE = re.compile(r"\s")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]+")


def _userinfos(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL userinfo in ``text``, in order, not overlapping."""
    spans: list[tuple[int, int]] = []
    position = 0
    while True:
        found = text.find("://", position)
        if found < 0:
            return spans
        scheme = found
        while scheme > 0 and found - scheme < _MAX_SCHEME and text[scheme - 1] in _SCHEME_CHARS:
            scheme -= 1
        start = found + 3
        space = _SPACE.search(text, start)
        end = len(text) if space is None else space.start()
        at = text.rfind("@", start, end)
        if scheme < found and at >= 0:
            spans.append((start, at))
        position = end  # the rest of this word is consumed: every character is visited once


def _hidden(userinfo: str) -> str:
    user, sep, _secret = userinfo.partition(":")
    return f"{user}:{REDACTED}" if sep else REDACTED


def redact(text: str) -> str:
    """``text`` with the password of every URL in it, and every ``password=`` value, replaced by
    ``***``. Linear in ``len(text)``."""
    spans = _userinfos(text)
    if spans:
        parts: list[str] = []
        last = 0
        for start, end in spans:
            parts.append(text[last:start])
            parts.append(_hidden(text[start:end]))
            last = end
        parts.append(text[last:])
        text = "".join(parts)
    return _PASSWORD_PARAM.sub(rf"\g<1>{REDACTED}", text)


def redact_url(url: str) -> str:
    """The URL with its password (and any ``password=`` query value) replaced by ``***``:
    ``redis://user:s3cret@host:6379/0`` -> ``redis://user:***@host:6379/0``. Text that is not
    a URL at all (no ``scheme://``) but holds an ``@`` is replaced whole, since it may hold a
    secret in a shape we do not recognise."""
    if "://" not in url and "@" in url:
        return REDACTED
    return redact(url)


def secrets_of(url: str) -> tuple[str, ...]:
    """Every secret string ``url`` carries (passwords, raw and percent-decoded), longest first,
    found as ``redact`` finds them, so a malformed URL's secret is found too."""
    found: set[str] = set()
    for start, end in _userinfos(url):
        userinfo = url[start:end]
        _user, sep, secret = userinfo.partition(":")
        token = secret if sep else userinfo
        if token:
            found.update({token, unquote(token)})
    for match in _PASSWORD_PARAM.finditer(url):
        value = match[0][len(match[1]) :]
        found.update({value, unquote(value)})
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def redact_text(text: str, url: str) -> str:
    """``text`` (an exception message, say) with every secret of ``url`` replaced by ``***``,
    then every URL password in it."""
    for secret in secrets_of(url):
        text = text.replace(secret, REDACTED)
    return redact(text)
