"""A minimal RESP client for the hot path: pre-packed pipelines of integer-reply commands.

The broker reader issues the same few commands thousands of times a second (LLEN per priority list,
one EVAL): redis-py's general pipeline machinery costs ~200 µs of CPU per read, most of it building
and parsing what never changes. Here a read is one write of bytes packed once per queue spec and
one scan of integer replies: one round trip, a few µs of Python.

Scope, on purpose: ``redis://``, ``rediss://`` and ``unix://`` URLs with optional user, password
and database; RESP2 replies of the kinds LLEN, EVAL, AUTH and SELECT return. Everything else is the
general client's job.

TLS takes redis-py's URL options: ``ssl_ca_certs`` (PEM CA file; else the system's trust),
``ssl_cert_reqs`` (``required`` or ``none``), and ``ssl_certfile``/``ssl_keyfile`` (PEM client
certificate and key, for a server run with ``tls-auth-clients yes``). The files are loaded when the
pool is made (a bad file is a ValueError then) and again for a new connection after any of them
changed, so a renewed client certificate is used without a restart.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

CRLF = b"\r\n"


class RespError(Exception):
    """Redis answered ``-ERR ...`` (the text is Redis's, without the dash)."""


class RespProtocolError(ConnectionError):
    """The stream did not hold the reply expected: the connection is unusable."""


def pack(*args: str | bytes | int) -> bytes:
    """One command in RESP: ``*<n>\\r\\n`` then ``$<len>\\r\\n<arg>\\r\\n`` per argument."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect; built from a URL by ``endpoint_from_url``."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix socket
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    verify: bool = True
    cert_file: str | None = None
    key_file: str | None = None


def endpoint_from_url(url: str) -> Endpoint:
    """``redis://[user[:password]@]host[:port][/db]``, ``rediss://...``, ``unix:///path?db=N``.
    ValueError names the part at fault (never the password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"scheme {scheme!r} is not redis, rediss or unix")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"db", "ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile"}
    if unknown:
        raise ValueError(f"unsupported URL option(s): {', '.join(sorted(unknown))}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if password is None and username is not None:
        # redis-py would send AUTH with a user and no password, and fail; say what to write.
        raise ValueError("a user name without a password: write redis://:PASSWORD@host")
    db_text = query.get("db") or (parts.path.lstrip("/") if scheme != "unix" else "") or "0"
    try:
        db = int(db_text)
    except ValueError:
        raise ValueError(f"database {db_text!r} is not an integer") from None
    cert_reqs = query.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in ("required", "none"):
        raise ValueError(f"ssl_cert_reqs {cert_reqs!r} is not 'required' or 'none'")
    if ("ssl_certfile" in query or "ssl_keyfile" in query) and scheme != "rediss":
        raise ValueError("ssl_certfile and ssl_keyfile need a rediss:// URL")
    if "ssl_keyfile" in query and "ssl_certfile" not in query:
        raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate)")
    if scheme == "unix":
        if not parts.path:
            raise ValueError("unix URL has no socket path")
        return Endpoint(path=parts.path, db=db, username=username, password=password)
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("port is not a number in 0-65535") from None
    return Endpoint(
        host=parts.hostname or "127.0.0.1",
        port=port,
        db=db,
        username=username,
        password=password,
        tls=scheme == "rediss",
        ca_file=query.get("ssl_ca_certs"),
        verify=cert_reqs == "required",
        cert_file=query.get("ssl_certfile"),
        key_file=query.get("ssl_keyfile"),
    )


