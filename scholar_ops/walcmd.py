"""scholar-ops-wal: PostgreSQL's archive_command and restore_command, into the backup store.

    archive_command = 'scholar-ops-wal --repository /srv/backup --key-file /etc/scholar-ops/master.key --resident push %p'
    restore_command = 'scholar-ops-wal --repository /srv/backup --key-file /etc/scholar-ops/master.key --resident fetch %f %p'

PostgreSQL runs it once per 16 MB segment, as its own OS user, in the data directory: it
starts fast (it imports neither Prefect nor Great Expectations nor chromadb nor the
``scholar_ops.cli`` package; with ``--resident``, a resident archiver started by the first
call does the work and each call is little more than the interpreter: scholar_ops.walserver) and reads its settings from flags, the environment or the
profile ``scholar-ops setup`` writes; ``scholar-ops-wal setup-hint`` prints the lines.

Where the repository and the master key come from, first found wins:
  repository  --repository PATH|file:///PATH|s3://BUCKET/PREFIX, $SCHOLAR_OPS_WAL_REPOSITORY,
              the profile of block --block NAME ($SCHOLAR_OPS_WAL_BLOCK) in
              $SCHOLAR_OPS_CONFIG_DIR/repositories/NAME.json
  master key  --key-file FILE, $SCHOLAR_OPS_MASTER_KEY, $SCHOLAR_OPS_MASTER_KEY_FILE,
              the profile's key file
S3 credentials and endpoint come from the usual AWS settings of the OS user
(~/.aws, AWS_ACCESS_KEY_ID..., AWS_ENDPOINT_URL or $SCHOLAR_OPS_S3_ENDPOINT_URL).

Exit codes (PostgreSQL treats any non-zero as "not done"; above 125 stops recovery):
   0  stored (push) / fetched (fetch)
   1  push failed (storage unreachable, unexpected error): PostgreSQL retries it
   2  push: configuration or usage error (no repository, unreadable key file, wrong key)
   3  push: a different file is already archived under that name (nothing was written)
   4  push: the file archived under that name is damaged
  10  fetch: not in the archive (normal at the end of recovery)
 200  fetch: configuration or usage error, or the wrong key: recovery stops
 201  fetch: the archived file is damaged or misplaced: recovery stops
 202  fetch: storage unreachable or unexpected error: recovery stops (rather than ending early)
Every failure prints one line on stderr naming the file and what to do, and is recorded in
the status file (scholar_ops.sources.postgres.wal.status) for the metrics export.
"""

from __future__ import annotations

import os
import sys

# Module level imports only what the interpreter has loaded anyway: a push through the
# resident archiver (scholar_ops.walserver) is this module, the options and a socket.
# argparse (with gettext and locale) only parses calls that are not a plain push or fetch.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from pathlib import Path
    from types import SimpleNamespace
    from typing import Any, NoReturn

    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage.base import Storage

PROG = "scholar-ops-wal"
EXIT_OK = 0
EXIT_PUSH_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_DAMAGED = 4
EXIT_NOT_ARCHIVED = 10
EXIT_FETCH_CONFIG = 200
EXIT_FETCH_DAMAGED = 201
EXIT_FETCH_FAILED = 202

REPOSITORY_ENV = "SCHOLAR_OPS_WAL_REPOSITORY"
BLOCK_ENV = "SCHOLAR_OPS_WAL_BLOCK"
CONFIG_DIR_ENV = "SCHOLAR_OPS_CONFIG_DIR"
S3_ENDPOINT_ENV = "SCHOLAR_OPS_S3_ENDPOINT_URL"


