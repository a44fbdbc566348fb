"""From an exception to the command line's one line and exit code.

Every error raised on purpose is a ``vault.errors.VaultError`` (their tree is
drawn in that module's docstring); the command line maps the classes to exit
codes and walks ``__cause__``/``__context__``, because a flow or task may wrap the
error it failed with.
"""

from __future__ import annotations

from scholar_ops.cli.common import EXIT_DAMAGED, EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE
from scholar_ops.vault.errors import (
    ConfigError,
    IntegrityError,
    RepositoryLocked,
    SnapshotNotFound,
    TargetNotEmpty,
    WrongKey,
)

#: Error classes and their exit codes, most specific first.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (IntegrityError, EXIT_DAMAGED),
    (RepositoryLocked, EXIT_LOCKED),
    (ConfigError, EXIT_USAGE),
    (WrongKey, EXIT_USAGE),
    (SnapshotNotFound, EXIT_USAGE),
    (TargetNotEmpty, EXIT_USAGE),
)


def chain(exc: BaseException) -> list[BaseException]:
    """The exception, then its causes (or contexts), at most 11 deep."""
    out: list[BaseException] = [exc]
    while out[-1].__cause__ is not None or out[-1].__context__ is not None:
        nxt = out[-1].__cause__ or out[-1].__context__
        assert nxt is not None
        out.append(nxt)
        if len(out) > 10:
            break
    return out


def find_in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in chain(exc) if isinstance(e, kind)), None)


def exit_code(exc: BaseException) -> int:
    for e in chain(exc):
        for kind, code in EXIT_CODES:
            if isinstance(e, kind):
                return code
    return EXIT_FAILED