class RespConnection:
    """One connection; ``call`` sends packed commands and returns their replies in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def usable(self) -> bool:
        """False once the peer closed. (A connection whose replies were not all read is never
        released as healthy, so no stray bytes can wait in it.)"""
        return not (self.reader.at_eof() or self.writer.is_closing())

    async def call(self, packed: bytes, replies: int) -> list[int | bytes | RespError]:
        self.writer.write(packed)
        return [await self._reply() for _ in range(replies)]

    async def _reply(self) -> int | bytes | RespError:
        try:
            line = await self.reader.readuntil(CRLF)
        except asyncio.LimitOverrunError:
            raise RespProtocolError("reply line too long") from None
        kind, body = line[:1], line[1:-2]
        try:
            if kind == b":":
                return int(body)
            if kind == b"+":
                return body
            if kind == b"-":
                return RespError(body.decode(errors="replace"))
            if kind == b"$":
                size = int(body)
                if size < 0:
                    return b""
                data = await self.reader.readexactly(size + 2)
                return data[:-2]
        except ValueError:
            raise RespProtocolError(f"malformed {kind!r} reply") from None
        raise RespProtocolError(f"unexpected reply type {kind!r}")

    def close(self) -> None:
        self.writer.close()


class RespPool:
    """Connections to one endpoint: at most ``max_open`` at once (further callers wait for one,
    within their own deadline), at most ``max_idle`` kept between calls.

    A connection that failed is dropped, and with it every idle one opened before the failure (a
    restarted server closed them all), so the first call after the server returns runs on a
    fresh connection."""

    def __init__(
        self, endpoint: Endpoint, connect_timeout_s: float, max_idle: int = 64, max_open: int = 128
    ) -> None:
        if not 1 <= max_idle <= max_open:
            raise ValueError(f"need 1 <= max_idle ({max_idle}) <= max_open ({max_open})")
        self.endpoint = endpoint
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self._slots = asyncio.Semaphore(max_open)
        self._idle: list[tuple[int, RespConnection]] = []
        self._generation = 0
        self._closed = False
        self._ssl: ssl.SSLContext | None = None
        self._ssl_stamp: tuple[tuple[int, int, int] | None, ...] = ()
        if endpoint.tls:
            self._check_tls_files()

    async def acquire(self) -> tuple[int, RespConnection]:
        """A usable connection and its generation; hand both back to ``release``."""
        await self._slots.acquire()
        try:
            while self._idle:
                generation, conn = self._idle.pop()
                if generation == self._generation and conn.usable:
                    return generation, conn
                conn.close()
            async with asyncio.timeout(self.connect_timeout_s):
                return self._generation, await self._connect()
        except BaseException:
            self._slots.release()
            raise

    def release(self, generation: int, conn: RespConnection, healthy: bool) -> None:
        """Take a connection back; ``healthy`` False when its call failed or was cut short."""
        self._slots.release()
        if not healthy:
            self._generation += 1
            self.clear()
            conn.close()
        elif self._closed or generation != self._generation or len(self._idle) >= self.max_idle:
            conn.close()
        else:
            self._idle.append((generation, conn))

    def close(self) -> None:
        """Close idle connections now and busy ones when they come back."""
        self._closed = True
        self.clear()

    def clear(self) -> None:
        for _, conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _connect(self) -> RespConnection:
        ep = self.endpoint
        if ep.path is not None:
            reader, writer = await asyncio.open_unix_connection(ep.path)
        else:
            reader, writer = await asyncio.open_connection(
                ep.host, ep.port, ssl=self._context() if ep.tls else None
            )
        conn = RespConnection(reader, writer)
        try:
            await self._handshake(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _handshake(self, conn: RespConnection) -> None:
        ep = self.endpoint
        commands: list[Sequence[str | int]] = []
        if ep.password is not None:
            auth: list[str | int] = ["AUTH", ep.password]
            if ep.username is not None:
                auth.insert(1, ep.username)
            commands.append(auth)
        if ep.db:
            commands.append(["SELECT", ep.db])
        if not commands:
            return
        replies = await conn.call(b"".join(pack(*c) for c in commands), len(commands))
        for command, reply in zip(commands, replies, strict=True):
            if isinstance(reply, RespError):
                # The reply never echoes the password; name the command only.
                raise RespError(f"{command[0]} failed: {reply}")

    def _check_tls_files(self) -> None:
        """ValueError naming the URL option whose file cannot be read or used."""
        ep = self.endpoint
        for option, path in (
            ("ssl_ca_certs", ep.ca_file),
            ("ssl_certfile", ep.cert_file),
            ("ssl_keyfile", ep.key_file),
        ):
            if path is not None:
                try:
                    with open(path, "rb"):
                        pass
                except OSError as exc:
                    raise ValueError(f"{option} {path}: {exc.strerror}") from None
        try:
            self._context()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            reason = (exc.reason if isinstance(exc, ssl.SSLError) else None) or exc
            files = f"ssl_certfile {ep.cert_file} / ssl_keyfile {ep.key_file}"
            where = files if ep.cert_file is not None else f"ssl_ca_certs {ep.ca_file}"
            raise ValueError(f"{where}: {reason}") from None

    def _context(self) -> ssl.SSLContext:
        """The TLS context, made again when a CA, certificate or key file changed (stat only)."""
        ep = self.endpoint
        stamp = file_stamp((ep.ca_file, ep.cert_file, ep.key_file))
        if self._ssl is None or stamp != self._ssl_stamp:
            try:
                ctx = ssl.create_default_context(cafile=ep.ca_file)
                if not ep.verify:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                if ep.cert_file is not None:
                    # An encrypted key fails instead of OpenSSL prompting on a terminal.
                    ctx.load_cert_chain(ep.cert_file, ep.key_file, password="")
            except (OSError, ValueError):
                if self._ssl is None:
                    raise
                return self._ssl  # a pair caught mid-swap: keep the last good one, retry next time
            self._ssl, self._ssl_stamp = ctx, stamp
        return self._ssl


def file_stamp(paths: Sequence[str | None]) -> tuple[tuple[int, int, int] | None, ...]:
    """Inode, size and mtime (ns) of each file (following symlinks, as a mounted Secret's are)."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            st = None
        out.append(None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)
