"""The reference AI Scholar application as a throwaway process (tests and the demo).

``running_aischolar(...)`` starts ``python -m scholar_ops.aischolar`` on a free
loopback port with the given stores, waits until ``/health/live`` answers, and stops
it at the end. The object it yields switches faults and creates users through the
application's own HTTP API.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from scholar_ops.aischolar.faults import FAULT_NAMES as FAULTS
from scholar_ops.sources.process import RunningServer, running_server


@dataclass
class AIScholar:
    server: RunningServer
    admin_token: str
    database_url: str
    redis_url: str
    chroma: str
    #: a user the tests log in as (set by whoever starts the application)
    test_user: str = ""
    test_password: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def port(self) -> int:
        return self.server.port

    def set_faults(self, **flags: bool) -> dict[str, Any]:
        unknown = set(flags) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}: one of {FAULTS}")
        body = {name: bool(flags.get(name, False)) for name in FAULTS}
        r = httpx.put(
            f"{self.url}/api/admin/faults",
            json=body,
            headers={"X-Admin-Token": self.admin_token},
            timeout=10,
        )
        r.raise_for_status()
        return dict(r.json())

    def reset_faults(self) -> None:
        self.set_faults()

    def create_user(self, username: str, password: str) -> int:
        """Register ``username`` (an existing one is fine); returns its id."""
        r = httpx.post(
            f"{self.url}/api/auth/register",
            json={"username": username, "password": password},
            timeout=10,
        )
        if r.status_code == 409:
            login = httpx.post(
                f"{self.url}/api/auth/login",
                json={"username": username, "password": password},
                timeout=10,
            )
            login.raise_for_status()
            me = httpx.get(
                f"{self.url}/api/me",
                timeout=10,
                headers={"Authorization": f"Bearer {login.json()['access_token']}"},
            )
            me.raise_for_status()
            return int(me.json()["id"])
        r.raise_for_status()
        return int(r.json()["id"])

    def token(self, username: str, password: str) -> str:
        r = httpx.post(
            f"{self.url}/api/auth/login",
            json={"username": username, "password": password},
            timeout=10,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])


def _live(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_aischolar(
    *,
    database_url: str,
    redis_url: str,
    chroma: str,
    admin_token: str,
    workdir: Path,
    env_extra: Mapping[str, str] | None = None,
    timeout: float = 90.0,
) -> Iterator[AIScholar]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AISCHOLAR_DATABASE_URL": database_url,
        "AISCHOLAR_REDIS_URL": redis_url,
        "AISCHOLAR_CHROMA": chroma,
        "AISCHOLAR_ADMIN_TOKEN": admin_token,
        "ANONYMIZED_TELEMETRY": "False",
        **(env_extra or {}),
    }
    with running_server(
        "aischolar",
        lambda port: [
            sys.executable,
            "-m",
            "scholar_ops.aischolar",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=workdir,
        log_path=workdir / "aischolar.log",
        ready=_live,
        timeout=timeout,
        env=env,
    ) as server:
        yield AIScholar(server, admin_token, database_url, redis_url, chroma)
