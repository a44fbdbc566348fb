"""The load generator against a real HTTP server on loopback (a small asyncio server
that answers by path: keep-alive, chunked, 500, Connection: close, slow)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import pytest

from scholar_ops.functest.loadgen import run_load
from scholar_ops.sources.process import free_port, running_server

HANDLER = r"""
async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            path = line.split()[1].decode()
            length = 0
            while (h := await reader.readline()) not in (b"\r\n", b""):
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":")[1])
            if length:
                await reader.readexactly(length)
            if path.startswith("/chunked"):
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            elif path.startswith("/fail"):
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nbad")
            elif path.startswith("/close"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                await writer.drain()
                break
            elif path.startswith("/slow"):
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            elif path.startswith("/created"):
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
            else:
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"ok": true }')
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
    s = r.summary()
    assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["throughput_rps"] > 0 and s["error_rate"] == 0


def test_errors_are_counted_by_status(server: str):
    r = run_load(server + "/fail", requests=40, concurrency=4)
    assert r.errors == 40 and r.error_rate == 1 and r.statuses[500] == 40
    assert r.first_error == "HTTP 500"
    ok = run_load(
        server + "/created", requests=20, ok_statuses=(201,), method="POST", json_body={"a": 1}
    )
    assert ok.errors == 0
    wrong = run_load(server + "/created", requests=20)
    assert wrong.errors == 20


def test_chunked_and_closing_responses_are_read(server: str):
    assert run_load(server + "/chunked", requests=100, concurrency=3).errors == 0
    closing = run_load(server + "/close", requests=60, concurrency=3)
    assert closing.requests == 60 and closing.errors == 0


def test_the_time_limit_stops_a_long_budget(server: str):
    started = time.monotonic()
    r = run_load(server + "/slow", requests=100_000, concurrency=2, time_limit=0.5)
    assert time.monotonic() - started < 3
    assert 0 < r.requests < 100_000
    assert min(r.latencies_ms) >= 45


def test_a_refused_connection_is_a_transport_error():
    r = run_load(f"http://127.0.0.1:{free_port()}/", requests=5, concurrency=1)
    assert r.requests == 5 and r.transport_errors == 5 and r.error_rate == 1


def test_it_runs_inside_a_running_event_loop(server: str):
    async def inside() -> int:
        return run_load(server + "/", requests=30).requests

    assert asyncio.run(inside()) == 30