def _parser() -> argparse.ArgumentParser:
    import argparse
    from pathlib import Path

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            fatal = "fetch" in sys.argv[1:]
            _say(f"{message} (see `{PROG} --help`)")
            sys.exit(EXIT_FETCH_CONFIG if fatal else EXIT_USAGE)

    p = _Parser(
        prog=PROG,
        description="Archive PostgreSQL WAL into the scholar-ops store (archive_command) "
        "and fetch it back (restore_command).",
        epilog="Exit codes: 0 done; push: 1 failed (retried), 2 configuration, 3 conflict, "
        "4 damaged; fetch: 10 not archived, 200 configuration, 201 damaged, 202 failed.",
    )
    p.add_argument(
        "--repository", help=f"PATH, file:///PATH or s3://BUCKET/PREFIX (env {REPOSITORY_ENV})"
    )
    p.add_argument(
        "--key-file", help="file holding the master key (env SCHOLAR_OPS_MASTER_KEY_FILE)"
    )
    p.add_argument(
        "--block",
        help=f"repository block whose `scholar-ops setup` profile to read (env {BLOCK_ENV})",
    )
    p.add_argument("--status-file", type=Path, help="status file (env SCHOLAR_OPS_WAL_STATUS_FILE)")
    p.add_argument(
        "--key-cache-dir",
        type=Path,
        help="where the encrypted key cache lives (env SCHOLAR_OPS_KEY_CACHE_DIR; default ~/.cache/scholar-ops/keys)",
    )
    p.add_argument(
        "--no-key-cache",
        action="store_true",
        help="derive the keys from the master key on every call (scrypt, about 0.1 s more)",
    )
    p.add_argument(
        "--resident",
        action="store_true",
        help="push and fetch through a resident archiver for these settings, started by the first call "
        "and gone after $SCHOLAR_OPS_WAL_IDLE_SECONDS (600) idle: saves the start-up per segment",
    )
    p.add_argument(
        "--system-id",
        type=int,
        help="database system identifier (default: read from the data directory)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push", help="archive one file (archive_command ... push %%p)")
    push.add_argument("path", type=Path)
    fetch = sub.add_parser("fetch", help="restore one file (restore_command ... fetch %%f %%p)")
    fetch.add_argument("name")
    fetch.add_argument("dest", type=Path)
    sub.add_parser("status", help="the status file and the newest archived segment")
    sub.add_parser(
        "stop-resident", help="stop the resident archiver of these settings (see --resident)"
    )
    hint = sub.add_parser("setup-hint", help="print the postgresql.conf lines for these settings")
    hint.add_argument("--archive-timeout", default="60s")
    return p


_VALUE_OPTIONS = {
    "--repository": str,
    "--key-file": str,
    "--block": str,
    "--status-file": str,
    "--key-cache-dir": str,
    "--system-id": int,
}
_OPERANDS: dict[str, tuple[str, ...]] = {
    "push": ("path",),
    "fetch": ("name", "dest"),
    "stop-resident": (),
}


def _quick_args(argv: list[str]) -> argparse.Namespace | None:
    """The arguments of a plain ``push``/``fetch`` call, without building the argparse
    parser (PostgreSQL runs one per segment); None for anything else (help, errors,
    other commands), which argparse then parses and reports."""
    from types import SimpleNamespace

    ns = SimpleNamespace(**{k[2:].replace("-", "_"): None for k in _VALUE_OPTIONS})
    ns.no_key_cache = False
    ns.resident = False
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        opt, eq, value = argv[i].partition("=")
        if opt in ("--no-key-cache", "--resident") and not eq:
            setattr(ns, opt[2:].replace("-", "_"), True)
            i += 1
            continue
        convert = _VALUE_OPTIONS.get(opt)
        if convert is None:
            return None
        if not eq:
            if i + 1 >= len(argv):
                return None
            i += 1
            value = argv[i]
        try:
            setattr(ns, opt[2:].replace("-", "_"), convert(value))
        except ValueError:
            return None
        i += 1
    if i >= len(argv) or argv[i] not in _OPERANDS:
        return None
    ns.command = argv[i]
    ns.options = _canonical_options(ns)
    rest = argv[i + 1 :]
    names = _OPERANDS[ns.command]
    if len(rest) != len(names) or any(a.startswith("-") for a in rest):
        return None
    for key, value in zip(names, rest, strict=True):
        setattr(ns, key, value)
    return ns  # type: ignore[return-value]  # the attributes argparse would set


