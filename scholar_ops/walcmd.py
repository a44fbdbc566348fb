"""scholar-ops-wal: PostgreSQL's archive_command and restore_command, into the backup store.

    archive_command = 'scholar-ops-wal --repository /srv/backup --key-file /etc/scholar-ops/master.key push %p'
    restore_command = 'scholar-ops-wal --repository /srv/backup --key-file /etc/scholar-ops/master.key fetch %f %p'

PostgreSQL runs it once per 16 MB segment, as its own OS user, in the data directory: it
starts fast (it imports neither Prefect nor Great Expectations nor chromadb nor the
``scholar_ops.cli`` package) and reads its settings from flags, the environment or the
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

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fatal = "fetch" in sys.argv[1:]
        _say(f"{message} (see `{PROG} --help`)")
        sys.exit(EXIT_FETCH_CONFIG if fatal else EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
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
    hint = sub.add_parser("setup-hint", help="print the postgresql.conf lines for these settings")
    hint.add_argument("--archive-timeout", default="60s")
    return p


def _say(line: str) -> None:
    print(f"{PROG}: " + " ".join(line.split()), file=sys.stderr, flush=True)


# -- settings ---------------------------------------------------------------------------


def _config_dir() -> Path:
    # The same place as scholar_ops.cli.direct.config_dir (copied: this command must not
    # import the scholar_ops.cli package, whose __init__ imports every verb).
    if value := os.environ.get(CONFIG_DIR_ENV):
        return Path(value)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "scholar-ops"


def _profile(block: str) -> dict[str, Any]:
    """The profile `scholar-ops setup` wrote for ``block`` (local_path, master_key_file)."""
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
        inner = open_storage(Path(location).expanduser())
    return RetryingStorage(inner, attempts=4, base_delay=0.2, max_delay=2.0)


def _open(args: argparse.Namespace) -> Repository:
    from scholar_ops.sources.postgres.wal.keycache import default_cache_dir, open_with_cache

    location, master = _settings(args)
    cache = None if args.no_key_cache else (args.key_cache_dir or default_cache_dir())
    return open_with_cache(open_storage_at(location), master, cache)


# -- commands -----------------------------------------------------------------------------


def _push(args: argparse.Namespace) -> int:
    from scholar_ops.sources.postgres.wal.store import push_wal

    repo = _open(args)
    push_wal(repo, args.path, system_id=args.system_id)
    return EXIT_OK


def _fetch(args: argparse.Namespace) -> int:
    from scholar_ops.sources.postgres.wal.store import fetch_wal

    repo = _open(args)
    if fetch_wal(repo, args.name, args.dest, system_id=args.system_id):
        return EXIT_OK
    _say(
        f"fetch {args.name}: not in the archive at {repo.location} (normal when recovery reaches "
        "the end of the archived WAL)"
    )
    return EXIT_NOT_ARCHIVED


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
    print(json.dumps(doc, indent=1))
    return EXIT_OK


def _setup_hint(args: argparse.Namespace) -> int:
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
    print(f"archive_command = '{base} push %p'")
    print(f"archive_timeout = '{args.archive_timeout}'")
    print("# recovery (PITR restores write this for you):")
    print(f"restore_command = '{base} fetch %f %p'")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: str = args.command
    handlers = {"push": _push, "fetch": _fetch, "status": _status, "setup-hint": _setup_hint}
    name = str(args.path.name if command == "push" else getattr(args, "name", ""))
    try:
        code = handlers[command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        code, line = _failure(command, e)
        _say(f"{command} {name}: {line}" if name else f"{command}: {line}")
        if command in ("push", "fetch"):
            from scholar_ops.sources.postgres.wal.status import record

            record(args.status_file, command, name, False, exit_code=code, error=line)
        return code
    if command in ("push", "fetch") and code == EXIT_OK:
        from scholar_ops.sources.postgres.wal.status import record

        record(args.status_file, command, name, True)
    return code


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
