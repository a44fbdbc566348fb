"""HealthConfig from YAML and the environment; errors name the bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from scholar_ops.monitoring.health.checks import checks_from_config
from scholar_ops.monitoring.health.config import (
    ENV_BACKEND_URL,
    ENV_CHROMA_PATH,
    ENV_CHROMA_TOKEN,
    ENV_CHROMA_URL,
    ENV_CONFIG,
    ENV_DISK_PATHS,
    ENV_POSTGRES_DSN,
    ENV_REDIS_URL,
    HealthConfig,
    HealthConfigError,
    PostgresSettings,
)
from scholar_ops.vault.errors import ConfigError

DSN = "postgresql://app:pg-pw-1@db:5432/scholar"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "health.yml"
    path.write_text(text)
    return path


def test_defaults_without_anything() -> None:
    cfg = HealthConfig.load(env={})
    assert cfg.postgres is None and cfg.redis is None and cfg.chroma is None
    assert cfg.backend is None and cfg.frontend is None and cfg.backups is None
    assert cfg.disk is not None and cfg.disk.paths == ("/",)
    assert cfg.system is not None
    assert [c.name for c in checks_from_config(cfg)] == ["disk", "system"]


def test_yaml_and_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
performance: {latency_degraded_ms: 800}
postgres: {timeout: 4, connections_degraded_ratio: 0.7}
redis: {memory_degraded_ratio: 0.5}
chroma: {path: /data/chroma}
backend: {url: "http://backend:8000/health", latency_degraded_ms: 500}
frontend: {url: "http://frontend:3000/"}
endpoints:
  nginx: "http://nginx/"
  grafana: {url: "http://grafana:3000/api/health", timeout: 2}
disk: {paths: [/, /var], degraded_ratio: 0.7, unhealthy_ratio: 0.9}
system: false
backups: {status_file: /var/lib/status.json, components: {postgres: 3600}}
""",
    )
    env = {
        ENV_POSTGRES_DSN: DSN,
        ENV_REDIS_URL: "redis://:redis-pw-2@cache:6379/1",
        ENV_BACKEND_URL: "http://api:9000/health",
        "SCHOLAR_OPS_HEALTH_REDIS_TIMEOUT": "1.5",
        ENV_CHROMA_TOKEN: "chroma-tok-3",
    }
    cfg = HealthConfig.load(path, env=env)
    assert cfg.postgres is not None and cfg.postgres.dsn == DSN and cfg.postgres.timeout == 4
    assert cfg.postgres.connections_degraded_ratio == 0.7
    assert cfg.redis is not None and cfg.redis.timeout == 1.5
    assert cfg.redis.memory_degraded_ratio == 0.5
    assert cfg.chroma is not None and cfg.chroma.path == "/data/chroma" and cfg.chroma.url is None
    assert cfg.chroma.token == "chroma-tok-3"
    assert cfg.backend is not None and cfg.backend.url == "http://api:9000/health"  # env wins
    assert cfg.backend.latency_degraded_ms == 500
    assert cfg.frontend is not None and cfg.frontend.url == "http://frontend:3000/"
    assert set(cfg.endpoints) == {"nginx", "grafana"} and cfg.endpoints["grafana"].timeout == 2
    assert cfg.disk is not None and cfg.disk.paths == ("/", "/var")
    assert cfg.system is None
    assert cfg.backups is not None and dict(cfg.backups.components) == {"postgres": 3600}
    assert cfg.performance_latency_degraded_ms == 800
    assert set(cfg.secrets()) >= {DSN, "pg-pw-1", "redis-pw-2", "chroma-tok-3"}
    # no secret in the repr of the configuration
    for secret in ("pg-pw-1", "redis-pw-2", "chroma-tok-3"):
        assert secret not in repr(cfg)
    names = [c.name for c in checks_from_config(cfg)]
    assert names == [
        "postgres",
        "redis",
        "chroma",
        "backend",
        "frontend",
        "nginx",
        "grafana",
        "disk",
        "backups",
    ]


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "system: false\n")
    cfg = HealthConfig.load(env={ENV_CONFIG: str(path), ENV_DISK_PATHS: f"/tmp:{tmp_path}"})
    assert cfg.system is None
    assert cfg.disk is not None and cfg.disk.paths == ("/tmp", str(tmp_path))