_PATH_OPTIONS = ("--repository", "--key-file", "--status-file", "--key-cache-dir")


def _canonical_options(ns: SimpleNamespace) -> list[str]:
    """The options as ``--name value`` with paths made absolute: what the resident archiver
    is started with, the same from any working directory."""
    out = []
    for opt in _VALUE_OPTIONS:
        value = getattr(ns, opt[2:].replace("-", "_"))
        if value is None:
            continue
        value = str(value)
        if opt in _PATH_OPTIONS and "://" not in value:
            value = os.path.abspath(os.path.expanduser(value))
        out += [opt, value]
    return out + [
        f for f in ("--no-key-cache", "--resident") if getattr(ns, f[2:].replace("-", "_"))
    ]


def _say(line: str) -> None:
    print(f"{PROG}: " + " ".join(line.split()), file=sys.stderr, flush=True)


# -- settings ---------------------------------------------------------------------------


def _config_dir() -> Path:
    from pathlib import Path

    # The same place as scholar_ops.cli.direct.config_dir (copied: this command must not
    # import the scholar_ops.cli package, whose __init__ imports every verb).
    if value := os.environ.get(CONFIG_DIR_ENV):
        return Path(value)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "scholar-ops"


def _profile(block: str) -> dict[str, Any]:
    """The profile `scholar-ops setup` wrote for ``block`` (local_path, master_key_file)."""
    import json

    from scholar_ops.vault.errors import ConfigError

    path = _config_dir() / "repositories" / f"{block}.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot read the profile of block {block!r} ({path}: {getattr(e, 'strerror', e)}): "
            f"run `scholar-ops setup` as this user, set {CONFIG_DIR_ENV}, or pass --repository"
        ) from None
    return doc if isinstance(doc, dict) else {}


def _settings(args: argparse.Namespace) -> tuple[str, MasterKey]:
    from scholar_ops.vault.crypto.keys import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, MasterKey
    from scholar_ops.vault.errors import ConfigError

    location = args.repository or os.environ.get(REPOSITORY_ENV)
    profile: dict[str, Any] = {}
    block = args.block or os.environ.get(BLOCK_ENV)
    if not location and block:
        profile = _profile(block)
        location = profile.get("local_path")
        if not location:
            raise ConfigError(
                f"the profile of block {block!r} names no local repository (S3?): "
                "pass --repository s3://BUCKET/PREFIX"
            )
    if not location:
        raise ConfigError(
            f"no repository: pass --repository PATH|s3://BUCKET/PREFIX, set {REPOSITORY_ENV}, "
            "or --block NAME (`scholar-ops-wal setup-hint` prints the lines)"
        )
    if args.key_file:
        master = MasterKey.from_file(args.key_file)
    elif os.environ.get(MASTER_KEY_ENV) or os.environ.get(MASTER_KEY_FILE_ENV):
        master = MasterKey.from_env()
    elif profile.get("master_key_file"):
        master = MasterKey.from_file(str(profile["master_key_file"]))
    else:
        raise ConfigError(
            f"no master key: pass --key-file FILE (readable by this OS user), or set "
            f"{MASTER_KEY_FILE_ENV}"
        )
    return str(location), master


def open_storage_at(location: str) -> Storage:
    """Local path / file:// URL, or s3://bucket/prefix through boto3's usual settings."""
    from scholar_ops.vault.storage import RetryingStorage, open_storage

    inner: Storage
    if location.lower().startswith("s3://"):
        import boto3

        from scholar_ops.vault.storage import S3Storage

        bucket, _, prefix = location[5:].partition("/")
        endpoint = os.environ.get(S3_ENDPOINT_ENV) or None
        inner = S3Storage(boto3.client("s3", endpoint_url=endpoint), bucket, prefix)
    elif location.startswith("file:"):
        inner = open_storage(location)
    else:
        inner = open_storage(os.path.expanduser(location))
    return RetryingStorage(inner, attempts=4, base_delay=0.2, max_delay=2.0)


