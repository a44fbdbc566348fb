"""A throwaway Chroma server (``chroma run`` of the installed chromadb) on a free
loopback port, persisting under a directory: the tests' ``chroma_server`` fixture, the
reference application's stores in the tests and the demo."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scholar_ops.sources.process import running_server


@dataclass(frozen=True)
class ChromaServer:
    host: str
    port: int
    path: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        return chromadb.HttpClient(
            host=self.host, port=self.port, settings=Settings(anonymized_telemetry=False)
        )

    def reset(self) -> None:
        """Delete every collection (tests share the session's server)."""
        client = self.client()
        for col in client.list_collections():
            client.delete_collection(col if isinstance(col, str) else col.name)


def chroma_exe() -> str:
    """The ``chroma`` CLI of the installed chromadb (beside this Python, else on PATH)."""
    beside = Path(sys.executable).parent / "chroma"
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise RuntimeError("the chroma CLI is missing: run `uv sync` (chromadb)")
    return found


def chroma_run_argv(exe: str, data: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """``chroma run`` persisting under ``data`` on host:port."""
    return [exe, "run", "--path", str(data), "--host", host, "--port", str(port)]


def heartbeat(port: int) -> bool:
    """Ready when GET /api/v2/heartbeat on 127.0.0.1:<port> answers 200."""
    return _heartbeat(port)


def _heartbeat(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def chroma_server_in(workdir: Path) -> Iterator[ChromaServer]:
    """A Chroma server persisting under ``workdir`` until the block ends."""
    exe = chroma_exe()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    with running_server(
        "chroma run",
        lambda port: chroma_run_argv(exe, data, port),
        cwd=workdir,
        log_path=workdir / "chroma.log",
        ready=_heartbeat,
        timeout=90,
        stop_timeout=15,
    ) as server:
        yield ChromaServer(host=server.host, port=server.port, path=data, log_path=server.log_path)
