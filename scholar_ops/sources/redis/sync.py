"""Streaming a running server's RDB through the replication handshake, without its disk.

As ``redis-cli --rdb`` does: connect, AUTH, ``REPLCONF capa eof`` (the server may
then stream a *diskless* RDB straight from its fork, the default since Redis 7.0
with ``repl-diskless-sync yes``; otherwise it saves to its own disk first and
sends that file), ``REPLCONF rdb-only 1`` (7.0+: the server drops the link after
the RDB instead of keeping us on as a replica; older servers answer an error,
which is ignored), then ``SYNC``. The server forks: the RDB is a point-in-time
image of every database at the fork.

The reply is newlines (keepalives while the fork works), then either
``$<len>\\r\\n`` and ``len`` bytes (disk-based), or ``$EOF:<40 chars>\\r\\n``, the
payload and the same 40 chars (diskless). :class:`RdbStream` hands the payload
out through ``readinto`` into the caller's buffers, holding back at most the 40
bytes that may be the end mark: no part of the RDB is kept in memory or on disk.

Every read has a timeout (``socket_timeout``; keepalives arrive every second
while the server forks) and the whole transfer a deadline. A server that cannot
be reached, or drops the link, is a transient SourceError; a refused password or
a missing permission is not.

On the server this costs what a BGSAVE costs (a fork, copy-on-write memory for
the pages written meanwhile); a disk-based transfer also writes the RDB to the
server's own disk first, and the first replica link creates a 1 MB replication
backlog. We read as fast as the store takes the data: a store stalled for longer
than the server's ``repl-timeout`` (60 s) gets the link cut, a transient error.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager

from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.vault.errors import SourceError

MARK_LEN = 40
RDB_MAGIC = b"REDIS"
_SMALL_READ = 64 << 10
_TRANSIENT_REPLIES = ("LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "NOMASTERLINK")


def _reply_error(conn: RedisConnInfo, what: str, reply: str) -> SourceError:
    """A SourceError for an error reply, with the server's own words."""
    code = reply.split(" ", 1)[0]
    where = conn.describe()
    if code == "WRONGPASS" or "invalid password" in reply or "invalid username-password" in reply:
        return SourceError(f"Redis at {where} refused the password: {reply}")
    if code == "NOAUTH":
        return SourceError(f"Redis at {where} needs a password (NOAUTH): {reply}")
    if code == "NOPERM":
        return SourceError(
            f"Redis at {where} does not allow {what} for this user (the ACL needs +sync "
            f"+replconf): {reply}"
        )
    transient = code in _TRANSIENT_REPLIES or "not connected with my master" in reply
    return SourceError(f"{what} on Redis at {where} failed: {reply}", transient)