def _open(args: argparse.Namespace, storage: Storage | None = None) -> Repository:
    """The repository; ``storage`` (the resident archiver's) saves opening it again. The
    master key and the key cache are read on every call, so a rotated key is seen."""
    from scholar_ops.sources.postgres.wal.keycache import default_cache_dir, open_with_cache

    location, master = _settings(args)
    from pathlib import Path

    cache = None if args.no_key_cache else Path(args.key_cache_dir or default_cache_dir())
    return open_with_cache(storage or open_storage_at(location), master, cache)


# -- commands -----------------------------------------------------------------------------


def _push(args: argparse.Namespace, storage: Storage | None = None) -> int:
    from scholar_ops.sources.postgres.wal.store import push_wal

    repo = _open(args, storage)
    push_wal(repo, args.path, system_id=args.system_id)
    return EXIT_OK


def _fetch(args: argparse.Namespace, storage: Storage | None = None) -> int:
    from scholar_ops.sources.postgres.wal.store import fetch_wal

    repo = _open(args, storage)
    if fetch_wal(repo, args.name, args.dest, system_id=args.system_id):
        return EXIT_OK
    raise _NotArchived(
        f"fetch {args.name}: not in the archive at {repo.location} (normal when recovery reaches "
        "the end of the archived WAL)"
    )


class _NotArchived(Exception):
    """fetch: no such file in the archive (exit 10; neither a success nor a failure)."""


def _status(args: argparse.Namespace) -> int:
    from scholar_ops.sources.postgres.wal.status import default_status_file, read_status
    from scholar_ops.sources.postgres.wal.store import archived_clusters, last_archived

    repo = _open(args)
    newest = {}
    for sysid in archived_clusters(repo):
        last = last_archived(repo, system_id=sysid)
        newest[str(sysid)] = {"name": last[0], "time": last[1]} if last else None
    status_file = args.status_file or default_status_file()
    doc = {
        "repository": repo.location,
        "last_archived": newest,
        "status_file": str(status_file),
        "status": read_status(status_file),
    }
    import json

    print(json.dumps(doc, indent=1))
    return EXIT_OK


def _stop_resident(args: argparse.Namespace) -> int:
    from scholar_ops import walserver

    if args.options is None:
        from scholar_ops.vault.errors import ConfigError

        raise ConfigError("give the options as archive_command does, each as --name value")
    stopped = walserver.stop(args.options)
    print("stopped the resident archiver" if stopped else "no resident archiver was running")
    return EXIT_OK


def _setup_hint(args: argparse.Namespace) -> int:
    from pathlib import Path

    script = Path(sys.executable).parent / PROG
    cmd = str(script) if script.exists() else f"{sys.executable} -m scholar_ops.walcmd"
    opts = []
    if args.repository:
        opts.append(f"--repository {args.repository}")
    if args.key_file:
        opts.append(f"--key-file {args.key_file}")
    if args.block:
        opts.append(f"--block {args.block}")
    if not opts:
        opts = ["--repository /path/to/repository", "--key-file /path/to/master.key"]
    base = " ".join([cmd, *opts])
    print("# postgresql.conf (restart for archive_mode; reload for the rest)")
    print("wal_level = replica")
    print("archive_mode = on")
    print(f"archive_command = '{base} --resident push %p'")
    print(f"archive_timeout = '{args.archive_timeout}'")
    print("# recovery (PITR restores write this for you):")
    print(f"restore_command = '{base} --resident fetch %f %p'")
    print(
        "# PostgreSQL runs these as its OS user: it must be able to run the interpreter "
        f"({sys.executable}), read the key file and the repository's keys/ and config, and "
        "write wal/. Check with: sudo -u postgres " + base + " status"
    )
    return EXIT_OK


# -- errors -------------------------------------------------------------------------------


