"""A small, fast HTTP/1.1 load generator: keep-alive connections driven by asyncio protocols (on uvloop when installed).

``run_load(url, ...)`` opens ``concurrency`` connections and sends requests on each
until the request budget is spent or the time limit passes, whichever comes first.
Requests are encoded once; answers are parsed by hand in the data callback (status
line, headers, Content-Length or chunked bodies), the next request sent from there, so one core drives several thousand requests a
second (bench/loadgen_bench.py measures it beside wrk). Every latency is kept (the
budget bounds them) and percentiles are exact.

Plain http only (the tests' targets are on loopback); https goes through httpx, slower
but correct.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    transport_errors: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    statuses: Counter[int] = field(default_factory=Counter)
    first_error: str | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def throughput_rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0-100) of the latencies, nearest rank."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil
        return ordered[min(rank, len(ordered)) - 1]

    def summary(self) -> dict[str, float]:
        return {
            "requests": float(self.requests),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms, default=0.0), 2),
            "error_rate": round(self.error_rate, 4),
            "throughput_rps": round(self.throughput_rps, 1),
        }


def _request_bytes(
    method: str, host: str, target: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}",
        "Connection: keep-alive",
        "Accept: */*",
        "User-Agent: scholar-ops-loadgen",
    ]
    for k, v in headers.items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class _Shared:
    """What the connections of one run share: the budget, the deadline, the result."""

    def __init__(self, budget: int, deadline: float, ok: frozenset[int], result: LoadResult):
        self.remaining = budget
        self.deadline = deadline
        self.ok = ok
        self.result = result

    def take(self) -> bool:
        if self.remaining <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.remaining -= 1
        return True

    def error(self, message: str, transport: bool = False) -> None:
        r = self.result
        r.errors += 1
        if transport:
            r.transport_errors += 1
        if r.first_error is None:
            r.first_error = message


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the next request as soon as an answer is
    complete (in the data callback: no task switch per request)."""

    def __init__(self, shared: _Shared, payload: bytes, finished: asyncio.Future[bool]):
        self.shared = shared
        self.payload = payload
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.t0 = 0.0
        self.in_flight = False
        self.reset()

    def reset(self) -> None:
        self.head_end = -1
        self.status = 0
        self.length = -1
        self.chunked = False
        self.keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        if not self.shared.take():
            self.in_flight = False
            assert self.transport is not None
            self.transport.close()
            return
        self.in_flight = True
        self.t0 = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.payload)

    def complete(self) -> None:
        r = self.shared.result
        r.latencies_ms.append((time.perf_counter() - self.t0) * 1000)
        r.requests += 1
        r.statuses[self.status] += 1
        if self.status not in self.shared.ok:
            self.shared.error(f"HTTP {self.status}")
        self.in_flight = False
        keep = self.keep
        self.reset()
        if keep:
            self.send()
        else:
            assert self.transport is not None
            self.transport.close()  # connection_lost opens the next one

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while self.in_flight:
            if self.head_end < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.head_end = end + 4
                self._parse_head(bytes(buf[:end]))
            body = len(buf) - self.head_end
            if self.chunked:
                done = _chunked_end(buf, self.head_end)
                if done < 0:
                    return
                del buf[:done]
            elif self.length >= 0:
                if body < self.length:
                    return
                del buf[: self.head_end + self.length]
            else:
                return  # until the server closes
            self.complete()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        first = lines[0]
        self.status = int(first[9:12])
        self.keep = not first.startswith(b"HTTP/1.0")
        for h in lines[1:]:
            name, _, value = h.partition(b":")
            name = name.lower()
            if name == b"content-length":
                self.length = int(value)
            elif name == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif name == b"connection":
                v = value.strip().lower()
                self.keep = v != b"close" if self.keep else v == b"keep-alive"
        if self.status in (204, 304) or 100 <= self.status < 200:
            self.length = 0
        if self.length < 0 and not self.chunked:
            self.keep = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            if self.head_end >= 0 and self.length < 0 and not self.chunked:
                self.complete()  # a body delimited by the end of the connection
            else:
                r = self.shared.result
                r.latencies_ms.append((time.perf_counter() - self.t0) * 1000)
                r.requests += 1
                self.shared.error(f"connection lost{f': {exc}' if exc else ''}", transport=True)
        if not self.finished.done():
            self.finished.set_result(True)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _chunked_end(buf: bytearray, pos: int) -> int:
    """The end of a complete chunked body starting at ``pos``, or -1."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)
            return -1 if end < 0 else end + 4
        if len(buf) < pos + size + 2:
            return -1
        pos += size + 2


async def _load(
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
    concurrency: int,
    budget: int,
    time_limit: float,
    ok_statuses: frozenset[int],
    timeout: float,
) -> LoadResult:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    payload = _request_bytes(method, f"{host}:{port}", target, headers, body)
    result = LoadResult()
    started = time.perf_counter()
    shared = _Shared(budget, started + time_limit, ok_statuses, result)
    loop = asyncio.get_running_loop()

    async def connection_loop() -> None:
        while shared.remaining > 0 and time.perf_counter() < shared.deadline:
            finished: asyncio.Future[bool] = loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    _, conn = await loop.create_connection(
                        functools.partial(_Connection, shared, payload, finished), host, port
                    )
            except (OSError, TimeoutError) as e:
                if not shared.take():
                    return
                result.requests += 1
                result.latencies_ms.append(0.0)
                shared.error(f"{type(e).__name__}: {e}".rstrip(": "), transport=True)
                continue
            while not finished.done():
                # a watchdog: an answer that takes longer than ``timeout`` aborts it
                t0 = conn.t0
                done, _ = await asyncio.wait([finished], timeout=timeout)
                if not done and conn.in_flight and conn.t0 == t0:
                    conn.abort()
                    await finished

    await asyncio.gather(*(connection_loop() for _ in range(max(1, concurrency))))
    result.duration_s = time.perf_counter() - started
    return result


async def _load_httpx(
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
    concurrency: int,
    budget: int,
    time_limit: float,
    ok_statuses: frozenset[int],
    timeout: float,
) -> LoadResult:
    import httpx

    result = LoadResult()
    remaining = [budget]
    started = time.perf_counter()
    deadline = started + time_limit
    async with httpx.AsyncClient(
        timeout=timeout, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker() -> None:
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, url, headers=dict(headers), content=body)
                    status = r.status_code
                except httpx.HTTPError as e:
                    result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                    result.requests += 1
                    result.transport_errors += 1
                    result.errors += 1
                    result.first_error = result.first_error or type(e).__name__
                    continue
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.requests += 1
                result.statuses[status] += 1
                if status not in ok_statuses:
                    result.errors += 1
                    result.first_error = result.first_error or f"HTTP {status}"

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    result.duration_s = time.perf_counter() - started
    return result


def _run(coro: Any) -> LoadResult:
    """Run on uvloop when it is installed (it comes with uvicorn[standard], which
    chromadb needs): about a third more requests per core than asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_load(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    params: Mapping[str, Any] | None = None,
    concurrency: int = 8,
    requests: int = 400,
    time_limit: float = 30.0,
    ok_statuses: tuple[int, ...] = (200,),
    timeout: float = 10.0,
) -> LoadResult:
    """Send up to ``requests`` requests on ``concurrency`` connections within
    ``time_limit`` seconds. Safe to call from a thread with a running event loop."""
    hdrs = dict(headers or {})
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if params:
        url = url + ("&" if "?" in url else "?") + urlencode(params, doseq=True)
    impl = _load if urlsplit(url).scheme == "http" else _load_httpx
    coro_args = (
        url,
        method.upper(),
        hdrs,
        body,
        concurrency,
        requests,
        time_limit,
        frozenset(ok_statuses),
        timeout,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(impl(*coro_args))
    box: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            box["result"] = _run(impl(*coro_args))
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=in_thread, name="loadgen", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
