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

Each check's settings are a pydantic model (``PostgresSettings``...): the numbers,
URLs and paths are validated there, whichever source they come from, and a bad
value is a :class:`HealthConfigError` whose one line names the setting (its file
key or environment variable) and what is wrong with it. Secret-bearing values
(DSNs, URLs that may hold a password, tokens) are in no message and no repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

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


# -- value types ---------------------------------------------------------------------------
#
# Numbers are pydantic floats (a number or a numeric string, finite), never booleans.
# The URL and path validators raise PydanticCustomError with the whole message, which
# never holds the value (it may carry a password).


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic's lax float would take true as 1.0
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


def _libpq_dsn(dsn: str) -> str:
    try:
        from psycopg.conninfo import conninfo_to_dict

        conninfo_to_dict(dsn)
    except Exception:
        raise PydanticCustomError("dsn", "not a valid libpq DSN or URL") from None
    return dsn


def _redis_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("redis", "rediss", "unix") and (
            bool(parts.hostname) or parts.scheme == "unix"
        )
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise PydanticCustomError(
            "redis_url", "must be a redis://, rediss:// or unix:// URL with a host"
        )
    return url


def _http_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise PydanticCustomError("http_url", "must be an http:// or https:// URL with a host")
    return url


def _path_list(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(p, str) and p for p in value):
        raise PydanticCustomError("path_list", "must be a list of paths")
    if not value:
        raise PydanticCustomError("path_list", "no path given")
    return tuple(value)