def _failure(command: str, exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an error of ``command``."""
    from scholar_ops.sources.postgres.wal.store import WalConflict
    from scholar_ops.vault.errors import (
        ConfigError,
        IntegrityError,
        RepositoryNotFound,
        VaultError,
        WrongKey,
    )

    config = (ConfigError, WrongKey, RepositoryNotFound)
    text = str(exc) if isinstance(exc, VaultError) else f"{type(exc).__name__}: {exc}"
    if command == "fetch":
        if isinstance(exc, IntegrityError):
            return EXIT_FETCH_DAMAGED, (
                f"{text}: recovery stops here rather than skip it; restore with a base backup "
                "whose WAL is intact (`scholar-ops check` names the damaged objects)"
            )
        if isinstance(exc, config):
            return EXIT_FETCH_CONFIG, f"{text}: recovery stops; fix restore_command and start again"
        return EXIT_FETCH_FAILED, (
            f"{text}: recovery stops rather than end early; start the server again once the "
            "repository is reachable"
        )
    if isinstance(exc, WalConflict):
        return EXIT_CONFLICT, text
    if isinstance(exc, IntegrityError):
        return EXIT_DAMAGED, (
            f"{text}: the archived copy is damaged; move that object aside so this file is "
            "archived again"
        )
    if isinstance(exc, config):
        return EXIT_USAGE, f"{text}: PostgreSQL keeps the WAL and retries once it is fixed"
    return EXIT_PUSH_FAILED, f"{text}: PostgreSQL keeps the WAL and retries"


def _execute(args: argparse.Namespace, storage: Storage | None = None) -> tuple[int, str]:
    """Run one command: (exit code, the line to print; empty on success). push and fetch
    record their outcome in the status file."""
    command: str = args.command
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "push": lambda a: _push(a, storage),
        "fetch": lambda a: _fetch(a, storage),
        "status": _status,
        "setup-hint": _setup_hint,
        "stop-resident": _stop_resident,
    }
    name = os.path.basename(args.path) if command == "push" else getattr(args, "name", "")
    try:
        code = handlers[command](args)
    except _NotArchived as e:
        return EXIT_NOT_ARCHIVED, str(e)
    except Exception as e:
        code, line = _failure(command, e)
        message = f"{command} {name}: {line}" if name else f"{command}: {line}"
        if command in ("push", "fetch"):
            from scholar_ops.sources.postgres.wal.status import record

            record(args.status_file, command, name, False, exit_code=code, error=line)
        return code, message
    if command in ("push", "fetch") and code == EXIT_OK:
        from scholar_ops.sources.postgres.wal.status import record

        record(args.status_file, command, name, True)
    return code, ""


def parse_options(options: list[str]) -> argparse.Namespace:
    """The global options alone (what the resident archiver is started with)."""
    return _parser().parse_args([*options, "status"])


def run_resident(
    args: argparse.Namespace, storage: Storage | None
) -> tuple[int, str, Storage | None]:
    """One push or fetch for the resident archiver: (exit code, line, the storage to reuse)."""
    if storage is None:
        try:
            storage = open_storage_at(_settings(args)[0])
        except Exception:
            storage = None  # the command reports why
    code, line = _execute(args, storage)
    return code, line, storage


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _quick_args(argv) or _parser().parse_args(argv)
    if not hasattr(args, "options"):
        args.options = None  # unusual spellings (abbreviations): no resident archiver
    resident = args.command in ("push", "fetch") and args.resident and args.options
    try:
        if resident:
            from scholar_ops import walserver

            if args.command == "push":
                answer = walserver.push(args.options, str(args.path))
            else:
                answer = walserver.fetch(args.options, args.name, str(args.dest))
            if answer is not None:
                if answer[1]:
                    _say(answer[1])
                return answer[0]
        code, line = _execute(args)
    except KeyboardInterrupt:
        return 130
    if line:
        _say(line)
    if resident and (why := walserver.start(args.options)):
        _say(f"{args.command}: the resident archiver did not start ({why}); working in-process")
    return code


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
