"""``MonitoringSettings``: where metrics go and what the metrics export collects.

The backup flows push each target's status to ``pushgateway_url`` at the end of every
run; the metrics-export flow collects the host, the databases named here (target
blocks), the application's endpoints and the repository's snapshots, and pushes them.
Label values are the target blocks' ``target_name`` and the endpoints' names, never
URLs or credentials (docs/metrics.md).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from blocks.base import StrictBlock

PUSHGATEWAY_URL_ENV = "SCHOLAR_OPS_PUSHGATEWAY_URL"
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _check_http_url(url: str, what: str, *, allow_userinfo: bool) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ValueError(f"{what} has an invalid port") from None
    if not allow_userinfo and (parts.username is not None or parts.password is not None):
        raise ValueError(
            f"{what} must not carry credentials: set pushgateway_username and "
            "pushgateway_password instead"
        )
    return url


class MonitoringSettings(StrictBlock):
    """The Pushgateway, backup intervals, and what the metrics export collects."""

    _block_type_name = "scholar-ops monitoring settings"
    _description = (
        "Where scholar-ops pushes its metrics (a Prometheus Pushgateway), how often each "
        "target is meant to be backed up, and which databases, endpoints and repository "
        "the metrics export collects."
    )

    pushgateway_url: str = Field(
        description="Base URL of the Prometheus Pushgateway, e.g. http://pushgateway:9091."
    )
    pushgateway_username: str | None = Field(
        default=None, description="Basic-auth user for the Pushgateway (empty: none)."
    )
    pushgateway_password: SecretStr | None = Field(
        default=None, description="Basic-auth password for the Pushgateway."
    )
    backup_interval_seconds: float = Field(
        default=3600,
        gt=0,
        description="How often a target is meant to be backed up (drives the stale-backup alert).",
    )
    backup_intervals: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Per-target overrides of backup_interval_seconds: target name (or "
            "component/target) -> seconds."
        ),
    )
    app_endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Application endpoints to probe: short name -> URL (e.g. backend -> http://backend:8000/health).",
    )
    postgres_targets: list[str] = Field(
        default_factory=list, description="PostgreSQL target blocks to collect metrics from."
    )
    redis_targets: list[str] = Field(
        default_factory=list, description="Redis target blocks to collect metrics from."
    )
    chroma_targets: list[str] = Field(
        default_factory=list, description="Chroma target blocks to collect metrics from."
    )
    repository: str | None = Field(
        default="scholar-ops-repository",
        description="Backup repository block whose snapshots are exported (empty: none).",
    )
    collector_timeout_seconds: float = Field(
        default=15, gt=0, le=300, description="Time each collector may take."
    )
    push_timeout_seconds: float = Field(
        default=10, gt=0, le=300, description="Time a push to the Pushgateway may take."
    )
    instance: str | None = Field(
        default=None,
        max_length=128,
        description="instance label of the system and export groups (default: the host name).",
    )

    @field_validator("pushgateway_url")
    @classmethod
    def _pushgateway_url(cls, value: str) -> str:
        return _check_http_url(value, "pushgateway_url", allow_userinfo=False).rstrip("/")

    @field_validator("pushgateway_username", "repository", "instance")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    @field_validator("pushgateway_password")
    @classmethod
    def _empty_password_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() == "":
            return None
        return value

    @field_validator("backup_intervals")
    @classmethod
    def _intervals(cls, value: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, seconds in value.items():
            if not key.strip():
                raise ValueError("backup_intervals: a target name is empty")
            if not seconds > 0:
                raise ValueError(f"backup_intervals[{key!r}] must be > 0 seconds")
            out[key.strip()] = float(seconds)
        return out

    @field_validator("app_endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, url in value.items():
            if not _ENDPOINT_NAME.match(name):
                raise ValueError(
                    f"app_endpoints: {name!r} is not a short name (letters, digits, _ . : -; "
                    "it becomes the endpoint label)"
                )
            out[name] = _check_http_url(url, f"app_endpoints[{name!r}]", allow_userinfo=True)
        return out

    @field_validator("postgres_targets", "redis_targets", "chroma_targets")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [v.strip() for v in value if v.strip()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target block(s) {dupes} listed twice")
        return names

    @model_validator(mode="after")
    def _auth(self) -> MonitoringSettings:
        if (self.pushgateway_username is None) != (self.pushgateway_password is None):
            raise ValueError("set both pushgateway_username and pushgateway_password, or neither")
        return self

    @property
    def push_auth(self) -> tuple[str, str] | None:
        if self.pushgateway_username is None or self.pushgateway_password is None:
            return None
        return self.pushgateway_username, self.pushgateway_password.get_secret_value()

    def expected_interval(self, component: str, target: str) -> float:
        """Seconds between backups of a target: its override, else the default."""
        for key in (f"{component}/{target}", target):
            if key in self.backup_intervals:
                return self.backup_intervals[key]
        return float(self.backup_interval_seconds)
