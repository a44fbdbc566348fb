"""`scholar-ops`: the operator's command line, restic-like verbs running the same Prefect flows.

It covers every component of the application: PostgreSQL databases, Redis
servers, Chroma vector stores and directory trees (files). Each is a target
block created by ``setup``; ``backup`` backs any set of them up as one snapshot
group, ``restore`` restores one snapshot of any component, ``drill`` restores the
latest snapshots into scratch places and verifies them.

Flows run against PREFECT_API_URL when it is set, otherwise in Prefect's
ephemeral mode (a temporary local API on the SQLite database in PREFECT_HOME).

Exit codes: 0 success; 1 the operation failed (a backup, restore, drill or check);
2 bad usage or configuration; 3 the repository is damaged (integrity);
4 the repository is locked; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
DEFAULT_MONITORING = "scholar-ops-monitoring"
DEFAULT_REDIS_TARGET = "aischolar-redis"
DEFAULT_CHROMA_TARGET = "aischolar-chroma"
COMPONENTS = ("postgres", "redis", "chroma", "files")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DAMAGED, EXIT_LOCKED = 0, 1, 2, 3, 4


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _iso_time(value: str) -> datetime:
    """An ISO date/time; without a UTC offset it is local time (snapshot times carry one)."""
    try:
        return datetime.fromisoformat(value).astimezone()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date/time (e.g. 2026-11-24 or 2026-11-24T06:00+00:00)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scholar-ops",
        description=(
            "Backups of the AI Scholar application (PostgreSQL, Redis, Chroma and files) "
            "into an encrypted, deduplicated repository."
        ),
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
        help="create the blocks (repository, master key, targets) and the repository",
        description=(
            "Create the repository block, the master key Secret block and the repository, and "
            "the target blocks given: PostgreSQL (--pg-database), Redis (--redis-host/--redis-port), "
            "Chroma (--chroma-path or --chroma-host/--chroma-port) and files (--files NAME=PATH); "
            "at least one target. Passwords and tokens come from the environment and go into "
            "Secret blocks that the targets name."
        ),
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
    d = s.add_argument_group(
        "PostgreSQL target",
        "Created when --pg-database (or PGDATABASE) is given; libpq's environment variables are "
        "the defaults. The password from PGPASSWORD goes into the Secret block TARGET-password.",
    )
    d.add_argument(
        "--target",
        "--pg-target",
        dest="target",
        metavar="NAME",
        help=f"name of the PostgreSQL target block (default {DEFAULT_TARGET})",
    )
    d.add_argument("--pg-host", default=_env("PGHOST", "127.0.0.1"))
    d.add_argument("--pg-port", type=int, default=_env("PGPORT", "5432"))
    d.add_argument("--pg-database", default=_env("PGDATABASE"))
    d.add_argument("--pg-user", default=_env("PGUSER", "postgres"))
    d.add_argument("--pg-sslmode", default=_env("PGSSLMODE", "prefer"))
    rg = s.add_argument_group(
        "Redis target",
        "Created when --redis-host or --redis-port (or REDIS_HOST or REDIS_PORT) is given. The "
        "password from REDISCLI_AUTH or REDIS_PASSWORD goes into the Secret block NAME-password.",
    )
    rg.add_argument(
        "--redis-target",
        metavar="NAME",
        help=f"name of the Redis target block (default {DEFAULT_REDIS_TARGET})",
    )
    rg.add_argument(
        "--redis-host",
        default=_env("REDIS_HOST"),
        help="host (env REDIS_HOST; default 127.0.0.1)",
    )
    rg.add_argument(
        "--redis-port",
        type=int,
        default=_env("REDIS_PORT"),
        help="port (env REDIS_PORT; default 6379)",
    )
    rg.add_argument("--redis-username", help="ACL user (default: the default user)")
    cg = s.add_argument_group(
        "Chroma target",
        "Created when --chroma-path (an embedded store) or --chroma-host or --chroma-port (a "
        "server) is given. A server's token from CHROMA_TOKEN goes into the Secret block "
        "NAME-token.",
    )
    cg.add_argument(
        "--chroma-target",
        metavar="NAME",
        help=f"name of the Chroma target block (default {DEFAULT_CHROMA_TARGET})",
    )
    cg.add_argument(
        "--chroma-path", metavar="DIR", help="an embedded store: its PersistentClient directory"
    )
    cg.add_argument("--chroma-host", help="a Chroma server: its host (default 127.0.0.1)")
    cg.add_argument("--chroma-port", type=int, help="a Chroma server: its port (default 8000)")
    cg.add_argument(
        "--chroma-physical",
        action="store_true",
        help="embedded store only: back up a copy of the directory instead of a logical export",
    )
    fg = s.add_argument_group(
        "files targets", "Directory trees, with permissions, times and symlinks."
    )
    fg.add_argument(
        "--files",
        action="append",
        dest="files",
        metavar="NAME=PATH",
        help="a files target block NAME for the directory PATH (repeatable); snapshots are named NAME",
    )
    fg.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="gitignore-like pattern never backed up, for every --files target of this call "
        "(repeatable)",
    )
    m = s.add_argument_group("monitoring (optional)")
    m.add_argument(
        "--pushgateway-url",
        default=_env("SCHOLAR_OPS_PUSHGATEWAY_URL"),
        help="Prometheus Pushgateway: create the MonitoringSettings block the backup and "
        "metrics-export flows push to (env SCHOLAR_OPS_PUSHGATEWAY_URL)",
    )
    m.add_argument(
        "--monitoring-block",
        default=DEFAULT_MONITORING,
        help="name of that block (default %(default)s)",
    )
    s.add_argument("--compression", choices=["zstd", "gzip", "none"], default="zstd")
    s.add_argument("--compression-level", type=int)
    s.set_defaults(func=cmd_setup)

    b = sub.add_parser(
        "backup",
        help="back up targets of any component, as one snapshot group",
        description=(
            "Back up the named target blocks, all in parallel, as one snapshot group. Without "
            f"any target option: the PostgreSQL target {DEFAULT_TARGET}."
        ),
    )
    b.add_argument(
        "--full", action="store_true", help="a full backup (independent of earlier ones)"
    )
    _target_options(b)
    b.add_argument("--retention-days", type=float, default=None)
    b.set_defaults(func=cmd_backup)

    dr = sub.add_parser(
        "drill",
        help="restore drills: restore the latest snapshot of targets into scratch places and verify",
        description=(
            "Restore the latest snapshot of each named target block into a scratch place (a new "
            "database on its server, a throwaway redis-server, a new Chroma directory, a scratch "
            "directory), verify it against the snapshot, remove it; all in parallel. One line per "
            "target; exit 1 when any drill failed. Without any target option: the PostgreSQL "
            f"target {DEFAULT_TARGET}."
        ),
    )
    _target_options(dr)
    dr.add_argument(
        "--scratch-dir",
        metavar="DIR",
        help="where scratch directories are made (default: the system's temporary directory)",
    )
    dr.add_argument(
        "--monitoring",
        default=DEFAULT_MONITORING,
        metavar="NAME",
        help="MonitoringSettings block: where the drill status is pushed (default "
        "%(default)s; without it and SCHOLAR_OPS_PUSHGATEWAY_URL nothing is pushed)",
    )
    dr.set_defaults(func=cmd_drill)

    mt = sub.add_parser("metrics", help="metrics: export them now, forget a retired target")
    msub = mt.add_subparsers(dest="metrics_verb", required=True, metavar="ACTION")
    mex = msub.add_parser(
        "export", help="run the metrics-export flow once and print what it pushed"
    )
    mfg = msub.add_parser(
        "forget",
        help="delete a retired target's backup, drill and database groups from the Pushgateway "
        "(its stale-backup alerts stop)",
    )
    mfg.add_argument("--component", required=True, choices=["postgres", "redis", "chroma", "files"])
    mfg.add_argument("--target", required=True, help="the target's name in snapshots (its label)")
    for mp in (mex, mfg):
        mp.add_argument(
            "--monitoring",
            default=DEFAULT_MONITORING,
            metavar="NAME",
            help="MonitoringSettings block (default %(default)s; or SCHOLAR_OPS_PUSHGATEWAY_URL)",
        )
    mex.set_defaults(func=cmd_metrics_export)
    mfg.set_defaults(func=cmd_metrics_forget)

    ls = sub.add_parser("snapshots", help="list snapshots")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--component", choices=COMPONENTS)
    ls.add_argument("--type", choices=["full", "incremental"])
    ls.add_argument("--since", type=_iso_time, help="ISO date/time (default time zone: local)")
    ls.set_defaults(func=cmd_snapshots)

    r = sub.add_parser(
        "restore",
        help="restore a snapshot (a database, a Redis server, a Chroma store or files)",
        description=(
            "Restore one snapshot. Its component is read from the snapshot (or --component; "
            "'latest' without --component means PostgreSQL). postgres: --to DATABASE [--target]; "
            "redis: --target NAME (into that running server) or --to DIR (dump.rdb for a new "
            "server); chroma: --target NAME or --to DIR (a new embedded store); files: --to DIR."
        ),
    )
    r.add_argument("snapshot", help="snapshot id (or unique prefix) or 'latest'")
    r.add_argument(
        "--component",
        choices=COMPONENTS,
        help="the snapshot's component (default: read from the snapshot; with 'latest': postgres)",
    )
    r.add_argument(
        "--to",
        dest="to",
        metavar="DATABASE|DIR",
        help="postgres: database to restore into (created if missing); redis: directory for "
        "dump.rdb; chroma: a new embedded store directory; files: directory to restore into",
    )
    r.add_argument(
        "--target",
        metavar="NAME",
        help=f"target block to restore into: postgres: its server (default {DEFAULT_TARGET}); "
        "redis, chroma: that server or store",
    )
    r.add_argument(
        "--from-target",
        dest="source_target",
        metavar="NAME",
        help="with 'latest': the backed-up target to pick from (the snapshots' target name)",
    )
    r.add_argument(
        "--before",
        type=_iso_time,
        metavar="TIME",
        help="with 'latest': the latest before this ISO date/time (default time zone: local)",
    )
    pr = r.add_argument_group("postgres")
    pr.add_argument(
        "--clean", action="store_true", help="drop and recreate the database if it holds objects"
    )
    pr.add_argument(
        "--schema", action="append", dest="schemas", help="restore only this schema (repeatable)"
    )
    pr.add_argument(
        "--table", action="append", dest="tables", help="restore only schema.table (repeatable)"
    )
    pr.add_argument("--jobs", type=int, help="parallel restore jobs (default 2)")
    pr.add_argument("--no-owner", action="store_true", help="skip ownership and privileges")
    rr = r.add_argument_group("redis and chroma")
    rr.add_argument(
        "--existing",
        choices=["fail", "skip", "replace", "flush"],
        help="what happens to keys (redis --target) or collections (chroma) already there: "
        "fail (default), skip, replace, or flush (redis only: empty those databases first)",
    )
    rr.add_argument(
        "--db",
        type=int,
        action="append",
        dest="dbs",
        metavar="N",
        help="redis with --target: restore only this database (repeatable)",
    )
    rr.add_argument(
        "--collection",
        action="append",
        dest="collections",
        metavar="NAME",
        help="chroma: restore only this collection (repeatable)",
    )
    fr = r.add_argument_group("files")
    fr.add_argument(
        "--path",
        action="append",
        dest="paths",
        metavar="P",
        help="restore only this path of the snapshot (repeatable)",
    )
    fr.add_argument(
        "--overwrite",
        action="store_true",
        help="files: restore into a non-empty directory; redis with --to: replace its dump.rdb",
    )
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

    auto = sub.add_parser(
        "automations",
        help="Prefect automations of automations.yaml (alerts to AlertManager, metrics export)",
    )
    asub = auto.add_subparsers(dest="automations_verb", required=True, metavar="ACTION")
    from scholar_ops.automations import add_subcommands

    add_subcommands(asub)
    return p


def _target_options(p: argparse.ArgumentParser) -> None:
    """--postgres/--redis/--chroma/--files NAME (repeatable): target blocks of each component."""
    p.add_argument(
        "--postgres",
        "--target",
        dest="postgres",
        action="append",
        metavar="NAME",
        help="PostgreSQL target block (repeatable; --target is the same)",
    )
    for component in ("redis", "chroma", "files"):
        what = {"redis": "Redis", "chroma": "Chroma", "files": "files"}[component]
        p.add_argument(
            f"--{component}",
            action="append",
            metavar="NAME",
            help=f"{what} target block (repeatable)",
        )


# -- verbs ------------------------------------------------------------------------

_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")


def _check_block_name(name: str, option: str) -> str:
    if not _BLOCK_NAME.match(name):
        raise ConfigError(
            f"{option} {name!r}: block names hold only lowercase letters, digits and dashes"
        )
    return name


def _make_block(cls: Any, what: str, **fields: Any) -> Any:
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


@dataclass
class _Planned:
    """A target block to save, its setup line, and the Secret block it refers to (if any)."""

    name: str
    block: Any
    line: str
    secret_name: str | None = None
    secret_value: str | None = field(default=None, repr=False)
    secret_kind: str = "password"


def _plan_postgres(args: argparse.Namespace) -> _Planned | None:
    from blocks.postgres import PostgresTarget

    if not args.pg_database:
        if args.target:
            raise ConfigError(f"--target {args.target}: a PostgreSQL target needs --pg-database")
        return None
    name = _check_block_name(args.target or DEFAULT_TARGET, "--target")
    pw = _env("PGPASSWORD")
    secret = f"{name}-password" if pw else None
    block = _make_block(
        PostgresTarget,
        f"PostgreSQL target {name!r}",
        host=args.pg_host,
        port=args.pg_port,
        database=args.pg_database,
        user=args.pg_user,
        password_secret=secret,
        sslmode=args.pg_sslmode,
    )
    line = f"postgres {args.pg_user}@{args.pg_host}:{args.pg_port}/{args.pg_database}"
    return _Planned(name, block, line, secret, pw)


def _plan_redis(args: argparse.Namespace) -> _Planned | None:
    from blocks.redis import RedisTarget

    if args.redis_host is None and args.redis_port is None:
        for option, value in (("--redis-target", args.redis_target),
                              ("--redis-username", args.redis_username)):  # fmt: skip
            if value:
                raise ConfigError(f"{option}: a Redis target needs --redis-host or --redis-port")
        return None
    name = _check_block_name(args.redis_target or DEFAULT_REDIS_TARGET, "--redis-target")
    host = args.redis_host or "127.0.0.1"
    port = args.redis_port if args.redis_port is not None else 6379
    pw = _env("REDISCLI_AUTH") or _env("REDIS_PASSWORD")
    secret = f"{name}-password" if pw else None
    block = _make_block(
        RedisTarget,
        f"Redis target {name!r}",
        host=host,
        port=port,
        username=args.redis_username,
        password_secret=secret,
        label=name,
    )
    user = f"{args.redis_username}@" if args.redis_username else ""
    return _Planned(name, block, f"redis {user}{host}:{port}", secret, pw)


def _plan_chroma(args: argparse.Namespace) -> _Planned | None:
    from blocks.chroma import ChromaTarget

    server = args.chroma_host is not None or args.chroma_port is not None
    if args.chroma_path is None and not server:
        for option, value in (("--chroma-target", args.chroma_target),
                              ("--chroma-physical", args.chroma_physical)):  # fmt: skip
            if value:
                raise ConfigError(
                    f"{option}: a Chroma target needs --chroma-path or --chroma-host/--chroma-port"
                )
        return None
    name = _check_block_name(args.chroma_target or DEFAULT_CHROMA_TARGET, "--chroma-target")
    if args.chroma_path is not None and server:
        raise ConfigError(
            "a Chroma target is either an embedded directory (--chroma-path) or a server "
            "(--chroma-host/--chroma-port), not both"
        )
    if args.chroma_physical and server:
        raise ConfigError(
            "--chroma-physical copies an embedded directory: use it with --chroma-path"
        )
    secret, token = None, None
    if server:
        host = args.chroma_host or "127.0.0.1"
        port = args.chroma_port if args.chroma_port is not None else 8000
        token = _env("CHROMA_TOKEN")
        secret = f"{name}-token" if token else None
        fields: dict[str, Any] = {"host": host, "port": port, "token_secret": secret}
        line = f"chroma server {host}:{port}"
    else:
        path = os.path.abspath(os.path.expanduser(args.chroma_path))
        fields = {"path": path, "physical": args.chroma_physical}
        line = f"chroma embedded {path}" + (" (physical copies)" if args.chroma_physical else "")
    block = _make_block(ChromaTarget, f"Chroma target {name!r}", label=name, **fields)
    return _Planned(name, block, line, secret, token, "token")


def _plan_files(args: argparse.Namespace) -> list[_Planned]:
    from blocks.files import FilesTarget

    if args.exclude and not args.files:
        raise ConfigError("--exclude applies to --files NAME=PATH targets: give at least one")
    planned: list[_Planned] = []
    for spec in args.files or []:
        name, sep, raw = spec.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise ConfigError(f"--files takes NAME=PATH (e.g. uploads=/srv/uploads), not {spec!r}")
        _check_block_name(name, "--files")
        if any(p.name == name for p in planned):
            raise ConfigError(f"--files {name}=... is given twice")
        path = os.path.abspath(os.path.expanduser(raw))
        block = _make_block(
            FilesTarget,
            f"files target {name!r}",
            path=path,
            exclude=list(args.exclude or []),
            label=name,
        )
        line = f"files {path}" + (f" (exclude {', '.join(block.exclude)})" if block.exclude else "")
        if not os.path.isdir(path):
            line += " [not a directory on this machine yet]"
        planned.append(_Planned(name, block, line))
    return planned


def cmd_setup(args: argparse.Namespace) -> int:
    from prefect.blocks.system import Secret
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters
    from pydantic import SecretStr

    from blocks import register_blocks
    from blocks.repository import BackupRepository

    if bool(args.repo_path) == bool(args.s3_bucket):
        raise ConfigError(
            "setup needs exactly one of --repo-path or --s3-bucket (or their environment variables)"
        )
    # Every target is checked before anything is written.
    planned = [
        p
        for p in (_plan_postgres(args), _plan_redis(args), _plan_chroma(args), *_plan_files(args))
        if p is not None
    ]
    if not planned:
        raise ConfigError(
            "setup needs at least one target: --pg-database (PostgreSQL), --redis-host or "
            "--redis-port (Redis), --chroma-path or --chroma-host (Chroma), or --files NAME=PATH"
        )
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
    local_path = args.repo_path
    if local_path and "://" not in local_path:
        local_path = os.path.abspath(os.path.expanduser(local_path))  # flows may run elsewhere
    repo_block = BackupRepository(
        local_path=local_path,
        s3_bucket=s3,
        master_key_secret=args.master_key_secret,
        compression=args.compression,
        compression_level=args.compression_level,
    )
    monitoring = None
    if args.pushgateway_url:  # validated before anything is saved
        from pydantic import ValidationError

        from blocks.monitoring import MonitoringSettings

        def named(kind: str) -> list[str]:
            return [p.name for p in planned if type(p.block).__name__ == kind]

        try:
            monitoring = MonitoringSettings(
                pushgateway_url=args.pushgateway_url,
                repository=args.repository,
                postgres_targets=named("PostgresTarget"),
                redis_targets=named("RedisTarget"),
                chroma_targets=named("ChromaTarget"),
            )
        except ValidationError as e:
            raise ConfigError(f"--pushgateway-url: {e.errors()[0]['msg']}") from None
    repo_block.save(args.repository, overwrite=True)

    for p in planned:
        if p.secret_name is not None and p.secret_value is not None:
            Secret(value=SecretStr(p.secret_value)).save(p.secret_name, overwrite=True)
        p.block.save(p.name, overwrite=True)
    repo = repo_block.open(create=True)
    print(f"repository  {args.repository}: {repo.location} (key set {repo.key.key_id_hex})")
    for p in planned:
        kept = f" ({p.secret_kind} in Secret block {p.secret_name})" if p.secret_name else ""
        print(f"target      {p.name}: {p.line}{kept}")
    if monitoring is not None:
        monitoring.save(args.monitoring_block, overwrite=True)
        print(f"monitoring  {args.monitoring_block}: pushes to {args.pushgateway_url}")
    return EXIT_OK


def _write_key(path: Path, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")


def cmd_backup(args: argparse.Namespace) -> int:
    from flows.backup.full_backup import full_backup
    from flows.backup.incremental_backup import incremental_backup
    from scholar_ops.reports import human_bytes

    postgres = args.postgres
    if not (postgres or args.redis or args.chroma or args.files):
        postgres = [DEFAULT_TARGET]
    flow = full_backup if args.full else incremental_backup
    kwargs: dict[str, Any] = {
        "postgres_targets": postgres or [],
        "redis_targets": args.redis or [],
        "chroma_targets": args.chroma or [],
        "file_targets": args.files or [],
        "repository": args.repository,
    }
    if args.retention_days is not None:
        kwargs["retention_days"] = args.retention_days
    # A failing target raises BackupFailed, naming the failed and the succeeded targets.
    results = flow(**kwargs)
    for r in results:
        items = r.get("items") or f"{r.get('tables', 0)} tables"
        print(
            f"snapshot {r['short_id']} {r['component']}/{r['target']} {r['backup_type']}: {items}; "
            f"{human_bytes(r['size_bytes'])} read, {human_bytes(r['new_bytes'])} new, "
            f"{human_bytes(r['stored_bytes'])} stored in {r['duration_s']} s ({r['throughput_mb_s']} MB/s)"
        )
    return EXIT_OK


def cmd_drill(args: argparse.Namespace) -> int:
    from flows.backup.restore_drill import DrillFailed, restore_drill
    from scholar_ops.reports import drill_line

    postgres = args.postgres
    if not (postgres or args.redis or args.chroma or args.files):
        postgres = [DEFAULT_TARGET]
    try:
        outcomes = restore_drill(
            postgres_targets=postgres or [],
            redis_targets=args.redis or [],
            chroma_targets=args.chroma or [],
            file_targets=args.files or [],
            repository=args.repository,
            monitoring=args.monitoring,
            scratch_dir=args.scratch_dir,
        )
    except DrillFailed as e:
        for o in e.outcomes:
            print(drill_line(o))
        failed = [f"{o['component']}/{o['target']}" for o in e.outcomes if not o["ok"]]
        print(
            f"scholar-ops drill: {len(failed)} of {len(e.outcomes)} restore drills failed: "
            + ", ".join(failed),
            file=sys.stderr,
        )
        return EXIT_FAILED
    for o in outcomes:
        print(drill_line(o))
    return EXIT_OK


def cmd_metrics_export(args: argparse.Namespace) -> int:
    from flows.monitoring.export_metrics import metrics_export

    result = metrics_export(monitoring=args.monitoring)
    for group in result["groups"]:
        print(f"pushed   {group}")
    for name, ok in sorted(result["collectors"].items()):
        print(f"collector {name}: {'ok' if ok else 'FAILED'}")
    for name, error in sorted(result["errors"].items()):
        print(f"scholar-ops metrics export: collector {name}: {error}", file=sys.stderr)
    return EXIT_OK


def cmd_metrics_forget(args: argparse.Namespace) -> int:
    from monitoring import names
    from monitoring.push import delete_group
    from tasks.metrics import load_monitoring

    settings = load_monitoring(args.monitoring)
    if settings is None:
        raise ConfigError(
            f"no MonitoringSettings block {args.monitoring!r} and no SCHOLAR_OPS_PUSHGATEWAY_URL: "
            "nothing to forget"
        )
    key = {"component": args.component, "target": args.target}
    for job in (names.JOB_BACKUP, names.JOB_DRILL, names.JOB_DATABASES):
        delete_group(settings.pushgateway_url, job, key, auth=settings.push_auth)
        print(f"deleted  {job}{{component={args.component},target={args.target}}}")
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
    cols = [
        "id",
        "time",
        "component",
        "target",
        "type",
        "size",
        "stored",
        "retention_until",
        "group",
    ]
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols).rstrip())
    print(f"{len(rows)} snapshots")
    return EXIT_OK


# Options of `restore` that only some components take: dest -> (flag, components).
_RESTORE_ONLY = {
    "clean": ("--clean", ("postgres",)),
    "schemas": ("--schema", ("postgres",)),
    "tables": ("--table", ("postgres",)),
    "jobs": ("--jobs", ("postgres",)),
    "no_owner": ("--no-owner", ("postgres",)),
    "existing": ("--existing", ("redis", "chroma")),
    "dbs": ("--db", ("redis",)),
    "collections": ("--collection", ("chroma",)),
    "paths": ("--path", ("files",)),
    "overwrite": ("--overwrite", ("redis", "files")),
}


def _restore_component(args: argparse.Namespace) -> str:
    """--component, else the snapshot's own (opening the repository), else postgres for 'latest'."""
    if args.snapshot == "latest":
        return str(args.component or "postgres")
    from tasks.common import load_repository

    snap = load_repository(args.repository).open().find_snapshot(args.snapshot)
    if args.component and args.component != snap.component:
        raise ConfigError(
            f"snapshot {snap.short_id} is a {snap.component} snapshot, not {args.component}: "
            "drop --component or pick another snapshot"
        )
    return snap.component


