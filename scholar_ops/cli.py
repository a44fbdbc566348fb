"""`scholar-ops`: the operator's command line, restic-like verbs running the same Prefect flows.

Flows run against PREFECT_API_URL when it is set, otherwise in Prefect's
ephemeral mode (a temporary local API on the SQLite database in PREFECT_HOME).

Exit codes: 0 success; 1 the operation failed (a backup, restore or check);
2 bad usage or configuration; 3 the repository is damaged (integrity);
4 the repository is locked; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.errors import (
    ConfigError,
    IntegrityError,
    RepositoryLocked,
    SnapshotNotFound,
    TargetNotEmpty,
    VaultError,
    WrongKey,
)

DEFAULT_REPOSITORY = "scholar-ops-repository"
DEFAULT_MASTER_SECRET = "scholar-ops-master-key"
DEFAULT_TARGET = "aischolar-postgres"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DAMAGED, EXIT_LOCKED = 0, 1, 2, 3, 4


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scholar-ops",
        description="Backups of the AI Scholar application (PostgreSQL) into an encrypted, deduplicated repository.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's run logs")
    p.add_argument(
        "--repository",
        default=_env("SCHOLAR_OPS_REPOSITORY", DEFAULT_REPOSITORY),
        help="name of the backup repository block (env SCHOLAR_OPS_REPOSITORY; default %(default)s)",
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser(
        "setup",
        help="create the blocks (repository, master key, PostgreSQL target) and the repository",
    )
    g = s.add_argument_group("repository (one of)")
    g.add_argument(
        "--repo-path",
        default=_env("SCHOLAR_OPS_REPOSITORY_PATH"),
        help="local directory (env SCHOLAR_OPS_REPOSITORY_PATH)",
    )
    g.add_argument(
        "--s3-bucket",
        default=_env("SCHOLAR_OPS_S3_BUCKET"),
        help="S3 bucket (env SCHOLAR_OPS_S3_BUCKET)",
    )
    g.add_argument(
        "--s3-prefix",
        default=_env("SCHOLAR_OPS_S3_PREFIX", ""),
        help="folder in the bucket (env SCHOLAR_OPS_S3_PREFIX)",
    )
    g.add_argument(
        "--s3-endpoint-url",
        default=_env("SCHOLAR_OPS_S3_ENDPOINT_URL"),
        help="S3-compatible endpoint (env SCHOLAR_OPS_S3_ENDPOINT_URL)",
    )
    g.add_argument(
        "--s3-region",
        default=_env("AWS_DEFAULT_REGION", "us-east-1"),
        help="region (env AWS_DEFAULT_REGION)",
    )
    k = s.add_argument_group("master key")
    k.add_argument(
        "--master-key-secret",
        default=DEFAULT_MASTER_SECRET,
        help="Secret block to keep it in (default %(default)s)",
    )
    k.add_argument("--master-key-file", default=_env("SCHOLAR_OPS_MASTER_KEY_FILE"),
                   help="read the key from this file (env SCHOLAR_OPS_MASTER_KEY_FILE; or set SCHOLAR_OPS_MASTER_KEY); "
                        "without either a new random key is generated and written to --new-key-file")  # fmt: skip
    k.add_argument(
        "--new-key-file",
        default="scholar-ops-master.key",
        help="where a generated key is written (mode 0600)",
    )
    d = s.add_argument_group("PostgreSQL target (libpq environment variables are the defaults)")
    d.add_argument(
        "--target", default=DEFAULT_TARGET, help="name of the target block (default %(default)s)"
    )
    d.add_argument("--pg-host", default=_env("PGHOST", "127.0.0.1"))
    d.add_argument("--pg-port", type=int, default=int(_env("PGPORT", "5432") or 5432))
    d.add_argument("--pg-database", default=_env("PGDATABASE"))
    d.add_argument("--pg-user", default=_env("PGUSER", "postgres"))
    d.add_argument("--pg-sslmode", default=_env("PGSSLMODE", "prefer"))
    s.add_argument("--compression", choices=["zstd", "gzip", "none"], default="zstd")
    s.add_argument("--compression-level", type=int)
    s.set_defaults(func=cmd_setup)

    b = sub.add_parser("backup", help="back up the PostgreSQL targets")
    b.add_argument(
        "--full", action="store_true", help="a full backup (independent of earlier ones)"
    )
    b.add_argument(
        "--target",
        action="append",
        help=f"target block name (repeatable; default {DEFAULT_TARGET})",
    )
    b.add_argument("--retention-days", type=float, default=None)
    b.set_defaults(func=cmd_backup)

    ls = sub.add_parser("snapshots", help="list snapshots")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--component")
    ls.add_argument("--type", choices=["full", "incremental"])
    ls.add_argument("--since", type=datetime.fromisoformat, help="ISO date/time")
    ls.set_defaults(func=cmd_snapshots)

    r = sub.add_parser("restore", help="restore a snapshot into a database")
    r.add_argument("snapshot", help="snapshot id (or unique prefix) or 'latest'")
    r.add_argument(
        "--to", required=True, dest="database", help="database to restore into (created if missing)"
    )
    r.add_argument(
        "--target", default=DEFAULT_TARGET, help="target block whose server receives the restore"
    )
    r.add_argument(
        "--from-target",
        dest="source_target",
        help="with 'latest': the backed-up target to pick from",
    )
    r.add_argument(
        "--before", type=datetime.fromisoformat, help="with 'latest': the latest before this time"
    )
    r.add_argument(
        "--clean", action="store_true", help="drop and recreate the database if it holds objects"
    )
    r.add_argument(
        "--schema", action="append", dest="schemas", help="restore only this schema (repeatable)"
    )
    r.add_argument(
        "--table", action="append", dest="tables", help="restore only schema.table (repeatable)"
    )
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--no-owner", action="store_true", help="skip ownership and privileges")
    r.set_defaults(func=cmd_restore)

    c = sub.add_parser("check", help="verify the repository")
    c.add_argument("--read-data", nargs="?", type=float, const=1.0, default=0.0, metavar="FRACTION",
                   help="also read back all (or this fraction, 0-1) of the data")  # fmt: skip
    c.set_defaults(func=cmd_check)

    key = sub.add_parser("key", help="master key operations")
    ksub = key.add_subparsers(dest="key_verb", required=True, metavar="ACTION")
    rot = ksub.add_parser(
        "rotate", help="rewrap the data keys with a new master key (no data is rewritten)"
    )
    rot.add_argument(
        "--new-key-file", help="the new key (default: generate one and write it to --write-to)"
    )
    rot.add_argument("--write-to", default="scholar-ops-master.new.key")
    rot.set_defaults(func=cmd_key_rotate)
    return p


# -- verbs ------------------------------------------------------------------------


def cmd_setup(args: argparse.Namespace) -> int:
    from prefect.blocks.system import Secret
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters
    from pydantic import SecretStr

    from blocks import register_blocks
    from blocks.postgres import PostgresTarget
    from blocks.repository import BackupRepository

    if bool(args.repo_path) == bool(args.s3_bucket):
        raise ConfigError(
            "setup needs exactly one of --repo-path or --s3-bucket (or their environment variables)"
        )
    if not args.pg_database:
        raise ConfigError("setup needs --pg-database (or PGDATABASE)")
    register_blocks()
    key = _env("SCHOLAR_OPS_MASTER_KEY")
    if key is None and args.master_key_file:
        key = Path(args.master_key_file).read_text().strip()
    if key is None:
        key = secrets.token_hex(32)
        _write_key(Path(args.new_key_file), key)
        print(
            f"generated a new master key in {args.new_key_file}: keep a copy offline; without it the backups are lost"
        )
    Secret(value=SecretStr(key)).save(args.master_key_secret, overwrite=True)

    s3 = None
    if args.s3_bucket:
        creds = AwsCredentials(
            aws_access_key_id=_env("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=SecretStr(sk) if (sk := _env("AWS_SECRET_ACCESS_KEY")) else None,
            region_name=args.s3_region,
            aws_client_parameters=AwsClientParameters(endpoint_url=args.s3_endpoint_url),
        )
        s3 = S3Bucket(bucket_name=args.s3_bucket, bucket_folder=args.s3_prefix, credentials=creds)
    repo_block = BackupRepository(
        local_path=args.repo_path,
        s3_bucket=s3,
        master_key_secret=args.master_key_secret,
        compression=args.compression,
        compression_level=args.compression_level,
    )
    repo_block.save(args.repository, overwrite=True)

    password_secret = None
    if pw := _env("PGPASSWORD"):
        password_secret = f"{args.target}-password"
        Secret(value=SecretStr(pw)).save(password_secret, overwrite=True)
    PostgresTarget(
        host=args.pg_host,
        port=args.pg_port,
        database=args.pg_database,
        user=args.pg_user,
        password_secret=password_secret,
        sslmode=args.pg_sslmode,
    ).save(args.target, overwrite=True)
    repo = repo_block.open(create=True)
    print(f"repository  {args.repository}: {repo.location} (key set {repo.key.key_id_hex})")
    print(
        f"target      {args.target}: {args.pg_user}@{args.pg_host}:{args.pg_port}/{args.pg_database}"
    )
    return EXIT_OK


def _write_key(path: Path, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")


def cmd_backup(args: argparse.Namespace) -> int:
    from flows.backup.full_backup import full_backup
    from flows.backup.incremental_backup import incremental_backup

    targets = args.target or [DEFAULT_TARGET]
    flow = full_backup if args.full else incremental_backup
    kwargs: dict[str, Any] = {"postgres_targets": targets, "repository": args.repository}
    if args.retention_days is not None:
        kwargs["retention_days"] = args.retention_days
    results = flow(**kwargs)
    from scholar_ops.reports import human_bytes

    for r in results:
        print(
            f"snapshot {r['short_id']} {r['component']}/{r['target']} {r['backup_type']}: "
            f"{human_bytes(r['size_bytes'])} read, {human_bytes(r['new_bytes'])} new, "
            f"{human_bytes(r['stored_bytes'])} stored in {r['duration_s']} s ({r['throughput_mb_s']} MB/s)"
        )
    return EXIT_OK


def cmd_snapshots(args: argparse.Namespace) -> int:
    from flows.backup.catalog import backup_catalog

    snaps = backup_catalog(
        repository=args.repository,
        component=args.component,
        backup_type=args.type,
        since=args.since,
    )
    if args.json:
        print(
            json.dumps(
                [{k: v for k, v in s.items() if k != "row"} for s in snaps], indent=2, default=str
            )
        )
        return EXIT_OK
    rows = [s["row"] for s in snaps]
    cols = ["id", "time", "component", "target", "type", "size", "stored", "retention_until"]
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    print(f"{len(rows)} snapshots")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from flows.backup.restore import postgres_restore

    result = postgres_restore(
        target=args.target,
        database=args.database,
        snapshot=args.snapshot,
        repository=args.repository,
        before=args.before,
        source_target=args.source_target,
        clean=args.clean,
        schemas=args.schemas,
        tables=args.tables,
        jobs=args.jobs,
        no_owner=args.no_owner,
    )
    print(
        f"restored snapshot {result['snapshot_id'][:8]} into {result['database']}: {result['tables']} tables, "
        f"{result['rows']} rows in {result['duration_s']} s; row counts match the backup"
    )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from flows.backup.verify import RepositoryDamaged, verify_repository

    try:
        report = verify_repository(repository=args.repository, read_data=args.read_data)
    except RepositoryDamaged as e:
        print(f"repository damaged: {e}", file=sys.stderr)
        return EXIT_DAMAGED
    print(
        f"no errors: {report['snapshots']} snapshots, {report['packs']} packs; "
        f"{report['packs_read']} packs and {report['chunks_read']} chunks read back"
    )
    return EXIT_OK


def cmd_key_rotate(args: argparse.Namespace) -> int:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from tasks.common import load_repository
    from vault.crypto.keys import MasterKey

    block = load_repository(args.repository)
    repo = block.open()
    if args.new_key_file:
        new = Path(args.new_key_file).read_text().strip()
    else:
        new = secrets.token_hex(32)
        _write_key(Path(args.write_to), new)
        print(f"generated a new master key in {args.write_to}: keep a copy offline")
    rewritten = repo.rotate_master_key(MasterKey.from_string(new))
    # The repository now opens only with the new key: store it where the block points.
    Secret(value=SecretStr(new)).save(block.master_key_secret, overwrite=True)
    print(
        f"rewrapped {len(rewritten)} key set(s); Secret block {block.master_key_secret!r} holds the new key"
    )
    return EXIT_OK


# -- entry point --------------------------------------------------------------------


def _exit_code(exc: BaseException) -> int:
    chain: list[BaseException] = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        assert nxt is not None
        chain.append(nxt)
        if len(chain) > 10:
            break
    for e in chain:
        if isinstance(e, IntegrityError):
            return EXIT_DAMAGED
        if isinstance(e, RepositoryLocked):
            return EXIT_LOCKED
        if isinstance(e, ConfigError | WrongKey | SnapshotNotFound | TargetNotEmpty):
            return EXIT_USAGE
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if args.debug or args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "DEBUG" if args.debug else "INFO")
    else:
        # One clear line per error: Prefect's own run logs and tracebacks only on request.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    # Ephemeral mode (no PREFECT_API_URL): a busy machine needs more than the default 20 s to start it.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from scholar_ops import progress

    progress.enable(sys.stderr.isatty())
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (VaultError, Exception) as e:
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"scholar-ops {args.verb}: {msg}", file=sys.stderr)
        return _exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
