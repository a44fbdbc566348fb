"""The health service with its tokens from Prefect Secret blocks instead of the environment.

    python -m blocks.health --token-block NAME [--operator-token-block NAME] [service options]

The service's own options follow (``--host``, ``--port``, ``--config``...; see
scholar_ops/monitoring/health/service.py). Each block holds one token, or several
separated by commas while one is rotated; the blocks are read once, at start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from blocks.secrets import read_string_secret
from scholar_ops.monitoring.health.auth import AccessConfigError, AccessControl
from scholar_ops.vault.errors import ConfigError

OWNER = "the health service"


def _tokens(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


def load_health_access(read_block: str, operator_block: str | None = None) -> AccessControl:
    """The read token(s) of the Secret block ``read_block`` and the operator token(s) of
    ``operator_block``. Raises ConfigError naming the block, never the value."""
    read = _tokens(read_string_secret(read_block, OWNER, "read-only access token"))
    operator: tuple[str, ...] = ()
    if operator_block:
        operator = _tokens(read_string_secret(operator_block, OWNER, "operator access token"))
    try:
        return AccessControl(read=read, operator=operator)
    except AccessConfigError as e:
        blocks = ", ".join(repr(b) for b in (read_block, operator_block) if b)
        raise ConfigError(f"{OWNER}: the Secret block(s) {blocks}: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blocks.health",
        description="the health service, its tokens from Prefect Secret blocks",
    )
    parser.add_argument("--token-block", required=True, help="Secret block: read-only token")
    parser.add_argument("--operator-token-block", default=None, help="Secret block: operator")
    args, rest = parser.parse_known_args(argv)
    from scholar_ops.monitoring.health import service

    try:
        access = load_health_access(args.token_block, args.operator_token_block)
    except ConfigError as e:
        print(f"scholar-ops health: {e}", file=sys.stderr)
        return 2
    return service.main(rest, tokens=access)


if __name__ == "__main__":
    sys.exit(main())
