"""What every verb of the command line shares: names, exit codes, option helpers.

Nothing here imports Prefect: building the parser and the read-only verbs stay fast.
"""

from __future__ import annotations

import argparse
import os
import re
from datetime import datetime
from typing import Any

from blocks.names import (
    DEFAULT_MASTER_KEY_SECRET,
    DEFAULT_MONITORING_BLOCK,
    DEFAULT_REPOSITORY_BLOCK,
)
from blocks.targets import COMPONENT_NAMES
from blocks.targets import COMPONENTS as REGISTRY
from scholar_ops.vault.errors import ConfigError

DEFAULT_REPOSITORY = DEFAULT_REPOSITORY_BLOCK
DEFAULT_MASTER_SECRET = DEFAULT_MASTER_KEY_SECRET
DEFAULT_TARGET = "aischolar-postgres"
DEFAULT_MONITORING = DEFAULT_MONITORING_BLOCK
DEFAULT_REDIS_TARGET = "aischolar-redis"
DEFAULT_CHROMA_TARGET = "aischolar-chroma"
COMPONENTS = COMPONENT_NAMES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DAMAGED, EXIT_LOCKED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def iso_time(value: str) -> datetime:
    """An ISO date/time; without a UTC offset it is local time (snapshot times carry one)."""
    try:
        return datetime.fromisoformat(value).astimezone()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date/time (e.g. 2026-11-24 or 2026-11-24T06:00+00:00)"
        ) from None


_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")


def check_block_name(name: str, option: str) -> str:
    if not _BLOCK_NAME.match(name):
        raise ConfigError(
            f"{option} {name!r}: block names hold only lowercase letters, digits and dashes"
        )
    return name


def make_block(cls: Any, what: str, **fields: Any) -> Any:
    """The block, or a one-line ConfigError naming what is wrong with its fields."""
    from pydantic import ValidationError

    try:
        return cls(**fields)
    except ValidationError as e:
        problems = "; ".join(
            (f"{'.'.join(str(x) for x in err['loc'])}: " if err["loc"] else "")
            + str(err["msg"]).removeprefix("Value error, ")
            for err in e.errors()
        )
        raise ConfigError(f"{what}: {problems}") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def target_options(p: argparse.ArgumentParser) -> None:
    """--postgres/--redis/--chroma/--files NAME (repeatable): target blocks of each component."""
    for c in REGISTRY.values():
        flags = [f"--{c.name}", "--target"] if c.name == "postgres" else [f"--{c.name}"]
        alias = "; --target is the same" if c.name == "postgres" else ""
        p.add_argument(
            *flags,
            dest=c.name,
            action="append",
            metavar="NAME",
            help=f"{c.title} target block (repeatable{alias})",
        )


def chosen_targets(args: argparse.Namespace) -> dict[str, list[str]]:
    """component -> target block names of --postgres/--redis/--chroma/--files (default: the
    PostgreSQL target aischolar-postgres)."""
    chosen = {name: list(getattr(args, name) or []) for name in COMPONENT_NAMES}
    if not any(chosen.values()):
        chosen["postgres"] = [DEFAULT_TARGET]
    return chosen


def flow_parameters(targets: dict[str, list[str]]) -> dict[str, list[str]]:
    """The backup and drill flows' per-component parameters for ``targets``."""
    return {REGISTRY[name].flow_parameter: names for name, names in targets.items()}