class _Link:
    """One raw RESP connection: a few commands, then the SYNC payload."""

    def __init__(self, conn: RedisConnInfo, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self._rbuf = bytearray()
        try:
            sock = socket.create_connection(
                (conn.host, conn.port), timeout=max(0.1, min(conn.connect_timeout, self._left()))
            )
        except OSError as e:
            raise SourceError(
                f"cannot connect to Redis at {conn.describe()}: {e.strerror or e}", transient=True
            ) from None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if conn.tls:
            try:
                sock = conn.ssl_context().wrap_socket(sock, server_hostname=conn.host)
            except ssl.SSLError as e:
                sock.close()
                raise SourceError(f"TLS handshake with {conn.describe()} failed: {e}") from None
            except OSError as e:
                sock.close()
                raise SourceError(
                    f"TLS handshake with {conn.describe()} failed: {e}", transient=True
                ) from None
        self.sock = sock

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def close(self) -> None:
        self.sock.close()

    def _past_deadline(self) -> SourceError:
        return SourceError(
            f"the RDB transfer from {self.conn.describe()} passed its deadline and was stopped"
        )

    def recv_into(self, view: memoryview) -> int:
        """Bytes left over from line reads first, then the socket; 0 when the server closed."""
        if self._rbuf:
            n = min(len(view), len(self._rbuf))
            view[:n] = self._rbuf[:n]
            del self._rbuf[:n]
            return n
        left = self._left()
        if left <= 0:
            raise self._past_deadline()
        timeout = min(self.conn.socket_timeout, left)
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv_into(view)
        except TimeoutError:
            if timeout < self.conn.socket_timeout:
                raise self._past_deadline() from None
            raise SourceError(
                f"no data from Redis at {self.conn.describe()} for {timeout:.0f} s", transient=True
            ) from None
        except OSError as e:
            raise SourceError(
                f"connection to Redis at {self.conn.describe()} failed: {e.strerror or e}",
                transient=True,
            ) from None

    def readline(self) -> str:
        while True:
            end = self._rbuf.find(b"\n")
            if end >= 0:
                line = bytes(self._rbuf[: end + 1])
                del self._rbuf[: end + 1]
                return line.rstrip(b"\r\n").decode(errors="replace")
            if len(self._rbuf) > _SMALL_READ:
                raise SourceError(f"Redis at {self.conn.describe()} sent an overlong reply line")
            scratch = bytearray(4096)
            n = self.recv_into(memoryview(scratch))
            if n == 0:
                raise SourceError(
                    f"Redis at {self.conn.describe()} closed the connection", transient=True
                )
            self._rbuf += scratch[:n]

    def command(self, *args: str | bytes) -> str:
        """Send one command; returns a +status reply's text, raises on an -error reply."""
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            parts += [f"${len(b)}\r\n".encode(), b, b"\r\n"]
        try:
            self.sock.settimeout(max(0.1, min(self.conn.socket_timeout, self._left())))
            self.sock.sendall(b"".join(parts))
        except OSError as e:
            raise SourceError(
                f"connection to Redis at {self.conn.describe()} failed: {e.strerror or e}",
                transient=True,
            ) from None
        line = self.readline()
        if line.startswith("-"):
            raise _reply_error(self.conn, str(args[0]), line[1:])
        return line[1:]


class RdbStream:
    """The payload of a SYNC reply, readable once with ``readinto`` (or ``read``)."""

    def __init__(self, link: _Link, header: str) -> None:
        self._link = link
        self.diskless = header.startswith("EOF:")
        if self.diskless:
            self._mark = header[4:].encode()
            if len(self._mark) != MARK_LEN:
                raise SourceError(f"unexpected SYNC reply ${header!r} from {link.conn.describe()}")
            self._remaining = -1
        else:
            try:
                self._remaining = int(header)
            except ValueError:
                raise SourceError(
                    f"unexpected SYNC reply ${header!r} from {link.conn.describe()}"
                ) from None
            self._mark = b""
        self.announced = None if self.diskless else self._remaining
        self.bytes = 0
        self.done = self._remaining == 0
        self.head = b""  # the first 9 bytes: "REDIS" and the RDB version
        self._tail = b""  # the last 9 bytes handed out: the EOF opcode and the checksum
        self._held = b""  # diskless: what may be the start of the end mark
        self._ready = bytearray()  # a small read's surplus

    def readinto(self, b: memoryview | bytearray) -> int:
        view = memoryview(b).cast("B")
        if self._ready:
            n = min(len(view), len(self._ready))
            view[:n] = self._ready[:n]
            del self._ready[:n]
            return n
        if self.done:
            return 0
        if len(view) < _SMALL_READ:  # keep the end-mark logic simple: fill a scratch block
            scratch = bytearray(_SMALL_READ)
            n = self._fill(memoryview(scratch))
            self._ready = scratch[:n]
            return self.readinto(view)
        return self._fill(view)

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes (b"" at the end). Without ``n``: the next block, not the whole
        rest, which could be gigabytes."""
        buf = bytearray(max(n, _SMALL_READ) if n >= 0 else 1 << 20)
        got = self.readinto(memoryview(buf)[: n if n >= 0 else len(buf)])
        return bytes(buf[:got])

    def _fill(self, view: memoryview) -> int:
        link = self._link
        if not self.diskless:
            n = link.recv_into(view[: min(len(view), self._remaining)])
            if n == 0:
                raise self._cut_short()
            self._remaining -= n
            self.done = self._remaining == 0
            out = n
        else:
            while True:
                h = len(self._held)
                view[:h] = self._held
                n = link.recv_into(view[h:])
                if n == 0:
                    raise self._cut_short()
                total = h + n
                if total >= MARK_LEN and view[total - MARK_LEN : total] == self._mark:
                    self.done = True
                    self._held = b""
                    out = total - MARK_LEN
                    break
                keep = min(MARK_LEN, total)
                self._held = bytes(view[total - keep : total])
                out = total - keep
                if out:
                    break
        if len(self.head) < 9:
            self.head += bytes(view[: min(out, 9 - len(self.head))])
        self._tail = (self._tail + bytes(view[max(0, out - 9) : out]))[-9:]
        self.bytes += out
        return out

    def _cut_short(self) -> SourceError:
        of = f" of {self.announced}" if self.announced is not None else ""
        return SourceError(
            f"Redis at {self._link.conn.describe()} closed the connection after "
            f"{self.bytes}{of} bytes of the RDB",
            transient=True,
        )

    @property
    def rdb_version(self) -> int | None:
        v = self.head[5:9]
        return int(v) if len(v) == 4 and v.isdigit() else None

    def check(self) -> None:
        """After the last byte: the payload is a whole RDB (magic at the start, EOF opcode
        and checksum at the end). The checksum itself is verified by the server that loads it."""
        where = self._link.conn.describe()
        if not self.done:
            raise SourceError(f"the RDB from {where} was not read to its end")
        if not self.head.startswith(RDB_MAGIC):
            raise SourceError(f"the replication stream from {where} is not an RDB: {self.head!r}")
        if len(self._tail) != 9 or self._tail[0] != 0xFF:
            raise SourceError(f"the RDB from {where} does not end with the EOF opcode (truncated)")


@contextmanager
def rdb_stream(conn: RedisConnInfo, *, deadline: float) -> Iterator[RdbStream]:
    """Open a replication link and yield the RDB stream; closed at the end."""
    link = _Link(conn, deadline)
    try:
        if conn.password is not None:
            user = [conn.username] if conn.username else []
            link.command("AUTH", *user, conn.password)
        for args in (
            ("CLIENT", "SETNAME", "scholar-ops-backup"),
            ("REPLCONF", "capa", "eof"),
            ("REPLCONF", "rdb-only", "1"),
        ):
            try:
                link.command(*args)
            except SourceError as e:
                if "NOAUTH" in str(e) or e.transient:
                    raise
                # optional: an older server without this option (the full replication
                # protocol still works), or an ACL without it (SYNC then says what is missing)
        try:
            link.sock.settimeout(max(0.1, min(conn.socket_timeout, link._left())))
            link.sock.sendall(b"*1\r\n$4\r\nSYNC\r\n")
        except OSError as e:
            raise SourceError(
                f"connection to Redis at {conn.describe()} failed: {e.strerror or e}",
                transient=True,
            ) from None
        while True:
            line = link.readline()
            if not line:
                continue  # a keepalive while the server forks and saves
            if line.startswith("-"):
                raise _reply_error(conn, "SYNC", line[1:])
            if line.startswith("$"):
                stream = RdbStream(link, line[1:])
                break
            raise SourceError(f"unexpected reply to SYNC from {conn.describe()}: {line[:80]!r}")
        yield stream
    finally:
        link.close()