def _check_restore_options(args: argparse.Namespace, component: str) -> None:
    for dest, (flag, components) in _RESTORE_ONLY.items():
        if getattr(args, dest) not in (None, False) and component not in components:
            raise ConfigError(
                f"{flag} does not apply to a {component} restore (only {'/'.join(components)})"
            )
    if component == "postgres":
        if not args.to:
            raise ConfigError(
                "restoring a postgres snapshot needs --to DATABASE (the database to restore "
                "into; created if missing)"
            )
        return
    if component == "files":
        if not args.to or args.target:
            raise ConfigError(
                "restoring a files snapshot needs --to DIR (a missing or empty directory, or "
                "--overwrite), and no --target"
            )
        return
    if bool(args.to) == bool(args.target):
        where = (
            "--target NAME (a Redis target block: restore into that running server) or --to DIR "
            "(write dump.rdb there for a new server)"
            if component == "redis"
            else "--target NAME (a Chroma target block: restore into that store) or --to DIR "
            "(a new embedded Chroma directory)"
        )
        raise ConfigError(f"restoring a {component} snapshot needs exactly one of {where}")
    if component == "redis":
        if args.to and (args.existing is not None or args.dbs):
            raise ConfigError(
                "--existing and --db are for a restore into a running server (--target); "
                "a dump.rdb written with --to holds every database"
            )
        if args.target and args.overwrite:
            raise ConfigError(
                "--overwrite replaces a dump.rdb written with --to; into a server, use --existing"
            )
    if component == "chroma" and args.existing == "flush":
        raise ConfigError("--existing for chroma is fail, skip or replace (flush is for redis)")