def _component_ages(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise PydanticCustomError("components", "must map a component to its max age (s)")
    return {str(k): v for k, v in value.items()}


Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
Positive = Annotated[Number, Field(gt=0)]
Ratio = Annotated[Number, Field(gt=0, le=1)]  # a ratio in (0, 1]
LatencyMs = Positive | None  # None: no latency threshold
LibpqDsn = Annotated[str, AfterValidator(_libpq_dsn)]
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Paths = Annotated[tuple[str, ...], BeforeValidator(_path_list)]
ComponentAges = Annotated[dict[str, Positive], BeforeValidator(_component_ages)]


class _Settings(BaseModel):
    # Inputs hold secrets (a DSN next to a bad timeout): no error message shows them.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def _not_below(high: str, high_value: float, low: str, low_value: float) -> None:
    if high_value < low_value:
        raise PydanticCustomError(
            "not_below",
            "{high} ({high_value}) must not be below {low} ({low_value})",
            {"high": high, "high_value": high_value, "low": low, "low_value": low_value},
        )


# -- the settings ----------------------------------------------------------------------------


class PostgresSettings(_Settings):
    dsn: LibpqDsn = Field(repr=False)
    timeout: Positive = 5.0
    latency_degraded_ms: LatencyMs = 1000.0
    connections_degraded_ratio: Ratio = 0.8  # of max_connections


class RedisSettings(_Settings):
    url: RedisUrl = Field(repr=False)
    timeout: Positive = 3.0
    latency_degraded_ms: LatencyMs = 1000.0
    memory_degraded_ratio: Ratio = 0.9  # of maxmemory (when one is set)


class ChromaSettings(_Settings):
    """Exactly one of ``path`` (embedded directory) and ``url`` (server)."""

    path: str | None = None
    url: Annotated[HttpUrl, AfterValidator(lambda url: url.rstrip("/"))] | None = Field(
        default=None, repr=False
    )
    token: str | None = Field(default=None, repr=False)
    timeout: Positive = 5.0
    latency_degraded_ms: LatencyMs = 2000.0

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "path", self.path
        yield "url", None if self.url is None else redact_url(self.url)
        yield from ((k, v) for k, v in super().__repr_args__() if k != "path")


class HttpSettings(_Settings):
    url: HttpUrl = Field(repr=False)
    timeout: Positive = 5.0
    latency_degraded_ms: LatencyMs = 1000.0

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", redact_url(self.url)
        yield from super().__repr_args__()


class DiskSettings(_Settings):
    paths: Paths = ("/",)
    degraded_ratio: Ratio = 0.80  # used / (used + free)
    unhealthy_ratio: Ratio = 0.95
    timeout: Positive = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> DiskSettings:
        _not_below("unhealthy_ratio", self.unhealthy_ratio, "degraded_ratio", self.degraded_ratio)
        return self


class SystemSettings(_Settings):
    cpu_degraded_ratio: Ratio = 0.95
    memory_degraded_ratio: Ratio = 0.90
    memory_unhealthy_ratio: Ratio = 0.97
    timeout: Positive = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> SystemSettings:
        _not_below(
            "memory_unhealthy_ratio",
            self.memory_unhealthy_ratio,
            "memory_degraded_ratio",
            self.memory_degraded_ratio,
        )
        return self


class BackupsSettings(_Settings):
    status_file: str
    max_age_seconds: Positive = 26 * 3600.0  # a daily backup plus slack
    components: ComponentAges = Field(default_factory=dict)  # per-component max age
    timeout: Positive = 2.0


class _PerformanceSettings(_Settings):
    latency_degraded_ms: Positive = 1000.0


class HealthConfig(_Settings):
    """Which checks run and how. ``None``: the check is off."""

    postgres: PostgresSettings | None = None
    redis: RedisSettings | None = None
    chroma: ChromaSettings | None = None
    backend: HttpSettings | None = None
    frontend: HttpSettings | None = None
    endpoints: Mapping[str, HttpSettings] = Field(default_factory=dict)
    disk: DiskSettings | None = Field(default_factory=DiskSettings)
    system: SystemSettings | None = Field(default_factory=SystemSettings)
    backups: BackupsSettings | None = None
    performance_latency_degraded_ms: Positive = 1000.0

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


# -- validation errors -------------------------------------------------------------------

_S = TypeVar("_S", bound=_Settings)
_NUMBER_ERRORS = {"float_type", "float_parsing", "finite_number", "greater_than", "less_than_equal"}


def _validate(
    model: type[_S], prefix: str, values: Mapping[str, Any], names: Mapping[str, str]
) -> _S:
    """``model`` from ``values``; a bad one raises HealthConfigError naming the setting:
    ``names[field]`` (an environment variable) or the file key ``prefix.field``."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        error = e.errors(include_url=False)[0]
        raise HealthConfigError(_describe(model, error, prefix, names)) from None


def _describe(
    model: type[_Settings], error: ErrorDetails, prefix: str, names: Mapping[str, str]
) -> str:
    def name(field: str) -> str:
        return names.get(field) or f"{prefix}.{field}"

    loc = [str(part) for part in error["loc"]]
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "not_below":
        return (
            f"{name(ctx['high'])} ({ctx['high_value']}) must not be below "
            f"{name(ctx['low'])} ({ctx['low_value']})"
        )
    setting = ".".join([name(loc[0]), *loc[1:]]) if loc else prefix
    if kind not in _NUMBER_ERRORS:
        # Our validators' messages, or pydantic's own: neither shows the value.
        return f"{setting}: {error['msg']}"
    # A number setting holds no secret: show what was given.
    if kind in ("float_type", "float_parsing"):
        problem = "must be a number"
    elif kind == "finite_number":
        problem = "must be a finite number"
    elif loc and _is_ratio(model, loc[0]):
        problem = "must be a ratio in (0, 1]"
    else:
        problem = f"must be greater than {ctx.get('gt', 0):g}"
    return f"{setting}: {problem}, not {error['input']!r}"


def _is_ratio(model: type[_Settings], field: str) -> bool:
    info = model.model_fields.get(field)
    # Ratio is the one type with an upper bound (annotated_types.Le)
    return info is not None and any(getattr(m, "le", None) is not None for m in info.metadata)


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

    perf = _section(doc, "performance") or {}
    _check_keys("performance", perf, ("latency_degraded_ms",))
    performance = _validate(_PerformanceSettings, "performance", perf, {})

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
        performance_latency_degraded_ms=performance.latency_degraded_ms,
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


def _with_timeout(
    name: str, section: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The section's values and their names, with ``SCHOLAR_OPS_HEALTH_<NAME>_TIMEOUT``
    (when set) in place of the file's timeout."""
    values, names = dict(section), {}
    var = f"{ENV_PREFIX}{name.upper()}_TIMEOUT"
    if env.get(var):
        values["timeout"], names["timeout"] = env[var], var
    return values, names


def _reject_url_password(url: str, name: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        raise HealthConfigError(
            f"{name}: a URL with a password must come from the environment, not the config file"
        )


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
    values, names = _with_timeout("postgres", section, env)
    values["dsn"], names["dsn"] = dsn, ENV_POSTGRES_DSN
    return _validate(PostgresSettings, "postgres", values, names)


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
    values, names = _with_timeout("redis", section, env)
    values["url"], names["url"] = url, ENV_REDIS_URL
    return _validate(RedisSettings, "redis", values, names)


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
    values, names = _with_timeout("chroma", section, env)
    values["path"] = str(path) if path else None
    values["url"] = str(url) if url else None
    values["token"] = env.get(ENV_CHROMA_TOKEN) or None
    if env.get(ENV_CHROMA_URL):
        names["url"] = ENV_CHROMA_URL
    return _validate(ChromaSettings, "chroma", values, names)


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
    values, names = _with_timeout(name, section, env) if env_var else (dict(section), {})
    values["url"] = str(url)
    if env_url and env_var:
        names["url"] = env_var
    return _validate(HttpSettings, name, values, names)


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
    values, names = _with_timeout("disk", section, env)
    if env.get(ENV_DISK_PATHS):
        values["paths"] = [p for p in env[ENV_DISK_PATHS].split(os.pathsep) if p]
        names["paths"] = ENV_DISK_PATHS
    return _validate(DiskSettings, "disk", values, names)


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
    return _validate(SystemSettings, "system", *_with_timeout("system", section, env))


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
    values, names = _with_timeout("backups", section, env)
    values["status_file"] = str(status_file)
    values["components"] = section.get("components") or {}
    if env.get(ENV_BACKUP_STATUS_FILE):
        names["status_file"] = ENV_BACKUP_STATUS_FILE
    return _validate(BackupsSettings, "backups", values, names)


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
