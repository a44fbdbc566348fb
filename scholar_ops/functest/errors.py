"""What a suite raises besides a failed test (which is a result, not an exception)."""

from __future__ import annotations

from scholar_ops.vault.errors import ConfigError, VaultError


class FunctionalTestError(VaultError):
    """Root of the functionality-testing errors."""


class PlanError(FunctionalTestError, ConfigError):
    """The test plan (configuration) is invalid: one line naming the field and the fix."""


class ServiceUnavailable(FunctionalTestError):
    """The service a suite tests cannot be reached (connection refused, DNS, timeout,
    502/503/504 before any test ran). Retried with exponential backoff; after the last
    attempt the suite is reported ``unavailable``, never ``failed``.

    A failed assertion is a TestResult with status ``failed`` and is never retried.
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} is unavailable: {reason}")
        self.what = what
        self.reason = reason