def _not_empty_message(args: argparse.Namespace, component: str, msg: str) -> str:
    """The restore's TargetNotEmpty message, with the command-line option that overrides it.

    The restore functions' advice names their own arguments (``existing='replace'``,
    ``overwrite=True``): it is replaced by the option to pass here."""
    if component == "postgres" or "--" in msg:
        return msg  # it names the option already (postgres: --clean)
    if "existing=" in msg or (component == "redis" and args.target):
        hint = (
            "pass --existing skip (keep its keys), replace (overwrite keys of the same name) "
            "or flush (empty those databases first)"
            if component == "redis"
            else "pass --existing replace (delete and recreate those collections) or skip, "
            "or restore elsewhere"
        )
    elif "overwrite=" in msg:
        hint = (
            "pass --overwrite to replace it, or --to another directory"
            if component == "redis"
            else "pass --overwrite to restore over what is there, or --to an empty directory"
        )
    else:
        return msg  # nothing overrides it (e.g. a physical Chroma copy needs a new directory)
    found = [i for i in (msg.find("existing="), msg.find("overwrite=")) if i >= 0]
    if found:  # drop the restore function's own advice: the sentence holding it
        cut = max(msg.rfind(sep, 0, min(found)) for sep in (". ", "; ", ": "))
        if cut > 0:
            msg = msg[:cut]
    return f"{msg.rstrip('. ')}; {hint}"


