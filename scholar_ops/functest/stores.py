"""Opening the target's data stores for the database suite, and saying where they are
without their secrets.

PostgreSQL through psycopg (and an SQLAlchemy URL of the same DSN for Great
Expectations), Redis through redis-py, Chroma through chromadb (imported here, lazily:
a directory opens an embedded ``PersistentClient``, an http(s) URL an ``HttpClient``).
Each ``open_*`` raises ServiceUnavailable when the store cannot be reached.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
from pydantic import SecretStr

from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.redaction import redact_url

_URL_USERINFO = re.compile(r"([A-Za-z][\w+.-]*://)[^/\s@]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class Scrubber:
    """Removes a store's secrets from a message: the DSN, its SQLAlchemy form, its
    password, and any ``scheme://user:password@`` or ``password=...`` that a driver or
    library might print."""

    def __init__(self, *secrets: str | None) -> None:
        values: set[str] = set()
        for s in secrets:
            if not s:
                continue
            values.add(s)
            password = _password_of(s)
            if password and len(password) >= 3:
                values.add(password)
        # longest first, so a DSN goes before the password inside it
        self.secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        text = _URL_USERINFO.sub(r"\1***@", text)
        return _KEYWORD_PASSWORD.sub(r"\1***", text)


def _password_of(dsn: str) -> str | None:
    try:
        if "://" in dsn:
            return urlsplit(dsn).password
        return psycopg.conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except Exception:
        return None


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0].strip() if text and text[0].strip() else type(e).__name__


# -- PostgreSQL ------------------------------------------------------------------------------


def libpq_dsn(dsn: str) -> str:
    """``dsn`` as libpq reads it: ``postgresql+psycopg://`` (an SQLAlchemy URL) becomes
    ``postgresql://``; keyword DSNs pass unchanged."""
    m = re.match(r"^(postgres(?:ql)?)\+[\w]+://", dsn)
    if m:
        return "postgresql://" + dsn[m.end() :]
    return dsn


def sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg://...``) of a libpq URL or keyword DSN."""
    from sqlalchemy.engine import URL

    params: dict[str, Any] = dict(psycopg.conninfo.conninfo_to_dict(libpq_dsn(dsn)))
    host = params.pop("host", None)
    port = params.pop("port", None)
    query: dict[str, str] = {k: str(v) for k, v in params.items() if v is not None}
    for k in ("user", "password", "dbname"):
        query.pop(k, None)
    if host and str(host).startswith("/"):  # a socket directory
        query["host"] = str(host)
        host = None
    url = URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(port) if port else None,
        database=params.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


def where_postgres(dsn: str) -> str:
    dsn = libpq_dsn(dsn)
    if "://" in dsn:
        return f"PostgreSQL at {redact_url(dsn)}"
    try:
        p = psycopg.conninfo.conninfo_to_dict(dsn)
        return f"PostgreSQL at {p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"
    except Exception:
        return "PostgreSQL"


def open_postgres(
    dsn: SecretStr, *, timeout: float, statement_timeout_ms: int, scrub: Scrubber
) -> psycopg.Connection[Any]:
    """An autocommit connection whose transactions are read-only and whose statements
    stop after ``statement_timeout_ms``. ServiceUnavailable when it cannot connect."""
    raw = libpq_dsn(dsn.get_secret_value())
    try:
        conn = psycopg.connect(
            raw,
            autocommit=True,
            connect_timeout=max(1, int(timeout)),
            options=f"-c statement_timeout={statement_timeout_ms} "
            "-c default_transaction_read_only=on",
            application_name="scholar-ops functest",
        )
    except psycopg.Error as e:
        raise ServiceUnavailable(where_postgres(raw), scrub(first_line(e))) from None
    return conn


# -- Redis -----------------------------------------------------------------------------------


def open_redis(url: SecretStr, *, timeout: float, scrub: Scrubber) -> redis.Redis:
    raw = url.get_secret_value()
    where = f"Redis at {redact_url(raw)}"
    try:
        client = redis.Redis.from_url(
            raw, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False
        )
        client.ping()
    except (redis.RedisError, ValueError, OSError) as e:
        raise ServiceUnavailable(where, scrub(first_line(e))) from None
    return client


# -- Chroma ----------------------------------------------------------------------------------


def where_chroma(location: str) -> str:
    if re.match(r"^https?://", location):
        return f"Chroma at {redact_url(location)}"
    return f"Chroma at {location}"


def open_chroma(location: str, *, scrub: Scrubber) -> Any:
    """A chromadb client: an ``HttpClient`` for an http(s) URL (checked with a heartbeat),
    else a ``PersistentClient`` on the directory (which must exist: the suite never
    creates a store)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    where = where_chroma(location)
    if re.match(r"^https?://", location):
        parts = urlsplit(location)
        try:
            client = chromadb.HttpClient(
                host=parts.hostname or "localhost",
                port=parts.port or (443 if parts.scheme == "https" else 80),
                ssl=parts.scheme == "https",
                settings=settings,
            )
            client.heartbeat()
        except Exception as e:
            raise ServiceUnavailable(where, scrub(first_line(e))) from None
        return client
    path = Path(location).expanduser()
    if not path.is_dir():
        raise ServiceUnavailable(where, "the directory does not exist")
    try:
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as e:
        raise ServiceUnavailable(where, scrub(first_line(e))) from None
