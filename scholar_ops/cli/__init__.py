"""`scholar-ops`: the operator's command line.

It covers every component of the application: PostgreSQL databases, Redis
servers, Chroma vector stores and directory trees (files). Each is a target
block created by ``setup``; ``backup`` backs any set of them up as one snapshot
group, ``restore`` restores one snapshot of any component, ``drill`` restores the
latest snapshots into scratch places and verifies them. These verbs run the
same Prefect flows as the deployments (against PREFECT_API_URL when it is set,
otherwise in Prefect's ephemeral mode). ``snapshots``, ``check``, ``key list``,
``unlock`` and ``migrate`` read the repository directly, without Prefect
(scholar_ops.cli.direct).

Each verb lives in its own module and registers its parser; building the
parser imports no Prefect. Prefect's settings (quiet logs, no analytics, a
patient ephemeral server) are put in place before anything imports it.

Exit codes: 0 success; 1 the operation failed (a backup, restore, drill or check);
2 bad usage or configuration; 3 the repository is damaged (integrity);
4 the repository is locked; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from scholar_ops.cli import audit as audit_verb
from scholar_ops.cli import automations, backup, metrics, repository, restore, setup, testing
from scholar_ops.cli import copy as copy_verb
from scholar_ops.cli.common import (
    DEFAULT_REPOSITORY,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    env,
    first_line,
)
from scholar_ops.cli.errors import exit_code
from scholar_ops.project import HOME_ENV, import_project
from scholar_ops.vault.errors import ConfigError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scholar-ops",
        description=(
            "Backups of the AI Scholar application (PostgreSQL, Redis, Chroma and files) "
            "into an encrypted, deduplicated repository, and functionality tests of it."
        ),
        epilog="Exit codes: 0 ok; 1 failed; 2 bad usage or configuration; 3 repository "
        "damaged; 4 repository locked; 130 interrupted.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's run logs")
    p.add_argument(
        "--repository",
        default=env("SCHOLAR_OPS_REPOSITORY", DEFAULT_REPOSITORY),
        help="name of the backup repository block (env SCHOLAR_OPS_REPOSITORY; default %(default)s)",
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in (setup, backup, metrics, repository, restore, automations, testing, copy_verb):
        module.register(sub)
    audit_verb.register(sub)
    return p


def prefect_settings(*, verbose: bool, debug: bool) -> None:
    """Prefect reads its settings when first imported: these must be set before that."""
    level = "DEBUG" if debug else "INFO" if verbose else "CRITICAL"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level)
    # No network here, and its first-run telemetry can race the ephemeral database.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Ephemeral mode on a fresh PREFECT_HOME runs migrations first: 20 s is not enough
    # on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prefect_settings(verbose=args.verbose, debug=args.debug)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if not args.debug:
        warnings.simplefilter("ignore")  # libraries' deprecation notices are not the operator's
    from scholar_ops.cli import progress

    progress.enable(sys.stderr.isatty())
    with contextlib.suppress(ConfigError):
        import_project()  # flows, tasks, blocks; the verbs that read the repository need none
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as e:
        if args.debug or e.name not in ("flows", "tasks", "blocks"):
            raise
        print(
            f"scholar-ops {args.verb}: the Prefect project ({e.name}/) is not importable: run "
            f"from the scholar-ops checkout or set {HOME_ENV} to it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except Exception as e:
        if args.debug:
            raise
        print(f"scholar-ops {args.verb}: {first_line(e)}", file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