def cmd_restore(args: argparse.Namespace) -> int:
    component = _restore_component(args)
    _check_restore_options(args, component)
    snapshot, before, source_target = args.snapshot, args.before, args.source_target
    if component != "postgres" and snapshot == "latest" and before is not None:
        # Only the postgres flow takes `before`: pick the snapshot here for the others.
        from tasks.common import load_repository

        snap = (
            load_repository(args.repository)
            .open()
            .find_snapshot("latest", component=component, target=source_target, before=before)
        )
        snapshot, source_target = snap.backup_id, None
    to = args.to if component == "postgres" or not args.to else os.path.abspath(args.to)
    try:
        result = _run_restore(args, component, snapshot, to, source_target)
    except Exception as e:
        not_empty = _find_in_chain(e, TargetNotEmpty)
        if not_empty is None:
            raise
        msg = str(not_empty).strip().splitlines()[0] if str(not_empty).strip() else "not empty"
        raise TargetNotEmpty(_not_empty_message(args, component, msg)) from e
    _print_restore(component, result)
    return EXIT_OK


def _run_restore(
    args: argparse.Namespace,
    component: str,
    snapshot: str,
    to: str | None,
    source_target: str | None,
) -> dict[str, Any]:
    from flows.backup.restore import (
        chroma_restore,
        files_restore,
        postgres_restore,
        redis_restore,
    )

    repository = args.repository
    if component == "postgres":
        assert to is not None
        return postgres_restore(
            target=args.target or DEFAULT_TARGET,
            database=to,
            before=args.before,
            clean=args.clean,
            schemas=args.schemas,
            tables=args.tables,
            jobs=args.jobs if args.jobs is not None else 2,
            no_owner=args.no_owner,
            snapshot=snapshot,
            repository=repository,
            source_target=source_target,
        )
    if component == "redis":
        return redis_restore(
            target=args.target,
            rdb_dir=to,
            existing=args.existing or "fail",
            dbs=args.dbs,
            overwrite=args.overwrite,
            snapshot=snapshot,
            repository=repository,
            source_target=source_target,
        )
    if component == "chroma":
        return chroma_restore(
            target=args.target,
            directory=to,
            collections=args.collections,
            existing=args.existing or "fail",
            snapshot=snapshot,
            repository=repository,
            source_target=source_target,
        )
    assert to is not None
    return files_restore(
        destination=to,
        paths=args.paths,
        overwrite=args.overwrite,
        snapshot=snapshot,
        repository=repository,
        source_target=source_target,
    )


