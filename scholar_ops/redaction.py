"""Showing a URL safely: what every log line, error message, report and metric uses."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` without its user, password, query and fragment (``scheme://host:port/path``).

    A bare ``host:port`` is read as http. Whatever cannot be parsed is ``<invalid url>``,
    never the text itself (it may hold a password)."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port is not None else "")
    except ValueError:
        return "<invalid url>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
