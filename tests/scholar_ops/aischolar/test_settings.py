"""Settings from AISCHOLAR_* variables: one clear line naming what is missing or wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scholar_ops.aischolar.settings import Settings, SettingsError

BASE = {
    "AISCHOLAR_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/db",
    "AISCHOLAR_REDIS_URL": "redis://127.0.0.1:1/0",
    "AISCHOLAR_CHROMA": "/tmp/chroma",
}


def test_defaults_and_overrides():
    s = Settings.from_env(BASE)
    assert (s.rate_limit_per_minute, s.session_ttl_seconds, s.admin_token) == (60, 3600, "")
    s = Settings.from_env(
        {**BASE, "AISCHOLAR_RATE_LIMIT_PER_MINUTE": "3", "AISCHOLAR_SESSION_TTL_SECONDS": "90"}
    )
    assert (s.rate_limit_per_minute, s.session_ttl_seconds) == (3, 90)
    assert "secret" not in repr(s)  # the database URL may carry a password


@pytest.mark.parametrize("missing", sorted(BASE))
def test_a_missing_variable_is_named(missing: str):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=f"^{missing} is not set"):
        Settings.from_env(env)


@pytest.mark.parametrize("value", ["many", "0", "-1"])
def test_a_bad_number_is_named(value: str):
    with pytest.raises(SettingsError, match="AISCHOLAR_RATE_LIMIT_PER_MINUTE"):
        Settings.from_env({**BASE, "AISCHOLAR_RATE_LIMIT_PER_MINUTE": value})


def test_the_command_stops_with_one_line_and_exit_2():
    env = {"PATH": "/usr/bin:/bin", "AISCHOLAR_DATABASE_URL": "postgresql://x/y"}
    r = subprocess.run(
        [sys.executable, "-m", "scholar_ops.aischolar", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "aischolar: AISCHOLAR_REDIS_URL is not set: see docs/aischolar.md"
    ]
