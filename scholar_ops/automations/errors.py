"""The errors the automations package raises on purpose.

All are ``AutomationsError``, a ``ConfigError``: the command line exits with code 2.
"""

from __future__ import annotations

from scholar_ops.vault.errors import ConfigError


class AutomationsError(ConfigError):
    """Base of the errors this package raises on purpose (a bad file, a missing reference)."""


class AutomationFileError(AutomationsError, ValueError):
    """The automations file is invalid; the message names the automation and the field."""


class MissingReferenceError(AutomationsError, LookupError):
    """A Webhook block or deployment an automation names does not exist on the server."""
