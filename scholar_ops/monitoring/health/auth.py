"""Who may read the health service: bearer tokens and two roles.

- **read**: the detailed reports (``/health/*``), ``/metrics`` and the catalog (``/``);
- **operator**: everything a reader may, plus any action endpoint (the service has
  none today: restores, prunes and key rotations are Prefect deployments, behind
  Prefect's own access control). An operator token is accepted wherever a read token is.

Tokens come from the environment, or from files it names (a Docker secret, the
stack's ``secrets/`` directory), or from a Prefect Secret block through the caller
(``AccessControl(read=..., operator=...)``; the engine imports no Prefect):

======================================  ==============================================
``SCHOLAR_OPS_HEALTH_TOKEN``            the read-only token
``SCHOLAR_OPS_HEALTH_TOKEN_FILE``       a file holding it (one line)
``SCHOLAR_OPS_HEALTH_OPERATOR_TOKEN``   the operator token
``..._OPERATOR_TOKEN_FILE``             a file holding it
======================================  ==============================================

Each variable may hold several tokens separated by commas (while rotating one). A
token has at least :data:`MIN_TOKEN_LENGTH` characters. Requests carry
``Authorization: Bearer <token>``; each presented token is compared with every
configured one in constant time (``hmac.compare_digest`` of SHA-256 digests, no early
exit). A missing or unknown token is 401 with ``WWW-Authenticate: Bearer``; a known
token without the role an endpoint needs is 403. No message and no log line holds a
token.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request

from scholar_ops.vault.errors import ConfigError

ENV_TOKEN = "SCHOLAR_OPS_HEALTH_TOKEN"
ENV_TOKEN_FILE = "SCHOLAR_OPS_HEALTH_TOKEN_FILE"
ENV_OPERATOR_TOKEN = "SCHOLAR_OPS_HEALTH_OPERATOR_TOKEN"
ENV_OPERATOR_TOKEN_FILE = "SCHOLAR_OPS_HEALTH_OPERATOR_TOKEN_FILE"
MIN_TOKEN_LENGTH = 16
REALM = "scholar-ops health"


class AccessConfigError(ConfigError):
    """A bad token setting; the message names the variable, never the value."""


class Role(enum.IntEnum):
    """Ordered: a role may do what every lower one may."""

    READ = 1
    OPERATOR = 2


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class AccessControl:
    """The configured tokens and their roles (digests only are kept)."""

    read: tuple[str, ...] = field(default=(), repr=False)
    operator: tuple[str, ...] = field(default=(), repr=False)
    _digests: tuple[tuple[bytes, Role], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for role, tokens in (("read", self.read), ("operator", self.operator)):
            for token in tokens:
                if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
                    raise AccessConfigError(
                        f"a {role} token must have at least {MIN_TOKEN_LENGTH} characters and "
                        "no surrounding spaces"
                    )
        if set(self.read) & set(self.operator):
            raise AccessConfigError("the same token is given for the read and operator roles")
        digests = tuple((_digest(t), Role.READ) for t in self.read) + tuple(
            (_digest(t), Role.OPERATOR) for t in self.operator
        )
        object.__setattr__(self, "_digests", digests)

    def __repr__(self) -> str:
        return f"AccessControl(read={len(self.read)} token(s), operator={len(self.operator)})"

    @property
    def enabled(self) -> bool:
        return bool(self.read or self.operator)

    def role_of(self, token: str) -> Role | None:
        """The role of ``token`` (None: unknown), compared with every token in constant time."""
        presented = _digest(token)
        found: Role | None = None
        for digest, role in self._digests:
            if hmac.compare_digest(presented, digest) and (found is None or role > found):
                found = role
        return found

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AccessControl:
        """From the variables above (default: ``os.environ``)."""
        env = os.environ if env is None else env
        read = _tokens(env, ENV_TOKEN, ENV_TOKEN_FILE)
        operator = _tokens(env, ENV_OPERATOR_TOKEN, ENV_OPERATOR_TOKEN_FILE)
        try:
            return cls(read=read, operator=operator)
        except AccessConfigError as e:
            raise AccessConfigError(
                f"{ENV_TOKEN}/{ENV_OPERATOR_TOKEN} (or their _FILE variants): {e}"
            ) from None

    def require(self, role: Role) -> Callable[[Request], Role]:
        """A FastAPI dependency: the caller's role, or 401/403."""

        def dependency(request: Request) -> Role:
            token = bearer_token(request.headers.get("authorization"))
            found = None if token is None else self.role_of(token)
            if found is None:
                raise HTTPException(
                    status_code=401,
                    detail="a valid bearer token is required",
                    headers={
                        "WWW-Authenticate": f'Bearer realm="{REALM}"'
                        + ("" if token is None else ', error="invalid_token"')
                    },
                )
            if found < role:
                raise HTTPException(
                    status_code=403, detail=f"this endpoint needs the {role.name.lower()} role"
                )
            return found

        return dependency


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None: absent or malformed)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _split(value: str) -> Iterable[str]:
    return (t.strip() for t in value.split(",") if t.strip())


def _tokens(env: Mapping[str, str], var: str, file_var: str) -> tuple[str, ...]:
    found = list(_split(env.get(var, "")))
    path = env.get(file_var, "").strip()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise AccessConfigError(f"{file_var}: cannot read {path}: {e.strerror}") from None
        from_file = [t for line in text.splitlines() for t in _split(line)]
        if not from_file:
            raise AccessConfigError(f"{file_var}: {path} holds no token")
        found += from_file
    return tuple(dict.fromkeys(found))
