"""Fixtures for the health service tests: a stub HTTP service (backend/frontend and a
deliberately slow dependency), a seeded embedded Chroma directory, a Redis with a
password, and the secrets that must never show in a response."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scholar_ops.sources.redis.server import RedisServer, throwaway_redis

PG_PASSWORD = "pg-S3cret-Zq81xv"
REDIS_PASSWORD = "redis-S3cret-Wm27ks"
CHROMA_TOKEN = "chroma-S3cret-Lp55td"
HTTP_PASSWORD = "http-S3cret-Hy93gr"
SECRETS = (PG_PASSWORD, REDIS_PASSWORD, CHROMA_TOKEN, HTTP_PASSWORD)
SLOW_SECONDS = 10.0


def relaxed_yaml(disk_path: Path) -> str:
    """A config whose thresholds hold on a busy shared 2-core machine (only the tests
    that want "degraded" tighten them), watching ``disk_path``'s filesystem."""
    return f"""\
performance: {{latency_degraded_ms: 30000}}
postgres: {{latency_degraded_ms: 30000}}
redis: {{latency_degraded_ms: 30000}}
chroma: {{latency_degraded_ms: 30000, timeout: 10}}
backend: {{latency_degraded_ms: 30000}}
frontend: {{latency_degraded_ms: 30000}}
disk: {{paths: ['{disk_path}'], degraded_ratio: 1.0, unhealthy_ratio: 1.0}}
system: {{cpu_degraded_ratio: 1.0, memory_degraded_ratio: 1.0, memory_unhealthy_ratio: 1.0}}
"""


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked: ...{secret[-4:]}"


@dataclass
class HttpStub:
    host: str
    port: int
    stop: threading.Event

    def url(self, path: str = "/", *, password: str | None = None) -> str:
        auth = f"health:{password}@" if password else ""
        return f"http://{auth}{self.host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    stop: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send(200, json.dumps({"status": "ok"}).encode(), "application/json")
        elif path == "/":
            self._send(200, b"<!doctype html><title>AI Scholar</title>", "text/html")
        elif path == "/slow":
            self.stop.wait(SLOW_SECONDS)
            self._send(200, b"late", "text/plain")
        elif m := re.fullmatch(r"/delay/(\d+)", path):
            time.sleep(int(m.group(1)) / 1000)
            self._send(200, b"ok", "text/plain")
        elif m := re.fullmatch(r"/status/(\d{3})", path):
            self._send(int(m.group(1)), b"status", "text/plain")
        elif path == "/degraded":
            self._send(200, json.dumps({"status": "degraded"}).encode(), "application/json")
        else:
            self._send(404, b"not found", "text/plain")


@pytest.fixture(scope="session")
def http_stub() -> Iterator[HttpStub]:
    stop = threading.Event()
    handler = type("Handler", (_Handler,), {"stop": stop})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpStub("127.0.0.1", server.server_address[1], stop)
    finally:
        stop.set()  # the slow handlers return at once
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def secret_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis that requires a password (so the URL must carry one)."""
    with throwaway_redis(tmp_path_factory.mktemp("redis-auth"), password=REDIS_PASSWORD) as server:
        yield server


def make_chroma_store(path: Path, collections: int = 2) -> Path:
    """An embedded Chroma directory with ``collections`` small collections (explicit
    embeddings, no embedding function: no model download)."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False)
    )
    for k in range(collections):
        col = client.create_collection(f"papers_{k}", embedding_function=None)
        vectors: list[Sequence[float]] = [[float(i), float(k), 0.5, 1.0] for i in range(3)]
        col.add(
            ids=[f"p{k}-{i}" for i in range(3)],
            embeddings=vectors,
            documents=[f"paper {i}" for i in range(3)],
        )
    return path


@pytest.fixture(scope="session")
def chroma_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_chroma_store(tmp_path_factory.mktemp("health-chroma") / "chroma")
