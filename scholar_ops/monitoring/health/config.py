"""Settings of the health service: a YAML file and/or environment variables.

Secrets (DSNs, URLs with credentials, tokens) come only from the environment;
a config file that holds one is refused, so it can be committed and shared.

Environment (every name starts with ``SCHOLAR_OPS_HEALTH_``):

==============================  =====================================================
``..._CONFIG``                  path of the YAML file (``--config`` wins)
``..._POSTGRES_DSN``            libpq DSN or URL: enables the ``postgres`` check
``..._REDIS_URL``               ``redis://[:password@]host:port/db`` (or ``rediss://``)
``..._CHROMA_PATH``             an embedded Chroma directory, or
``..._CHROMA_URL``              a Chroma server, ``http://host:8000``
``..._CHROMA_TOKEN``            its auth token (sent as ``Authorization: Bearer``)
``..._BACKEND_URL``             the backend's health endpoint, ``http://backend:8000/health``
``..._FRONTEND_URL``            the frontend, ``http://frontend:3000/``
``..._DISK_PATHS``              paths whose filesystems are watched (``os.pathsep``-separated)
``..._BACKUP_STATUS_FILE``      JSON backup status file: enables the ``backups`` check
``..._<CHECK>_TIMEOUT``         seconds, for CHECK in POSTGRES, REDIS, CHROMA, BACKEND,
                                FRONTEND, DISK, SYSTEM, BACKUPS
==============================  =====================================================

The YAML file (every section and key optional)::

    performance: {latency_degraded_ms: 1000}   # a check slower than this: degraded
    postgres: {timeout: 5, latency_degraded_ms: 1000, connections_degraded_ratio: 0.8}
    redis: {timeout: 3, memory_degraded_ratio: 0.9}          # used / maxmemory
    chroma: {path: /data/chroma, timeout: 5}                  # or url: http://chroma:8000
    backend: {url: "http://backend:8000/health", timeout: 5, latency_degraded_ms: 1000}
    frontend: {url: "http://frontend:3000/"}
    endpoints:                                               # more HTTP services
      nginx: {url: "http://nginx/", timeout: 3}
    disk: {paths: [/, /var/lib/postgresql], degraded_ratio: 0.8, unhealthy_ratio: 0.95}
    system: {cpu_degraded_ratio: 0.95, memory_degraded_ratio: 0.9, memory_unhealthy_ratio: 0.97}
    backups:
      status_file: /var/lib/scholar-ops/backup-status.json
      max_age_seconds: 93600                                  # degraded beyond, unhealthy at 2x
      components: {postgres: 93600, chroma: 180000}

A section may be ``false`` (or hold ``enabled: false``) to switch its check off;
``disk`` and ``system`` are on by default, the others when their target is set. A
``postgres`` or ``redis`` section without its environment variable is an error.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from scholar_ops.redaction import redact_url
from scholar_ops.vault.errors import ConfigError

ENV_PREFIX = "SCHOLAR_OPS_HEALTH_"
ENV_CONFIG = ENV_PREFIX + "CONFIG"
ENV_POSTGRES_DSN = ENV_PREFIX + "POSTGRES_DSN"
ENV_REDIS_URL = ENV_PREFIX + "REDIS_URL"
ENV_CHROMA_PATH = ENV_PREFIX + "CHROMA_PATH"
ENV_CHROMA_URL = ENV_PREFIX + "CHROMA_URL"
ENV_CHROMA_TOKEN = ENV_PREFIX + "CHROMA_TOKEN"
ENV_BACKEND_URL = ENV_PREFIX + "BACKEND_URL"
ENV_FRONTEND_URL = ENV_PREFIX + "FRONTEND_URL"
ENV_DISK_PATHS = ENV_PREFIX + "DISK_PATHS"
ENV_BACKUP_STATUS_FILE = ENV_PREFIX + "BACKUP_STATUS_FILE"

BUILTIN_CHECKS = ("postgres", "redis", "chroma", "backend", "frontend", "disk", "system", "backups")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_SECRET_KEYS = {"dsn", "password", "token", "secret"}


class HealthConfigError(ConfigError):
    """A bad health setting; the message names it (file key or environment variable)."""


@dataclass(frozen=True)
class PostgresSettings:
    dsn: str = field(repr=False)
    timeout: float = 5.0
    latency_degraded_ms: float | None = 1000.0
    connections_degraded_ratio: float = 0.8  # of max_connections


@dataclass(frozen=True)
class RedisSettings:
    url: str = field(repr=False)
    timeout: float = 3.0
    latency_degraded_ms: float | None = 1000.0
    memory_degraded_ratio: float = 0.9  # of maxmemory (when one is set)


@dataclass(frozen=True)
class ChromaSettings:
    """Exactly one of ``path`` (embedded directory) and ``url`` (server)."""

    path: str | None = None
    url: str | None = None
    token: str | None = field(default=None, repr=False)
    timeout: float = 5.0
    latency_degraded_ms: float | None = 2000.0


@dataclass(frozen=True)
class HttpSettings:
    url: str = field(repr=False)
    timeout: float = 5.0
    latency_degraded_ms: float | None = 1000.0

    def __repr__(self) -> str:
        return (
            f"HttpSettings(url={redact_url(self.url)!r}, timeout={self.timeout}, "
            f"latency_degraded_ms={self.latency_degraded_ms})"
        )


@dataclass(frozen=True)
class DiskSettings:
    paths: tuple[str, ...] = ("/",)
    degraded_ratio: float = 0.80  # used / (used + free)
    unhealthy_ratio: float = 0.95
    timeout: float = 2.0


@dataclass(frozen=True)
class SystemSettings:
    cpu_degraded_ratio: float = 0.95
    memory_degraded_ratio: float = 0.90
    memory_unhealthy_ratio: float = 0.97
    timeout: float = 2.0


@dataclass(frozen=True)
class BackupsSettings:
    status_file: str
    max_age_seconds: float = 26 * 3600.0  # a daily backup plus slack
    components: Mapping[str, float] = field(default_factory=dict)  # per-component max age
    timeout: float = 2.0


@dataclass(frozen=True)
class HealthConfig:
    """Which checks run and how. ``None``: the check is off."""

    postgres: PostgresSettings | None = None
    redis: RedisSettings | None = None
    chroma: ChromaSettings | None = None
    backend: HttpSettings | None = None
    frontend: HttpSettings | None = None
    endpoints: Mapping[str, HttpSettings] = field(default_factory=dict)
    disk: DiskSettings | None = field(default_factory=DiskSettings)
    system: SystemSettings | None = field(default_factory=SystemSettings)
    backups: BackupsSettings | None = None
    performance_latency_degraded_ms: float = 1000.0

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, env: Mapping[str, str] | None = None
    ) -> HealthConfig:
        """From the YAML file ``path`` (default: ``$SCHOLAR_OPS_HEALTH_CONFIG``, or none)
        and the environment ``env`` (default: ``os.environ``)."""
        return load_config(path, env=env)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in this configuration, to scrub from any output."""
        found: list[str] = []
        if self.postgres is not None:
            found += _dsn_secrets(self.postgres.dsn)
        if self.redis is not None:
            found += _url_secrets(self.redis.url)
        if self.chroma is not None:
            if self.chroma.token:
                found.append(self.chroma.token)
            if self.chroma.url:
                found += _url_secrets(self.chroma.url)
        for http in (self.backend, self.frontend, *self.endpoints.values()):
            if http is not None:
                found += _url_secrets(http.url)
        return tuple(s for s in dict.fromkeys(found) if s)


