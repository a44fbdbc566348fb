"""The load generator against a real HTTP server on loopback (a small asyncio server
that answers by path: keep-alive, chunked (whole and in pieces), 500, Connection: close, a
body ended by the close, slow, never, and checks of the headers, JSON body and query)."""

from __future__ import annotations

import asyncio
import sys
import time
from array import array
from collections.abc import Iterator

import pytest

from scholar_ops.functest.loadgen import LoadResult, _load_httpx, run_load
from scholar_ops.sources.process import free_port, running_server

HANDLER = r"""
import json


def _answer(status: str, body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode() + extra
            + b"\r\n" + body)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            method, target = line.split()[0].decode(), line.split()[1].decode()
            path, _, query = target.partition("?")
            headers = {}
            while (h := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = h.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", 0))
            body = await reader.readexactly(length) if length else b""
            if path == "/chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n")
            elif path == "/pieces":
                # a chunked answer in small writes: the parser sees partial heads and bodies
                for piece in (b"HTTP/1.1 200 OK\r\nTransfer-", b"Encoding: chunked\r\n\r",
                              b"\n3\r\nabc", b"\r\n", b"A\r\n0123456789\r\n0\r", b"\n\r\n"):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.001)
                continue
            elif path == "/fail":
                writer.write(_answer("500 Internal Server Error", b"bad"))
            elif path == "/close":
                writer.write(_answer("200 OK", b"ok", b"Connection: close\r\n"))
                await writer.drain()
                break
            elif path == "/eof":
                # no length: the body ends when the server closes the connection
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                await writer.drain()
                break
            elif path == "/slow":
                await asyncio.sleep(0.05)
                writer.write(_answer("200 OK"))
            elif path == "/hang":
                await asyncio.sleep(3600)
            elif path == "/created":
                if method == "POST" and "content-length" not in headers:
                    writer.write(_answer("411 Length Required"))  # as nginx does
                else:
                    writer.write(_answer("201 Created"))
            elif path == "/auth":
                ok = headers.get("authorization") == "Bearer t0ken"
                writer.write(_answer("200 OK" if ok else "401 Unauthorized"))
            elif path == "/json":
                try:
                    ok = method == "POST" and json.loads(body) == {"a": [1, "é"]}
                except ValueError:
                    ok = False
                ok = ok and headers.get("content-type") == "application/json"
                writer.write(_answer("200 OK" if ok else "400 Bad Request"))
            elif path == "/head":
                # HEAD: the length of the body a GET would have, and no body
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n")
            elif path == "/params":
                writer.write(_answer("200 OK" if query == "x=1&y=two+words" else "400 Bad"))
            else:
                writer.write(_answer("200 OK", b'{"ok": true }'))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
"""