def _print_restore(component: str, result: dict[str, Any]) -> None:
    from scholar_ops.reports import human_bytes

    short = str(result["snapshot_id"])[:8]
    if component == "postgres":
        print(
            f"restored snapshot {short} into {result['database']}: {result['tables']} tables, "
            f"{result['rows']} rows in {result['duration_s']} s; row counts match the backup"
        )
    elif component == "redis" and "restored" in result:
        extra = ""
        if skipped := sum(int(n) for n in (result.get("skipped") or {}).values()):
            extra += f", {skipped} existing keys kept"
        if result.get("expired"):
            extra += f", {result['expired']} expired since the backup"
        print(
            f"restored snapshot {short} into {result['destination']}: {result['restored']} keys "
            f"in {len(result.get('dbs') or [])} databases{extra} in {result['duration_s']} s, "
            "verified"
        )
    elif component == "redis":
        print(
            f"restored snapshot {short} into {result['destination']}: {result['keys']} keys, "
            f"{human_bytes(result['bytes'])}; verified with a throwaway server"
        )
    elif component == "chroma":
        extra = "".join(f", {len(result[k])} {k}" for k in ("skipped", "replaced") if result.get(k))
        print(
            f"restored snapshot {short} into {result['destination']}: "
            f"{len(result['collections'])} collections, {result['records']} records{extra} "
            f"in {result['duration_s']} s, verified"
        )
    else:
        print(
            f"restored snapshot {short} into {result['destination']}: {result['files']} files, "
            f"{result['dirs']} dirs, {result['symlinks']} symlinks, "
            f"{human_bytes(result['bytes'])} in {result['duration_s']} s"
        )
    for w in result.get("warnings") or []:
        print(f"warning: {w}", file=sys.stderr)


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


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, then its causes (or contexts), at most 11 deep."""
    chain: list[BaseException] = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        assert nxt is not None
        chain.append(nxt)
        if len(chain) > 10:
            break
    return chain


def _find_in_chain(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _exit_code(exc: BaseException) -> int:
    for e in _chain(exc):
        if isinstance(e, IntegrityError):
            return EXIT_DAMAGED
        if isinstance(e, RepositoryLocked):
            return EXIT_LOCKED
        if isinstance(e, ConfigError | WrongKey | SnapshotNotFound | TargetNotEmpty):
            return EXIT_USAGE
        automations = sys.modules.get("scholar_ops.automations")
        if automations is not None and isinstance(e, automations.AutomationsError):
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
