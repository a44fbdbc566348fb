"""The replication handshake against a scripted fake server: both payload formats,
end marks split across reads, keepalives, error replies, cut connections, timeouts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.sync import rdb_stream
from scholar_ops.vault.errors import SourceError

MARK = b"0123456789abcdef0123456789abcdef01234567"
RDB = b"REDIS0010" + bytes(range(256)) * 1000 + MARK[:39] + b"\xff" + b"\x00" * 8

Script = Callable[[bytes, socket.socket], None]


@contextmanager
def fake_server(on_command: Script) -> Iterator[RedisConnInfo]:
    """Answers each command (one per recv: the client waits for every reply) by ``on_command``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                name = data.split(b"\r\n")[2].upper()
                try:
                    on_command(name, conn)
                except OSError:
                    return
                if name == b"SYNC":
                    return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield RedisConnInfo(port=port, password="pw", socket_timeout=2)
    finally:
        listener.close()
        t.join(5)


def _sync_reply(header: bytes, pieces: list[bytes], keepalives: int = 2, hold: float = 0) -> Script:
    def on(name: bytes, conn: socket.socket) -> None:
        if name != b"SYNC":
            conn.sendall(b"+OK\r\n")
            return
        for _ in range(keepalives):
            conn.sendall(b"\n")
            time.sleep(0.01)
        conn.sendall(header)
        for p in pieces:
            conn.sendall(p)
            time.sleep(0.002)
        time.sleep(hold)  # before closing the connection

    return on


def _read_all(conn: RedisConnInfo, read_size: int) -> tuple[bytes, bool]:
    with rdb_stream(conn, deadline=time.monotonic() + 10) as s:
        out = bytearray()
        while True:
            if read_size >= 65536:
                buf = bytearray(read_size)
                n = s.readinto(memoryview(buf))
                chunk = bytes(buf[:n])
            else:
                chunk = s.read(read_size)
            if not chunk:
                break
            out += chunk
        s.check()
        return bytes(out), s.diskless


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    pieces, start = [], 0
    for c in [*cuts, len(data)]:
        pieces.append(data[start:c])
        start = c
    return [p for p in pieces if p]


@pytest.mark.parametrize("read_size", [7, 1 << 20])
@pytest.mark.parametrize(
    "cuts_from_end",
    [[], [1], [20], [39], [40], [41], [45, 3]],
    ids=lambda c: f"cut-{c}",
)
def test_diskless_payload_ends_at_the_mark(read_size, cuts_from_end):
    wire = RDB + MARK
    cuts = sorted(len(wire) - c for c in cuts_from_end)
    with fake_server(_sync_reply(b"$EOF:" + MARK + b"\r\n", _split(wire, cuts))) as conn:
        data, diskless = _read_all(conn, read_size)
    assert diskless and data == RDB  # a 39-byte prefix of the mark inside the data is data


@pytest.mark.parametrize("read_size", [5, 1 << 20])
def test_length_prefixed_payload(read_size):
    extra = b"*1\r\n$4\r\nPING\r\n"  # an old server's replication stream after the RDB
    pieces = _split(RDB + extra, [10, 1000, len(RDB) - 3])
    with fake_server(_sync_reply(f"${len(RDB)}\r\n".encode(), pieces)) as conn:
        data, diskless = _read_all(conn, read_size)
    assert not diskless and data == RDB


def test_connection_cut_mid_payload_is_transient():
    script = _sync_reply(f"${len(RDB)}\r\n".encode(), [RDB[:5000]])
    with (
        fake_server(script) as conn,
        pytest.raises(SourceError, match=r"after 5000 of \d+ bytes") as exc,
    ):
        _read_all(conn, 1 << 20)
    assert exc.value.transient


def test_truncated_rdb_is_refused():
    short = RDB[:-9] + b"\x00" * 9  # no EOF opcode
    script = _sync_reply(f"${len(short)}\r\n".encode(), [short])
    with (
        fake_server(script) as conn,
        pytest.raises(SourceError, match="does not end with the EOF opcode"),
    ):
        _read_all(conn, 1 << 20)


def test_silence_times_out():
    script = _sync_reply(f"${len(RDB)}\r\n".encode(), [RDB[:100]], keepalives=0, hold=1.2)
    with fake_server(script) as conn:
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=r"no data from Redis at .* for 1 s") as exc:
            _read_all(replace(conn, socket_timeout=0.8), 1 << 20)
        elapsed = time.monotonic() - t0
    assert exc.value.transient and elapsed < 2.5


def test_deadline():
    def on(name: bytes, conn: socket.socket) -> None:
        if name != b"SYNC":
            conn.sendall(b"+OK\r\n")
            return
        for _ in range(100):  # keepalives forever: only the deadline ends it
            conn.sendall(b"\n")
            time.sleep(0.05)

    with (
        fake_server(on) as conn,
        pytest.raises(SourceError, match="deadline"),
        rdb_stream(conn, deadline=time.monotonic() + 0.5) as s,
    ):
        s.read(100)


@pytest.mark.parametrize(
    ("command", "reply", "match", "transient"),
    [
        (b"AUTH", b"-WRONGPASS invalid username-password pair", "refused the password", False),
        (b"SYNC", b"-NOAUTH Authentication required.", "needs a password", False),
        (b"SYNC", b"-NOPERM this user has no permissions", r"\+sync", False),
        (b"SYNC", b"-LOADING Redis is loading the dataset", "LOADING", True),
        (b"SYNC", b"-ERR Can't SYNC while not connected with my master", "my master", True),
    ],
)
def test_error_replies(command, reply, match, transient):
    def on(name: bytes, conn: socket.socket) -> None:
        conn.sendall(reply + b"\r\n" if name == command else b"+OK\r\n")

    with fake_server(on) as conn, pytest.raises(SourceError, match=match) as exc:
        _read_all(conn, 1 << 20)
    assert exc.value.transient is transient
    assert "pw" not in str(exc.value).replace("password", "")


def test_optional_commands_may_be_unknown():
    """A server older than 7.0 answers an error to REPLCONF rdb-only: SYNC still works."""

    def on(name: bytes, conn: socket.socket) -> None:
        if name == b"REPLCONF":
            conn.sendall(b"-ERR Unrecognized REPLCONF option: rdb-only\r\n")
        else:
            _sync_reply(f"${len(RDB)}\r\n".encode(), [RDB])(name, conn)

    with fake_server(on) as conn:
        assert _read_all(conn, 1 << 20)[0] == RDB


def test_nobody_listening_is_transient():
    with (
        pytest.raises(SourceError, match="cannot connect") as exc,
        rdb_stream(RedisConnInfo(port=1), deadline=time.monotonic() + 5),
    ):
        pass
    assert exc.value.transient
