"""The application's settings, from AISCHOLAR_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A missing or invalid setting: one line naming the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    #: an embedded Chroma directory, or http(s)://host:port of a Chroma server
    chroma: str
    admin_token: str = field(default="", repr=False)
    rate_limit_per_minute: int = 60
    session_ttl_seconds: int = 3600
    answer_ttl_seconds: int = 600
    collection: str = "aischolar_chunks"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"{name} is not set: see docs/aischolar.md")
            return value

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a whole number") from None
            if value <= 0:
                raise SettingsError(f"{name} must be positive")
            return value

        return cls(
            database_url=need("AISCHOLAR_DATABASE_URL"),
            redis_url=need("AISCHOLAR_REDIS_URL"),
            chroma=need("AISCHOLAR_CHROMA"),
            admin_token=env.get("AISCHOLAR_ADMIN_TOKEN", "").strip(),
            rate_limit_per_minute=number("AISCHOLAR_RATE_LIMIT_PER_MINUTE", 60),
            session_ttl_seconds=number("AISCHOLAR_SESSION_TTL_SECONDS", 3600),
        )
