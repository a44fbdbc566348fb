"""MonitoringSettings: URLs and names are validated; no credentials in the gateway URL."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from blocks.monitoring import MonitoringSettings


def test_defaults_and_intervals():
    s = MonitoringSettings(
        pushgateway_url=" http://pushgateway:9091/ ",
        backup_intervals={"postgres/app": 600, "cache": 120},
        app_endpoints={"backend": "http://backend:8000/health"},
        repository="",
    )
    assert s.pushgateway_url == "http://pushgateway:9091"
    assert s.repository is None and s.push_auth is None
    assert s.expected_interval("postgres", "app") == 600
    assert s.expected_interval("redis", "cache") == 120
    assert s.expected_interval("redis", "other") == 3600


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pushgateway_url": "pushgateway:9091"}, "http:// or https://"),
        ({"pushgateway_url": "http://u:hunter2@gw:9091"}, "must not carry credentials"),
        ({"pushgateway_url": "http://gw:99999"}, "invalid port"),
        ({"app_endpoints": {"the backend": "http://b"}}, "not a short name"),
        ({"app_endpoints": {"backend": "b:8000"}}, "http:// or https://"),
        ({"backup_intervals": {"app": 0}}, "> 0"),
        ({"postgres_targets": ["a", "a"]}, "listed twice"),
        ({"pushgateway_username": "u"}, "both"),
        ({"pushgatway_url": "http://x"}, "did you mean 'pushgateway_url'"),
    ],
)
def test_invalid_settings(fields, message):
    kw = {"pushgateway_url": "http://gw:9091", **fields}
    with pytest.raises(ValidationError, match=message) as info:
        MonitoringSettings(**kw)
    assert "hunter2" not in str(info.value)


def test_basic_auth():
    s = MonitoringSettings(
        pushgateway_url="https://gw",
        pushgateway_username="ops",
        pushgateway_password=SecretStr("s3cr3t-pw"),
    )
    assert s.push_auth == ("ops", "s3cr3t-pw")
    assert "s3cr3t" not in repr(s)
