"""Master keys from Prefect Secret blocks.

``Secret.get()`` JSON-decodes string values (a hex key made only of digits
would come back as an int and lose its leading zeros), so the raw secret value
is read instead.
"""

from __future__ import annotations

from typing import cast

from prefect.blocks.system import Secret

from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import ConfigError


def master_key_from_secret(secret: Secret) -> MasterKey:  # type: ignore[type-arg,unused-ignore]
    raw = secret.value.get_secret_value()
    if not isinstance(raw, str):
        raise ConfigError(
            "the master key Secret block must hold a string (e.g. 64 hex digits), "
            f"not a {type(raw).__name__}"
        )
    return MasterKey.from_string(raw)


def load_master_key(block_name: str) -> MasterKey:
    """Load the Secret block ``block_name`` and return its value as a master key."""
    try:
        secret = cast("Secret[str]", Secret.load(block_name, _sync=True))  # type: ignore[call-arg]
    except ValueError as e:
        raise ConfigError(
            f"cannot load the Secret block {block_name!r} holding the master key: {e}. "
            "Create it with `scholar-ops setup` or in the Prefect UI (Blocks > Secret)"
        ) from None
    return master_key_from_secret(secret)


def read_string_secret(block_name: str, owner: str, purpose: str) -> str:
    """The raw string value of the Secret block ``block_name`` (never JSON-decoded).

    ``owner`` and ``purpose`` name the block that points at it and what the value is
    for, so that a missing or malformed Secret block gives an actionable error.
    """
    try:
        secret = cast("Secret[str]", Secret.load(block_name, _sync=True))  # type: ignore[call-arg]
    except ValueError as e:
        raise ConfigError(
            f"{owner}: cannot load the Secret block {block_name!r} holding the {purpose}: {e}"
        ) from None
    # Secret.get() would JSON-decode the value ("0123" -> 123): read it raw.
    raw = secret.value.get_secret_value()
    if not isinstance(raw, str):
        raise ConfigError(
            f"{owner}: the Secret block {block_name!r} must hold a string {purpose}, "
            f"not a {type(raw).__name__}"
        )
    return raw
