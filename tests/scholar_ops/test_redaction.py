"""One way to show a URL: no user, password, query or fragment, whatever the caller."""

from __future__ import annotations

import pytest

from scholar_ops.redaction import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h:8/x?token=1#f", "http://h:8/x"),
        ("https://h/", "https://h/"),
        ("https://u:p@gw.example:9091/?x=1", "https://gw.example:9091/"),
        ("http://u:pw@am:9093/a", "http://am:9093/a"),
        ("pushgateway:9091", "http://pushgateway:9091"),
        ("postgresql://app:s3cret@[::1]:5432/db", "postgresql://[::1]:5432/db"),
        ("http://h:notaport/", "<invalid url>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url) and "pw" not in redact_url(url).split("//")[-1]
