"""Logging the test user in: the token the api, integration and performance suites send.

The plan's ``auth`` section says how (a JSON login request and where the token is in the
answer); an optional ``register`` request creates the test user first when login is
refused. The password is taken from the context's credentials and never logged.
"""

from __future__ import annotations

import httpx

from scholar_ops.functest.context import Credentials, SuiteContext, _transport_reason
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.jsonpath import JsonPathError, extract
from scholar_ops.functest.settings import AuthSettings


class AuthError(Exception):
    """The test user could not log in (a failed test, not unavailability)."""


def _body(settings: AuthSettings, creds: Credentials) -> dict[str, str]:
    return {
        settings.login.username_field: creds.username,
        settings.login.password_field: creds.password.get_secret_value(),
    }


def login(ctx: SuiteContext, client: httpx.Client) -> dict[str, str]:
    """The headers that authenticate the test user. Raises ServiceUnavailable when the
    login endpoint cannot be reached, AuthError when it refuses."""
    settings = ctx.auth
    creds = ctx.credentials
    if creds is None:
        raise AuthError("the plan has no credentials for the test user (credentials:)")
    try:
        response = client.post(settings.login.path, json=_body(settings, creds))
        if response.status_code in (401, 403, 404) and settings.signup is not None:
            client.post(settings.signup.path, json=_body(settings, creds))
            response = client.post(settings.login.path, json=_body(settings, creds))
    except httpx.TransportError as e:
        raise ServiceUnavailable(f"login at {ctx.base_url}", _transport_reason(e)) from None
    if response.status_code in (502, 503, 504):
        raise ServiceUnavailable(f"login at {ctx.base_url}", f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise AuthError(
            f"login of test user {creds.username!r} at {settings.login.path} answered "
            f"HTTP {response.status_code}"
        )
    try:
        token = extract(response.json(), settings.login.token_path)
    except (ValueError, JsonPathError) as e:
        raise AuthError(
            f"login answered without a token at {settings.login.token_path}: {e}"
        ) from None
    if not isinstance(token, str) or not token:
        raise AuthError(f"login answered without a token at {settings.login.token_path}")
    value = f"{settings.scheme} {token}" if settings.scheme else token
    return {settings.header: value}