# -- loading ---------------------------------------------------------------------------


def load_config(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> HealthConfig:
    """See the module docstring. Raises HealthConfigError naming the bad setting."""
    env = os.environ if env is None else env
    if path is None and env.get(ENV_CONFIG):
        path = env[ENV_CONFIG]
    doc: dict[str, Any] = {}
    if path is not None:
        doc = _read_yaml(Path(path))
    _check_keys("", doc, ("performance", *BUILTIN_CHECKS, "endpoints"), what=f"config file {path}")

    perf = _section(doc, "performance")
    _check_keys("performance", perf or {}, ("latency_degraded_ms",))
    perf_ms = _positive(
        (perf or {}).get("latency_degraded_ms", 1000.0), "performance.latency_degraded_ms"
    )

    return HealthConfig(
        postgres=_postgres(doc, env),
        redis=_redis(doc, env),
        chroma=_chroma(doc, env),
        backend=_http(
            "backend", _section(doc, "backend"), env.get(ENV_BACKEND_URL), ENV_BACKEND_URL, env
        ),
        frontend=_http(
            "frontend", _section(doc, "frontend"), env.get(ENV_FRONTEND_URL), ENV_FRONTEND_URL, env
        ),
        endpoints=_endpoints(doc),
        disk=_disk(doc, env),
        system=_system(doc, env),
        backups=_backups(doc, env),
        performance_latency_degraded_ms=perf_ms,
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise HealthConfigError(f"cannot read the health config file {path}: {e.strerror}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise HealthConfigError(f"the health config file {path} is not valid YAML: {e}") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise HealthConfigError(f"the health config file {path} must hold a mapping at the top")
    return doc


def _section(doc: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The mapping under ``name``: None when the file has no such section, ``{}`` for
    an empty one (or ``true``), ``{"enabled": False}`` for ``false``."""
    if name not in doc:
        return None
    value = doc[name]
    if value is None or value is True:
        return {}
    if value is False:
        return {"enabled": False}
    if not isinstance(value, dict):
        raise HealthConfigError(f"{name}: must be a mapping or false, not {type(value).__name__}")
    return dict(value)


def _enabled(name: str, section: dict[str, Any] | None) -> bool:
    if section is None:
        return True
    value = section.pop("enabled", True)
    if not isinstance(value, bool):
        raise HealthConfigError(f"{name}.enabled: must be true or false, not {value!r}")
    return value


def _check_keys(
    prefix: str, section: Mapping[str, Any], known: tuple[str, ...], what: str = ""
) -> None:
    for key in section:
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if str(key).lower() in _SECRET_KEYS or str(key).lower().endswith(("_password", "_token")):
            raise HealthConfigError(
                f"{dotted}: secrets come only from the environment "
                f"(see monitoring/health/config.py), not from the config file"
            )
        if key not in known:
            where = f" in {what}" if what else ""
            raise HealthConfigError(f"unknown setting {dotted}{where} (known: {', '.join(known)})")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise HealthConfigError(f"{name}: must be a number, not {value!r}")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise HealthConfigError(f"{name}: must be a number, not {value!r}") from None
    else:
        raise HealthConfigError(f"{name}: must be a number, not {value!r}")
    if not math.isfinite(result):
        raise HealthConfigError(f"{name}: must be a finite number, not {value!r}")
    return result


def _positive(value: Any, name: str) -> float:
    result = _number(value, name)
    if result <= 0:
        raise HealthConfigError(f"{name}: must be greater than 0, not {value!r}")
    return result


def _ratio(value: Any, name: str) -> float:
    result = _number(value, name)
    if not 0 < result <= 1.0:
        raise HealthConfigError(f"{name}: must be a ratio in (0, 1], not {value!r}")
    return result


def _optional_ms(value: Any, name: str) -> float | None:
    return None if value is None else _positive(value, name)


def _timeout(
    name: str, section: Mapping[str, Any], default: float, env: Mapping[str, str]
) -> float:
    var = f"{ENV_PREFIX}{name.upper()}_TIMEOUT"
    if env.get(var):
        return _positive(env[var], var)
    return _positive(section.get("timeout", default), f"{name}.timeout")


def _reject_url_password(url: str, name: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        raise HealthConfigError(
            f"{name}: a URL with a password must come from the environment, not the config file"
        )


def _http_url(url: str, name: str) -> str:
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise HealthConfigError(f"{name}: must be an http:// or https:// URL with a host")
    return url


def _postgres(doc: Mapping[str, Any], env: Mapping[str, str]) -> PostgresSettings | None:
    section = _section(doc, "postgres")
    if not _enabled("postgres", section):
        return None
    present = section is not None
    section = section or {}
    _check_keys(
        "postgres", section, ("timeout", "latency_degraded_ms", "connections_degraded_ratio")
    )
    dsn = env.get(ENV_POSTGRES_DSN, "").strip()
    if not dsn:
        if present:
            raise HealthConfigError(
                f"postgres: the config file enables it but {ENV_POSTGRES_DSN} is not set"
            )
        return None
    try:
        from psycopg.conninfo import conninfo_to_dict

        conninfo_to_dict(dsn)
    except Exception:
        raise HealthConfigError(f"{ENV_POSTGRES_DSN}: not a valid libpq DSN or URL") from None
    return PostgresSettings(
        dsn=dsn,
        timeout=_timeout("postgres", section, 5.0, env),
        latency_degraded_ms=_optional_ms(
            section.get("latency_degraded_ms", 1000.0), "postgres.latency_degraded_ms"
        ),
        connections_degraded_ratio=_ratio(
            section.get("connections_degraded_ratio", 0.8), "postgres.connections_degraded_ratio"
        ),
    )


def _redis(doc: Mapping[str, Any], env: Mapping[str, str]) -> RedisSettings | None:
    section = _section(doc, "redis")
    if not _enabled("redis", section):
        return None
    present = section is not None
    section = section or {}
    _check_keys("redis", section, ("timeout", "latency_degraded_ms", "memory_degraded_ratio"))
    url = env.get(ENV_REDIS_URL, "").strip()
    if not url:
        if present:
            raise HealthConfigError(
                f"redis: the config file enables it but {ENV_REDIS_URL} is not set"
            )
        return None
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("redis", "rediss", "unix") and (
            bool(parts.hostname) or parts.scheme == "unix"
        )
        parts.port  # noqa: B018
    except ValueError:
        ok = False
    if not ok:
        raise HealthConfigError(
            f"{ENV_REDIS_URL}: must be a redis://, rediss:// or unix:// URL with a host"
        )
    return RedisSettings(
        url=url,
        timeout=_timeout("redis", section, 3.0, env),
        latency_degraded_ms=_optional_ms(
            section.get("latency_degraded_ms", 1000.0), "redis.latency_degraded_ms"
        ),
        memory_degraded_ratio=_ratio(
            section.get("memory_degraded_ratio", 0.9), "redis.memory_degraded_ratio"
        ),
    )


def _chroma(doc: Mapping[str, Any], env: Mapping[str, str]) -> ChromaSettings | None:
    section = _section(doc, "chroma")
    if not _enabled("chroma", section):
        return None
    present = section is not None
    section = section or {}
    _check_keys("chroma", section, ("path", "url", "timeout", "latency_degraded_ms"))
    if section.get("url"):
        _reject_url_password(str(section["url"]), "chroma.url")
    path = env.get(ENV_CHROMA_PATH) or section.get("path")
    url = env.get(ENV_CHROMA_URL) or section.get("url")
    if env.get(ENV_CHROMA_PATH) and env.get(ENV_CHROMA_URL):
        raise HealthConfigError(
            f"{ENV_CHROMA_PATH} and {ENV_CHROMA_URL} are both set: a Chroma store is either "
            "an embedded directory or a server"
        )
    if env.get(ENV_CHROMA_PATH):
        url = None
    elif env.get(ENV_CHROMA_URL):
        path = None
    if path and url:
        raise HealthConfigError(
            "chroma: set either path (an embedded directory) or url (a server), not both"
        )
    if not path and not url:
        if present:
            raise HealthConfigError(
                f"chroma: the config file enables it but neither chroma.path, chroma.url, "
                f"{ENV_CHROMA_PATH} nor {ENV_CHROMA_URL} is set"
            )
        return None
    if url:
        _http_url(str(url), ENV_CHROMA_URL if env.get(ENV_CHROMA_URL) else "chroma.url")
    return ChromaSettings(
        path=str(path) if path else None,
        url=str(url).rstrip("/") if url else None,
        token=env.get(ENV_CHROMA_TOKEN) or None,
        timeout=_timeout("chroma", section, 5.0, env),
        latency_degraded_ms=_optional_ms(
            section.get("latency_degraded_ms", 2000.0), "chroma.latency_degraded_ms"
        ),
    )


def _http(
    name: str,
    section: dict[str, Any] | None,
    env_url: str | None,
    env_var: str | None,
    env: Mapping[str, str],
) -> HttpSettings | None:
    if not _enabled(name, section):
        return None
    present = section is not None
    section = section or {}
    _check_keys(name, section, ("url", "timeout", "latency_degraded_ms"))
    if section.get("url"):
        _reject_url_password(str(section["url"]), f"{name}.url")
    url = (env_url or "").strip() or section.get("url")
    if not url:
        if present:
            hint = f" nor {env_var}" if env_var else ""
            raise HealthConfigError(f"{name}: neither {name}.url{hint} is set")
        return None
    _http_url(str(url), env_var if env_url and env_var else f"{name}.url")
    timeout = (
        _timeout(name, section, 5.0, env)
        if env_var
        else _positive(section.get("timeout", 5.0), f"{name}.timeout")
    )
    return HttpSettings(
        url=str(url),
        timeout=timeout,
        latency_degraded_ms=_optional_ms(
            section.get("latency_degraded_ms", 1000.0), f"{name}.latency_degraded_ms"
        ),
    )


def _endpoints(doc: Mapping[str, Any]) -> dict[str, HttpSettings]:
    raw = doc.get("endpoints") or {}
    if not isinstance(raw, dict):
        raise HealthConfigError("endpoints: must be a mapping of name to {url, timeout, ...}")
    result: dict[str, HttpSettings] = {}
    for name, value in raw.items():
        key = f"endpoints.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise HealthConfigError(
                f"{key}: a check name is lowercase letters, digits, '_' or '-' (max 40)"
            )
        if name in BUILTIN_CHECKS:
            raise HealthConfigError(f"{key}: '{name}' is a built-in check's name")
        if isinstance(value, str):
            value = {"url": value}
        if not isinstance(value, dict):
            raise HealthConfigError(f"{key}: must be a URL or a mapping with url")
        settings = _http(key, dict(value), None, None, {})
        if settings is None:
            continue
        result[name] = settings
    return result


def _disk(doc: Mapping[str, Any], env: Mapping[str, str]) -> DiskSettings | None:
    section = _section(doc, "disk")
    if not _enabled("disk", section):
        return None
    section = section or {}
    _check_keys("disk", section, ("paths", "degraded_ratio", "unhealthy_ratio", "timeout"))
    paths: tuple[str, ...]
    if env.get(ENV_DISK_PATHS):
        paths = tuple(p for p in env[ENV_DISK_PATHS].split(os.pathsep) if p)
    else:
        raw = section.get("paths", ["/"])
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
            raise HealthConfigError("disk.paths: must be a list of paths")
        paths = tuple(raw)
    if not paths:
        raise HealthConfigError(f"disk.paths ({ENV_DISK_PATHS}): no path given")
    degraded = _ratio(section.get("degraded_ratio", 0.80), "disk.degraded_ratio")
    unhealthy = _ratio(section.get("unhealthy_ratio", 0.95), "disk.unhealthy_ratio")
    if unhealthy < degraded:
        raise HealthConfigError(
            f"disk.unhealthy_ratio ({unhealthy}) must not be below disk.degraded_ratio ({degraded})"
        )
    return DiskSettings(
        paths=paths,
        degraded_ratio=degraded,
        unhealthy_ratio=unhealthy,
        timeout=_timeout("disk", section, 2.0, env),
    )


def _system(doc: Mapping[str, Any], env: Mapping[str, str]) -> SystemSettings | None:
    section = _section(doc, "system")
    if not _enabled("system", section):
        return None
    section = section or {}
    _check_keys(
        "system",
        section,
        ("cpu_degraded_ratio", "memory_degraded_ratio", "memory_unhealthy_ratio", "timeout"),
    )
    mem_degraded = _ratio(
        section.get("memory_degraded_ratio", 0.90), "system.memory_degraded_ratio"
    )
    mem_unhealthy = _ratio(
        section.get("memory_unhealthy_ratio", 0.97), "system.memory_unhealthy_ratio"
    )
    if mem_unhealthy < mem_degraded:
        raise HealthConfigError(
            f"system.memory_unhealthy_ratio ({mem_unhealthy}) must not be below "
            f"system.memory_degraded_ratio ({mem_degraded})"
        )
    return SystemSettings(
        cpu_degraded_ratio=_ratio(
            section.get("cpu_degraded_ratio", 0.95), "system.cpu_degraded_ratio"
        ),
        memory_degraded_ratio=mem_degraded,
        memory_unhealthy_ratio=mem_unhealthy,
        timeout=_timeout("system", section, 2.0, env),
    )


def _backups(doc: Mapping[str, Any], env: Mapping[str, str]) -> BackupsSettings | None:
    section = _section(doc, "backups")
    if not _enabled("backups", section):
        return None
    present = section is not None
    section = section or {}
    _check_keys("backups", section, ("status_file", "max_age_seconds", "components", "timeout"))
    status_file = env.get(ENV_BACKUP_STATUS_FILE) or section.get("status_file")
    if not status_file:
        if present:
            raise HealthConfigError(
                f"backups: neither backups.status_file nor {ENV_BACKUP_STATUS_FILE} is set"
            )
        return None
    raw = section.get("components") or {}
    if not isinstance(raw, dict):
        raise HealthConfigError("backups.components: must map a component to its max age (s)")
    components = {str(k): _positive(v, f"backups.components.{k}") for k, v in raw.items()}
    return BackupsSettings(
        status_file=str(status_file),
        max_age_seconds=_positive(
            section.get("max_age_seconds", 26 * 3600.0), "backups.max_age_seconds"
        ),
        components=components,
        timeout=_timeout("backups", section, 2.0, env),
    )


# -- secrets ------------------------------------------------------------------------------


def _url_secrets(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return [url]
    return [password] if password else []


def _dsn_secrets(dsn: str) -> list[str]:
    found = [dsn]
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
    except Exception:
        password = None
    if isinstance(password, str) and password:
        found.append(password)
    return found