SERVER = (
    "import asyncio, sys\n" + HANDLER + "async def main():\n"
    "    srv = await asyncio.start_server(_handle, '127.0.0.1', int(sys.argv[1]))\n"
    "    async with srv:\n"
    "        await srv.serve_forever()\n"
    "asyncio.run(main())\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny HTTP/1.1 server (asyncio, in its own process) answering by path."""
    workdir = tmp_path_factory.mktemp("http-server")
    with running_server(
        "test http server",
        lambda port: [sys.executable, "-c", SERVER, str(port)],
        cwd=workdir,
        log_path=workdir / "server.log",
    ) as srv:
        yield f"http://127.0.0.1:{srv.port}"


def test_the_budget_is_exact_and_percentiles_are_ordered(server: str):
    r = run_load(server + "/", requests=500, concurrency=7)
    assert r.requests == 500 and r.errors == 0 and r.statuses[200] == 500
    assert len(r.latencies_ms) == 500 and min(r.latencies_ms) > 0
    s = r.summary()
    assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["max_ms"] == round(max(r.latencies_ms), 2)
    assert s["throughput_rps"] > 0 and s["error_rate"] == 0


def test_percentiles_are_exact_nearest_rank():
    r = LoadResult(requests=100, latencies_ms=array("d", range(100, 0, -1)))
    assert (r.percentile(50), r.percentile(95), r.percentile(99), r.percentile(100)) == (
        50,
        95,
        99,
        100,
    )
    assert r.summary()["max_ms"] == 100 and LoadResult().summary()["p95_ms"] == 0


def test_errors_are_counted_by_status(server: str):
    r = run_load(server + "/fail", requests=40, concurrency=4)
    assert r.errors == 40 and r.error_rate == 1 and r.statuses[500] == 40
    assert r.first_error == "HTTP 500"
    # a 5xx is an error even when it is listed as expected
    assert run_load(server + "/fail", requests=10, ok_statuses=(200, 500)).errors == 10
    ok = run_load(server + "/created", requests=20, ok_statuses=(201,))
    assert ok.errors == 0
    posted = run_load(server + "/created", method="POST", requests=10, ok_statuses=(201,))
    assert posted.errors == 0 and posted.statuses[201] == 10
    wrong = run_load(server + "/created", requests=20)
    assert wrong.errors == 20 and wrong.statuses[201] == 20 and wrong.first_error == "HTTP 201"


def test_headers_json_bodies_and_params_are_sent(server: str):
    assert run_load(server + "/auth", requests=20).errors == 20
    authed = run_load(server + "/auth", requests=20, headers={"Authorization": "Bearer t0ken"})
    assert authed.errors == 0
    posted = run_load(
        server + "/json", method="post", json_body={"a": [1, "\u00e9"]}, requests=30, concurrency=3
    )
    assert posted.errors == 0 and posted.statuses[200] == 30
    params = run_load(server + "/params", params={"x": 1, "y": "two words"}, requests=10)
    assert params.errors == 0
    head = run_load(server + "/head", method="HEAD", requests=20, concurrency=2, timeout=1)
    assert head.errors == 0 and head.statuses[200] == 20


def test_chunked_and_closing_responses_are_read(server: str):
    assert run_load(server + "/chunked", requests=100, concurrency=3).errors == 0
    pieces = run_load(server + "/pieces", requests=30, concurrency=2)
    assert pieces.requests == 30 and pieces.errors == 0
    closing = run_load(server + "/close", requests=60, concurrency=3)
    assert closing.requests == 60 and closing.errors == 0
    until_eof = run_load(server + "/eof", requests=20, concurrency=2)
    assert until_eof.requests == 20 and until_eof.errors == 0


def test_the_time_limit_stops_a_long_budget(server: str):
    started = time.monotonic()
    r = run_load(server + "/slow", requests=100_000, concurrency=2, time_limit=0.5)
    assert time.monotonic() - started < 3
    assert 0 < r.requests < 100_000 and len(r.latencies_ms) == r.requests
    assert min(r.latencies_ms) >= 45


def test_an_answer_that_never_comes_times_out(server: str):
    started = time.monotonic()
    r = run_load(server + "/hang", requests=4, concurrency=2, timeout=0.3)
    assert time.monotonic() - started < 3
    assert r.requests == 4 and r.transport_errors == 4 and r.error_rate == 1
    assert min(r.latencies_ms) >= 250


def test_a_refused_connection_is_a_transport_error():
    r = run_load(f"http://127.0.0.1:{free_port()}/", requests=5, concurrency=1)
    assert r.requests == 5 and r.transport_errors == 5 and r.error_rate == 1


def test_it_runs_inside_a_running_event_loop(server: str):
    async def inside() -> int:
        return run_load(server + "/", requests=30).requests

    assert asyncio.run(inside()) == 30


def test_the_httpx_path_for_https_counts_alike(server: str):
    """https goes through httpx: the same budget, statuses and errors (here on http)."""

    async def load(path: str, budget: int) -> LoadResult:
        ok = frozenset({200, 500})  # a 5xx stays an error even when expected
        return await _load_httpx(server + path, "GET", {}, None, 3, budget, 10.0, ok, 5.0)

    async def both() -> tuple[LoadResult, LoadResult]:
        return await load("/", 25), await load("/fail", 10)

    good, bad = asyncio.run(both())
    assert good.requests == 25 and good.errors == 0 and len(good.latencies_ms) == 25
    assert bad.requests == 10 and bad.errors == 10 and bad.first_error == "HTTP 500"
