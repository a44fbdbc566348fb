"""Where a Chroma store lives: an embedded persistent directory or a server.

Secrets (an auth token, custom headers) never appear in ``repr`` or
``describe()``: both are safe for logs, snapshot details and artifacts.

An embedded directory is opened in this process: Chroma does not support one
directory open in two processes at once, so a directory the application has
open is backed up through a server (``chroma run --path DIR``), or physically
while the application is stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scholar_ops.vault.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"


@dataclass(frozen=True)
class ChromaSource:
    """Either ``path`` (an embedded ``PersistentClient`` directory) or ``host`` (a server).

    ``token`` is sent as ``Authorization: Bearer <token>`` (Chroma's token auth), or
    as the raw value of ``token_header`` when that is another header (e.g.
    ``X-Chroma-Token``). ``headers`` go with every request to a server.
    """

    path: str | None = None
    host: str | None = None
    port: int = 8000
    ssl: bool = False
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    token: str | None = field(default=None, repr=False, compare=False)
    token_header: str = "Authorization"
    tenant: str = DEFAULT_TENANT
    database: str = DEFAULT_DATABASE
    telemetry: bool = False  # Chroma's anonymized telemetry (there may be no internet)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.host is None):
            raise ConfigError(
                "a Chroma source is either an embedded directory (path) or a server (host), "
                "exactly one of the two"
            )
        if self.host is not None and not 1 <= self.port <= 65535:
            raise ConfigError(f"Chroma server port must be in 1..65535, not {self.port}")

    @classmethod
    def embedded(cls, path: str | Path, **kw: Any) -> ChromaSource:
        return cls(path=str(Path(path)), **kw)

    @classmethod
    def server(
        cls,
        host: str,
        port: int = 8000,
        *,
        ssl: bool = False,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> ChromaSource:
        return cls(host=host, port=port, ssl=ssl, token=token, headers=dict(headers or {}), **kw)

    @property
    def is_embedded(self) -> bool:
        return self.path is not None

    def __repr__(self) -> str:
        return f"ChromaSource({self.describe()})"

    def describe(self) -> str:
        """Where it is, without secrets: safe for logs and labels."""
        scope = (
            ""
            if (self.tenant, self.database) == (DEFAULT_TENANT, DEFAULT_DATABASE)
            else f" ({self.tenant}/{self.database})"
        )
        if self.path is not None:
            return f"chroma:{self.path}{scope}"
        scheme = "https" if self.ssl else "http"
        return f"chroma {scheme}://{self.host}:{self.port}{scope}"

    def label(self) -> str:
        """A short target name for snapshots: the directory's name, or host:port."""
        if self.path is not None:
            return Path(self.path).name or self.path
        return f"{self.host}:{self.port}"

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token is not None:
            if self.token_header.lower() == "authorization":
                headers["Authorization"] = f"Bearer {self.token}"
            else:
                headers[self.token_header] = self.token
        return headers

    def client(self) -> ClientAPI:
        """A chromadb client for this store (connection errors: transient SourceError)."""
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=self.telemetry)
        if self.path is not None:
            try:
                return chromadb.PersistentClient(
                    path=self.path, settings=settings, tenant=self.tenant, database=self.database
                )
            except ValueError as e:
                if "different settings" not in str(e):
                    raise SourceError(f"cannot open {self.describe()}: {e}") from e
            # This process already holds a client on that directory, made with Chroma's
            # default settings: share it (Chroma allows one set of settings per path).
            return chromadb.PersistentClient(
                path=self.path, tenant=self.tenant, database=self.database
            )
        try:
            return chromadb.HttpClient(
                host=self.host or "localhost",
                port=self.port,
                ssl=self.ssl,
                headers=self.request_headers(),
                settings=settings,
                tenant=self.tenant,
                database=self.database,
            )
        except ValueError as e:  # "Could not connect to a Chroma server..."
            raise SourceError(f"cannot connect to {self.describe()}: {e}", transient=True) from e
        except Exception as e:
            if _is_transport_error(e):
                raise SourceError(
                    f"cannot connect to {self.describe()}: {e}", transient=True
                ) from e
            raise SourceError(f"cannot open {self.describe()}: {e}") from e


def _is_transport_error(e: BaseException) -> bool:
    """A network-level failure (server down, restarting, timing out): worth retrying."""
    import httpx

    return isinstance(e, httpx.TransportError | ConnectionError | TimeoutError)


def release_embedded(path: str | Path) -> None:
    """Stop the in-process Chroma system opened on the embedded directory ``path`` (a
    ``PersistentClient`` is never closed otherwise), so that a long-lived worker keeps
    none per restore, drill or physical backup, and the directory is left alone."""
    import logging
    import os

    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        wanted = os.path.abspath(path)
        systems = SharedSystemClient._identifier_to_system
        for ident in [k for k in systems if os.path.abspath(k) == wanted]:
            system = systems.pop(ident)
            SharedSystemClient._identifier_to_refcount.pop(ident, None)
            system.stop()
    except Exception as e:  # private API of chromadb: best effort only
        logging.getLogger("scholar_ops.sources.chroma").debug(
            "could not release the Chroma client on %s: %s", path, e
        )
