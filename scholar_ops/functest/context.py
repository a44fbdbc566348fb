"""What every suite is handed: the target, resolved credentials and stores, where to keep
artifacts, a logger, and the run's test prefix.

Resolution of names (Secret blocks, target blocks) happens above the engine (tasks/):
the context carries plain values, and secret values only as ``SecretStr``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.settings import AuthSettings


@dataclass(frozen=True)
class Credentials:
    username: str
    password: SecretStr

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class Stores:
    """Where the target's data lives, for the database suite (any may be absent)."""

    postgres_dsn: SecretStr | None = None
    redis_url: SecretStr | None = None
    #: an embedded Chroma directory, or an http(s) URL of a Chroma server
    chroma: str | None = None


def _no_log(message: str) -> None:
    pass


@dataclass
class SuiteContext:
    base_url: str
    target_name: str = "target"
    credentials: Credentials | None = None
    stores: Stores = field(default_factory=Stores)
    artifact_dir: Path = field(default_factory=lambda: Path("."))
    #: every record a suite creates starts with this (test users, documents): anonymised
    #: test data, isolated from real users' data and removed afterwards
    test_prefix: str = "sotest-"
    run_id: str = ""
    smoke: bool = False
    #: how the test user logs in (scholar_ops.functest.auth.login)
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: time.monotonic() after which a suite stops starting new tests
    deadline: float | None = None
    request_timeout: float = 10.0
    log: Callable[[str], None] = _no_log
    #: the previous run's performance numbers, by "endpoint metric" (see performance)
    baseline: dict[str, float] = field(default_factory=dict)
    #: the secret values of this run, for scrubbing messages (never logged)
    secrets: tuple[str, ...] = ()

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client on the target (no redirects followed unless asked)."""
        return httpx.Client(
            base_url=self.base_url,
            timeout=self.request_timeout,
            **kwargs,  # type: ignore[arg-type]
        )

    def scrub(self, text: str) -> str:
        """``text`` with every secret of the run replaced by ***."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def artifact_path(self, suite: str, name: str) -> Path:
        path = self.artifact_dir / suite / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def reachable(ctx: SuiteContext, path: str = "/", what: str | None = None) -> None:
    """Raise ServiceUnavailable unless the target answers ``path`` with something other
    than a gateway error (502/503/504)."""
    what = what or f"{ctx.target_name} at {ctx.base_url}"
    try:
        with ctx.client() as client:
            response = client.get(path)
    except httpx.TransportError as e:
        raise ServiceUnavailable(what, _transport_reason(e)) from None
    if response.status_code in (502, 503, 504):
        raise ServiceUnavailable(what, f"HTTP {response.status_code} on {path}")


def _transport_reason(e: httpx.TransportError) -> str:
    if isinstance(e, httpx.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(e, httpx.TimeoutException):
        return "timed out"
    return type(e).__name__
