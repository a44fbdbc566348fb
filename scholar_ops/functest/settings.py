"""Pieces of the test plan that every suite shares (the plan itself is in config.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A plan section: unknown keys are an error (a typo must not silently drop a check)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteSettings(Strict):
    """What every suite section has. ``default_timeout`` differs by suite type."""

    default_timeout: ClassVar[float] = 300.0

    enabled: bool = True
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="Per-suite limit (default by suite type)."
    )

    def timeout(self) -> float:
        return self.timeout_seconds or self.default_timeout


class RequestSpec(Strict):
    """One HTTP request. Strings in ``json``/``params``/``path`` may use ``{prefix}``
    (the run's test prefix) and ``{username}`` (the test user)."""

    method: str = "GET"
    path: str
    params: dict[str, Any] | None = None
    json_body: Any = Field(default=None, alias="json")
    headers: dict[str, str] | None = None
    auth: bool = Field(default=True, description="Send the test user's token.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def fill(value: Any, **names: str) -> Any:
    """``value`` with ``{name}`` placeholders in its strings replaced (recursively)."""
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: fill(v, **names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, **names) for v in value]
    return value


class LoginSettings(Strict):
    path: str = "/api/auth/login"
    username_field: str = "username"
    password_field: str = "password"
    token_path: str = Field(default="$.access_token", description="JSON path of the token.")


class RegisterSettings(Strict):
    path: str = "/api/auth/register"


class AuthSettings(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    login: LoginSettings = Field(default_factory=LoginSettings)
    #: create the test user when login is refused (the key ``register`` in the plan)
    signup: RegisterSettings | None = Field(default=None, alias="register")
    header: str = "Authorization"
    scheme: str = "Bearer"
