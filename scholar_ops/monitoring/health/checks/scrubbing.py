"""Keeping secrets out of what a check reports: ``scrub`` masks them in text, and a
result's error becomes one scrubbed line, its details scrubbed throughout."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from scholar_ops.monitoring.health.checks.result import CheckResult

MAX_ERROR = 240

_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*):[^/@\s]*@")
_URL_USERINFO = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|token)\s*[=:]\s*('[^']*'|\"[^\"]*\"|\S+)")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets, URL passwords and ``password=...`` masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\g<pre>:***@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)


def strip_userinfo(text: str) -> str:
    """``text`` with the ``user[:password]@`` of every URL removed."""
    return _URL_USERINFO.sub(r"\g<pre>", text)


def one_line(text: str, limit: int = MAX_ERROR) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def sanitize(result: CheckResult, secrets: Sequence[str]) -> CheckResult:
    """``result`` with ``secrets`` scrubbed from its details and error, the error one line;
    the details' URLs lose their user and password altogether."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return strip_userinfo(scrub(value, secrets))
        if isinstance(value, Mapping):
            return {scrub(str(k), secrets): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    error = None if result.error is None else one_line(scrub(result.error, secrets))
    return replace(result, details=clean(result.details), error=error)
