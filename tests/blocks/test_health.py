"""blocks/health.py: the health service's tokens from Prefect Secret blocks."""

from __future__ import annotations

import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr

from blocks.health import load_health_access, main
from scholar_ops.monitoring.health.auth import Role
from scholar_ops.vault.errors import ConfigError

READ = "0123456789012345678901"  # digits: Secret.get() would JSON-decode it to an int
OPERATOR = "operator-token-from-a-block"


def test_tokens_from_secret_blocks(prefect_harness) -> None:
    Secret(value=SecretStr(READ + ",second-read-token-abc")).save("so-health-read", overwrite=True)
    Secret(value=SecretStr(OPERATOR)).save("so-health-operator", overwrite=True)
    access = load_health_access("so-health-read", "so-health-operator")
    assert access.role_of(READ) is Role.READ
    assert access.role_of("second-read-token-abc") is Role.READ
    assert access.role_of(OPERATOR) is Role.OPERATOR
    assert load_health_access("so-health-read").role_of(OPERATOR) is None


def test_bad_or_missing_blocks_are_named_not_shown(
    prefect_harness, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="no-such-health-block"):
        load_health_access("no-such-health-block")
    Secret(value=SecretStr("short-one")).save("so-health-short", overwrite=True)
    with pytest.raises(ConfigError, match="so-health-short") as e:
        load_health_access("so-health-short")
    assert "short-one" not in str(e.value)
    assert main(["--token-block", "so-health-short", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "so-health-short" in err and "short-one" not in err
