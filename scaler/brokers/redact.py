"""Keep credentials out of logs and error text: broker URLs carry passwords."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"


def redact_url(url: str) -> str:
    """The URL with its password (and any ``password=`` query value) replaced by ``***``.

    ``redis://user:s3cret@host:6379/0`` -> ``redis://user:***@host:6379/0``. A URL that cannot be
    parsed is replaced whole, since it may hold a secret in a shape we do not recognise.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostinfo = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = (
                f"{user}:{REDACTED}@{hostinfo}" if ":" in userinfo else f"{REDACTED}@{hostinfo}"
            )
        query = (
            "&".join(
                f"{kv.split('=', 1)[0]}={REDACTED}" if kv.lower().startswith("password=") else kv
                for kv in parts.query.split("&")
            )
            if parts.query
            else ""
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return REDACTED


def secrets_of(url: str) -> tuple[str, ...]:
    """Every secret string the URL carries (password, raw and percent-decoded), longest first."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    if parts.password:
        found.update({parts.password, unquote(parts.password)})
    for kv in parts.query.split("&"):
        key, _, value = kv.partition("=")
        if key.lower() == "password" and value:
            found.update({value, unquote(value)})
    if "@" in parts.netloc and ":" not in parts.netloc.rsplit("@", 1)[0]:
        # redis://secret@host: a password given without a user name.
        token = parts.netloc.rsplit("@", 1)[0]
        if token:
            found.update({token, unquote(token)})
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def redact_text(text: str, url: str) -> str:
    """``text`` with every secret of ``url`` replaced by ``***`` (for exception messages)."""
    for secret in secrets_of(url):
        text = text.replace(secret, REDACTED)
    return text
