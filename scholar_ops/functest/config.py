"""The test plan: what to test and how, read from YAML (``load_plan``) or a block.

A plan names secrets and data stores; it never holds them. ``credentials`` names a
Secret block (JSON ``{"username": ..., "password": ...}``) or environment variables;
``stores`` name target blocks (``block:``), environment variables or plain locations.
A plan file may use ``${NAME}`` / ``${NAME:-default}`` in its values (from the
environment). docs/testing.md documents every field with a complete example.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from scholar_ops.functest.errors import PlanError
from scholar_ops.functest.settings import AuthSettings, Strict
from scholar_ops.functest.suites import SUITE_NAMES
from scholar_ops.functest.suites.api import Settings as ApiSettings
from scholar_ops.functest.suites.database import Settings as DatabaseSettings
from scholar_ops.functest.suites.integration import Settings as IntegrationSettings
from scholar_ops.functest.suites.performance import Settings as PerformanceSettings
from scholar_ops.functest.suites.pytest_files import Settings as PytestSettings
from scholar_ops.functest.suites.ui import Settings as UiSettings


class TargetSettings(Strict):
    name: str = Field(default="aischolar", min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    base_url: str = Field(pattern=r"^https?://")
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    #: a path that answers when the service is up (not necessarily healthy)
    probe_path: str = "/"


class CredentialSettings(Strict):
    """Where the test user's name and password are: a Secret block, or two variables."""

    secret_block: str | None = None
    username_env: str | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CredentialSettings:
        env = self.username_env is not None or self.password_env is not None
        if self.secret_block is not None and env:
            raise ValueError("name either secret_block or username_env/password_env, not both")
        if env and (self.username_env is None or self.password_env is None):
            raise ValueError("username_env and password_env go together")
        if self.secret_block is None and not env:
            raise ValueError("name secret_block, or username_env and password_env")
        return self


class StoreRef(Strict):
    """A data store: a target block by name, an environment variable holding its
    URL/DSN, or (for Chroma, not secret) a path or URL."""

    block: str | None = None
    env: str | None = None
    path: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StoreRef:
        given = [k for k in ("block", "env", "path", "url") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("name exactly one of block, env, path, url")
        return self


class StoreSettings(Strict):
    postgres: StoreRef | None = None
    redis: StoreRef | None = None
    chroma: StoreRef | None = None


class RetrySettings(Strict):
    """Retries of a suite whose service is unavailable (never of a failed assertion)."""

    attempts: int = Field(default=3, ge=1, le=20)
    initial_delay_seconds: float = Field(default=1.0, ge=0)
    max_delay_seconds: float = Field(default=30.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)

    def delays(self) -> list[float]:
        """The waits between attempts: exponential, capped."""
        out, delay = [], self.initial_delay_seconds
        for _ in range(self.attempts - 1):
            out.append(min(delay, self.max_delay_seconds))
            delay *= self.multiplier
        return out


class SmokeSettings(Strict):
    suites: list[str] = Field(default_factory=lambda: ["api"])


class SuitesSettings(Strict):
    api: ApiSettings | None = None
    database: DatabaseSettings | None = None
    integration: IntegrationSettings | None = None
    performance: PerformanceSettings | None = None
    ui: UiSettings | None = None
    pytest: PytestSettings | None = None


class TestPlan(Strict):
    __test__ = False

    target: TargetSettings
    credentials: CredentialSettings | None = None
    auth: AuthSettings = Field(default_factory=AuthSettings)
    stores: StoreSettings = Field(default_factory=StoreSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    smoke: SmokeSettings = Field(default_factory=SmokeSettings)
    suites: SuitesSettings
    #: records the suites create start with this (default: "sotest-")
    test_prefix: str = Field(default="sotest-", min_length=3, pattern=r"^[a-z][a-z0-9_-]*$")
    #: weights of the suites in system_health_score (default: see report.DEFAULT_WEIGHTS)
    weights: dict[str, float] | None = None
    #: where the performance baseline of this target is kept (default: the state dir)
    baseline_path: str | None = None

    @model_validator(mode="after")
    def _known_smoke_suites(self) -> TestPlan:
        for name in self.smoke.suites:
            if name not in SUITE_NAMES:
                raise ValueError(f"smoke.suites: unknown suite {name!r} (one of {SUITE_NAMES})")
        if self.weights:
            for name in self.weights:
                if name not in SUITE_NAMES:
                    raise ValueError(f"weights: unknown suite {name!r}")
        return self

    def configured(self) -> list[str]:
        """The suites this plan has and enables, in report order."""
        return [n for n in SUITE_NAMES if (s := getattr(self.suites, n)) is not None and s.enabled]

    def section(self, name: str) -> Any:
        return getattr(self.suites, name)

    def select(self, names: list[str] | None, *, smoke: bool = False) -> list[str]:
        """The suites to run: ``names`` (checked against the plan), else the smoke set or
        every configured one. Raises PlanError naming an unknown or missing suite."""
        configured = self.configured()
        wanted = names if names else (self.smoke.suites if smoke else configured)
        for name in wanted:
            if name not in SUITE_NAMES:
                raise PlanError(f"unknown suite {name!r}: choose from {', '.join(SUITE_NAMES)}")
            if name not in configured:
                raise PlanError(f"suite {name!r} is not configured (or disabled) in the plan")
        return [n for n in SUITE_NAMES if n in wanted]


def _first_error(e: ValidationError, source: str) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{source}: {where}: {msg}{more}"


def parse_plan(doc: Any, source: str = "test plan") -> TestPlan:
    """A validated plan from a parsed document; PlanError names the field at fault."""
    if not isinstance(doc, dict):
        raise PlanError(f"{source}: expected a mapping with target: and suites:")
    try:
        return TestPlan.model_validate(doc)
    except ValidationError as e:
        raise PlanError(_first_error(e, source)) from None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_vars(value: Any, source: str = "test plan") -> Any:
    """``${NAME}`` and ``${NAME:-default}`` in the plan's strings, from the environment
    (so one plan file serves several deployments). A variable that is not set and has
    no default is a PlanError naming it."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            got = os.environ.get(name)
            if got is None or (got == "" and default is not None):
                if default is None:
                    raise PlanError(f"{source}: the environment variable {name} is not set")
                return default
            return got

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_vars(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, source) for v in value]
    return value


def load_plan(path: str | Path) -> TestPlan:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"test plan {path} does not exist: pass --config FILE") from None
    except OSError as e:
        raise PlanError(f"test plan {path} cannot be read: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PlanError(f"test plan {path}{where} is not valid YAML") from None
    return parse_plan(expand_vars(doc, str(path)), str(path))