def test_chroma_url_from_environment_replaces_the_file_path(tmp_path: Path) -> None:
    path = write(tmp_path, "chroma: {path: /data/chroma}\n")
    cfg = HealthConfig.load(path, env={ENV_CHROMA_URL: "http://chroma:8000/"})
    assert cfg.chroma is not None and cfg.chroma.url == "http://chroma:8000"
    assert cfg.chroma.path is None


@pytest.mark.parametrize(
    ("yaml_text", "env", "message"),
    [
        (
            "postgres: {dsn: 'postgresql://x'}\n",
            {},
            "postgres.dsn: secrets come only from the environment",
        ),
        ("redis: {password: x}\n", {}, "redis.password: secrets come only from the environment"),
        ("backend: {url: 'http://u:pw@h/health'}\n", {}, "backend.url: a URL with a password"),
        (
            "postgres: {timeout: 5}\n",
            {},
            f"postgres: the config file enables it but {ENV_POSTGRES_DSN}",
        ),
        ("redis: {}\n", {}, f"redis: the config file enables it but {ENV_REDIS_URL}"),
        ("postgres: {timout: 5}\n", {ENV_POSTGRES_DSN: DSN}, "unknown setting postgres.timout"),
        ("nonsense: 1\n", {}, "unknown setting nonsense"),
        (
            "postgres: {timeout: -1}\n",
            {ENV_POSTGRES_DSN: DSN},
            "postgres.timeout: must be greater than 0",
        ),
        (
            "postgres: {timeout: soon}\n",
            {ENV_POSTGRES_DSN: DSN},
            "postgres.timeout: must be a number",
        ),
        (
            "",
            {"SCHOLAR_OPS_HEALTH_BACKEND_TIMEOUT": "x", ENV_BACKEND_URL: "http://b/"},
            "SCHOLAR_OPS_HEALTH_BACKEND_TIMEOUT: must be a number",
        ),
        ("disk: {degraded_ratio: 1.5}\n", {}, "disk.degraded_ratio: must be a ratio"),
        ("disk: {degraded_ratio: 0.9, unhealthy_ratio: 0.8}\n", {}, "disk.unhealthy_ratio (0.8)"),
        ("chroma: {path: /a, url: 'http://c:8000'}\n", {}, "chroma: set either path"),
        ("", {ENV_CHROMA_PATH: "/a", ENV_CHROMA_URL: "http://c"}, "are both set"),
        ("", {ENV_BACKEND_URL: "backend:8000"}, f"{ENV_BACKEND_URL}: must be an http://"),
        ("", {ENV_REDIS_URL: "http://cache"}, f"{ENV_REDIS_URL}: must be a redis://"),
        ("endpoints: {Bad Name: 'http://x/'}\n", {}, "endpoints.Bad Name: a check name"),
        ("endpoints: {postgres: 'http://x/'}\n", {}, "is a built-in check's name"),
        ("endpoints: {nginx: {timeout: 2}}\n", {}, "endpoints.nginx: neither endpoints.nginx.url"),
        ("backups: {max_age_seconds: 60}\n", {}, "backups: neither backups.status_file"),
        ("- a list\n", {}, "must hold a mapping at the top"),
        ("postgres: [1]\n", {}, "postgres: must be a mapping or false"),
        ("system: {enabled: maybe}\n", {}, "system.enabled: must be true or false"),
    ],
)
def test_errors_name_the_setting(
    tmp_path: Path, yaml_text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(HealthConfigError) as info:
        HealthConfig.load(path, env=env)
    assert message in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_bad_dsn_is_named_without_its_value() -> None:
    with pytest.raises(HealthConfigError) as info:
        HealthConfig.load(env={ENV_POSTGRES_DSN: "host=db password=hunter2 nonsense"})
    assert ENV_POSTGRES_DSN in str(info.value)
    assert "hunter2" not in str(info.value)


def test_missing_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(HealthConfigError, match="cannot read the health config file"):
        HealthConfig.load(tmp_path / "missing.yml", env={})
    with pytest.raises(HealthConfigError, match="not valid YAML"):
        HealthConfig.load(write(tmp_path, "a: [1,\n"), env={})


def test_sections_can_be_switched_off(tmp_path: Path) -> None:
    path = write(tmp_path, "postgres: {enabled: false}\ndisk: false\nsystem: {enabled: false}\n")
    cfg = HealthConfig.load(path, env={ENV_POSTGRES_DSN: DSN})
    assert cfg.postgres is None and cfg.disk is None and cfg.system is None
    assert checks_from_config(cfg) == []


def test_no_secret_in_reprs_or_validation_errors() -> None:
    env = {
        ENV_POSTGRES_DSN: DSN,
        ENV_CHROMA_URL: "http://chroma:cr-pw-4@chroma:8000/",
        ENV_CHROMA_TOKEN: "chroma-tok-3",
        ENV_BACKEND_URL: "http://health:be-pw-5@backend:8000/health?token=be-tok-6",
    }
    cfg = HealthConfig.load(env=env)
    assert cfg.chroma is not None and cfg.chroma.url == "http://chroma:cr-pw-4@chroma:8000"
    for text in (repr(cfg), str(cfg)):
        for secret in ("pg-pw-1", "cr-pw-4", "chroma-tok-3", "be-pw-5", "be-tok-6"):
            assert secret not in text
    assert "http://chroma:8000" in repr(cfg.chroma)
    # built directly, a settings model validates too, and its error hides the input
    with pytest.raises(ValidationError) as info:
        PostgresSettings(dsn="host=db password=hunter2 nonsense")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValidationError) as info:
        PostgresSettings(dsn=DSN, timeout=0)
    assert "pg-pw-1" not in str(info.value)


