"""A small, fast HTTP/1.1 load generator: keep-alive connections driven by asyncio protocols (on uvloop when installed).

``run_load(url, ...)`` opens ``concurrency`` connections and sends requests on each
until the request budget is spent or the time limit passes, whichever comes first.
Requests are encoded once; answers are parsed by hand in the data callback (status
line, headers, Content-Length or chunked bodies, or a body ended by the server closing
the connection) and the next request is written from there: no task switch and no
stream buffer copy per request (asyncio streams cost about a third of the throughput),
so one core drives several thousand requests a second (bench/loadgen_bench.py measures
it beside wrk). Every latency is kept in a preallocated array (the budget bounds it)
and percentiles are exact. Errors are transport errors, every 5xx, and any status
outside the expected ones.

Plain http only on this path (the targets are usually on loopback or behind a proxy);
https goes through httpx's AsyncClient: correct, but several times slower, so a load
test over https measures the client as much as the server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

#: latencies are kept in a preallocated array of doubles up to this many requests (8 MB);
#: a larger budget grows it as it goes
_PREALLOCATE_MAX = 1 << 20


def _latency_array(budget: int) -> array[float]:
    return array("d", bytes(8 * max(0, min(budget, _PREALLOCATE_MAX))))


@dataclass
class LoadResult:
    """What a run measured. ``errors`` counts transport errors (refused, reset, timed
    out), every 5xx, and any other status outside the expected ones."""

    requests: int = 0
    errors: int = 0
    transport_errors: int = 0
    duration_s: float = 0.0
    #: one latency per request, in the order they completed (a transport error's is the
    #: time until it failed)
    latencies_ms: array[float] = field(default_factory=lambda: array("d"), repr=False)
    statuses: Counter[int] = field(default_factory=Counter)
    first_error: str | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def throughput_rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def record(self, latency_ms: float, status: int | None, error: str | None) -> None:
        """One finished request (``status`` None: a transport error)."""
        n = self.requests
        lat = self.latencies_ms
        if n < len(lat):
            lat[n] = latency_ms
        else:
            lat.append(latency_ms)
        self.requests = n + 1
        if status is None:
            self.transport_errors += 1
        else:
            self.statuses[status] += 1
        if error is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = error

    def trim(self) -> None:
        """Drop the preallocated slots no request used."""
        del self.latencies_ms[self.requests :]

    def percentile(self, q: float, ordered: list[float] | None = None) -> float:
        """The ``q`` quantile (0-100) of the latencies, exact (nearest rank)."""
        if ordered is None:
            ordered = sorted(self.latencies_ms[: self.requests])
        if not ordered:
            return 0.0
        rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil
        return ordered[min(rank, len(ordered)) - 1]

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms[: self.requests])
        return {
            "requests": float(self.requests),
            "p50_ms": round(self.percentile(50, ordered), 2),
            "p95_ms": round(self.percentile(95, ordered), 2),
            "p99_ms": round(self.percentile(99, ordered), 2),
            "max_ms": round(ordered[-1] if ordered else 0.0, 2),
            "error_rate": round(self.error_rate, 4),
            "throughput_rps": round(self.throughput_rps, 1),
        }


def _status_error(status: int, ok: frozenset[int]) -> str | None:
    return f"HTTP {status}" if status >= 500 or status not in ok else None


def _request_bytes(
    method: str, host: str, target: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    # HTTP/1.1 keeps the connection open by default; every header costs the server a
    # little per request (a tenth of a minimal ASGI app's CPU for two more), so only
    # Host and a User-Agent that marks the load in the target's access logs
    given = {k.lower() for k in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host}")
    if "user-agent" not in given:
        lines.append("User-Agent: scholar-ops-loadgen")
    for k, v in headers.items():
        if k.lower() != "content-length":
            lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")  # some servers refuse these without (411)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class _Shared:
    """What the connections of one run share: the budget, the deadline, the result."""

    def __init__(
        self,
        budget: int,
        deadline: float,
        ok: frozenset[int],
        result: LoadResult,
        head_request: bool = False,
    ):
        self.remaining = budget
        self.deadline = deadline
        self.ok = ok
        self.result = result
        #: HEAD: answers carry a Content-Length but no body
        self.head_request = head_request

    def take(self) -> bool:
        if self.remaining <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.remaining -= 1
        return True


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
        self.send(time.perf_counter())

    def send(self, now: float) -> None:
        """The next request at ``now`` (perf_counter), unless the budget or time is out."""
        shared = self.shared
        transport = self.transport
        assert transport is not None
        if shared.remaining <= 0 or now >= shared.deadline:
            self.in_flight = False
            transport.close()
            return
        shared.remaining -= 1
        self.in_flight = True
        self.t0 = now
        transport.write(self.payload)

    def complete(self) -> None:
        now = time.perf_counter()
        status = self.status
        self.shared.result.record(
            (now - self.t0) * 1000,
            status,
            None if status in self.shared.ok else f"HTTP {status}",
        )
        self.in_flight = False
        keep = self.keep
        self.reset()
        if keep:
            self.send(now)
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
            if self.chunked:
                done = _chunked_end(buf, self.head_end)
                if done < 0:
                    return
                del buf[:done]
            elif self.length >= 0:
                done = self.head_end + self.length
                if len(buf) < done:
                    return
                del buf[:done]
            else:
                return  # until the server closes
            self.complete()

    def _parse_head(self, head: bytes) -> None:
        self.status = status = int(head[9:12])
        keep = not head.startswith(b"HTTP/1.0")
        lower = head.lower()
        # the three headers that frame the answer, found without splitting every line
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            eol = lower.find(b"\r\n", at + 17)
            self.length = int(lower[at + 17 : eol if eol >= 0 else None])
        at = lower.find(b"\r\ntransfer-encoding:")
        if at >= 0:
            eol = lower.find(b"\r\n", at + 20)
            self.chunked = b"chunked" in lower[at + 20 : eol if eol >= 0 else None]
        at = lower.find(b"\r\nconnection:")
        if at >= 0:
            eol = lower.find(b"\r\n", at + 13)
            v = lower[at + 13 : eol if eol >= 0 else None].strip()
            keep = v != b"close" if keep else v == b"keep-alive"
        if status in (204, 304) or 100 <= status < 200 or self.shared.head_request:
            self.length = 0
        elif self.length < 0 and not self.chunked:
            keep = False  # the body ends with the connection
        self.keep = keep

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            if self.head_end >= 0 and self.length < 0 and not self.chunked:
                self.complete()  # a body delimited by the end of the connection
            else:
                self.shared.result.record(
                    (time.perf_counter() - self.t0) * 1000,
                    None,
                    f"connection lost{f': {exc}' if exc else ''}",
                )
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
    payload = _request_bytes(method, u.netloc.rpartition("@")[2], target, headers, body)
    result = LoadResult(latencies_ms=_latency_array(budget))
    started = time.perf_counter()
    # a 5xx is an error even when listed as expected
    ok = frozenset(s for s in ok_statuses if s < 500)
    shared = _Shared(budget, started + time_limit, ok, result, method == "HEAD")
    loop = asyncio.get_running_loop()

    async def connection_loop() -> None:
        while shared.remaining > 0 and time.perf_counter() < shared.deadline:
            finished: asyncio.Future[bool] = loop.create_future()
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    _, conn = await loop.create_connection(
                        functools.partial(_Connection, shared, payload, finished), host, port
                    )
            except (OSError, TimeoutError) as e:
                if not shared.take():
                    return
                result.record(
                    (time.perf_counter() - t0) * 1000,
                    None,
                    f"{type(e).__name__}: {e}".rstrip(": "),
                )
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
    result.trim()
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

    result = LoadResult(latencies_ms=_latency_array(budget))
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
                except httpx.HTTPError as e:
                    result.record((time.perf_counter() - t0) * 1000, None, type(e).__name__)
                    continue
                status = r.status_code
                result.record(
                    (time.perf_counter() - t0) * 1000, status, _status_error(status, ok_statuses)
                )

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    result.duration_s = time.perf_counter() - started
    result.trim()
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