@pytest.mark.parametrize(
    ("yaml_text", "env", "message"),
    [
        ("performance: {latency_degraded_ms: true}\n", {}, "must be a number, not True"),
        ("disk: {timeout: .inf}\n", {}, "disk.timeout: must be a finite number"),
        ("system: {memory_unhealthy_ratio: 0}\n", {}, "must be a ratio in (0, 1], not 0"),
        ("", {"SCHOLAR_OPS_HEALTH_DISK_TIMEOUT": "-2"}, "SCHOLAR_OPS_HEALTH_DISK_TIMEOUT: must be"),
        ("disk: {paths: 5}\n", {}, "disk.paths: must be a list of paths"),
        ("", {ENV_DISK_PATHS: ":"}, f"{ENV_DISK_PATHS}: no path given"),
        (
            "backups: {status_file: /s.json, components: {pg: -1}}\n",
            {},
            "backups.components.pg: must be greater than 0, not -1",
        ),
        (
            "system: {memory_degraded_ratio: 0.9, memory_unhealthy_ratio: 0.8}\n",
            {},
            "system.memory_unhealthy_ratio (0.8) must not be below system.memory_degraded_ratio",
        ),
        (
            "chroma: {url: 'http://c:8000'}\n",
            {ENV_CHROMA_URL: "ftp://c"},
            f"{ENV_CHROMA_URL}: must be an http://",
        ),
        (
            "endpoints: {nginx: {url: 'http://n/', latency_degraded_ms: 0}}\n",
            {},
            "endpoints.nginx.latency_degraded_ms: must be greater than 0",
        ),
    ],
)
def test_value_errors_are_one_line_naming_the_source(
    tmp_path: Path, yaml_text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(HealthConfigError) as info:
        HealthConfig.load(path, env=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
