"""`scholar-ops setup`: the blocks (repository, master key, targets, monitoring) and the repository.

Safe to run again: it opens the repository (or creates it) before it saves
anything, and it never replaces a block that holds different values (a Secret
block's key, the repository block, a target, the monitoring settings) unless
``--force`` is given; without it, it says what would change and exits 2 having
changed nothing. Run twice with the same arguments, it changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from scholar_ops.cli.common import (
    DEFAULT_CHROMA_TARGET,
    DEFAULT_MASTER_SECRET,
    DEFAULT_MONITORING,
    DEFAULT_REDIS_TARGET,
    DEFAULT_TARGET,
    EXIT_OK,
    check_block_name,
    env,
    make_block,
)
from scholar_ops.cli.direct import Profile
from scholar_ops.vault.errors import ConfigError, WrongKey


def register(sub: Any) -> None:
    s = sub.add_parser(
        "setup",
        help="create the blocks (repository, master key, targets) and the repository",
        description=(
            "Create the repository block, the master key Secret block and the repository, and "
            "the target blocks given: PostgreSQL (--pg-database), Redis (--redis-host/--redis-port), "
            "Chroma (--chroma-path or --chroma-host/--chroma-port) and files (--files NAME=PATH); "
            "at least one target (or --repository-only: a second copy's destination). "
            "Passwords and tokens come from the environment and go into "
            "Secret blocks that the targets name. An existing repository is opened first (with "
            "the key given, else the one in the Secret block); blocks that already exist with "
            "other values are left alone unless --force is given."
        ),
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="replace existing blocks (the master key Secret block included) that hold "
        "different values",
    )
    s.add_argument(
        "--repository-only",
        action="store_true",
        help="only the repository block, its master key and the repository, no targets nor "
        "monitoring settings: a second copy's destination (`copy --to`); libpq's, Redis's and "
        "the Pushgateway's environment variables are then ignored",
    )
    g = s.add_argument_group("repository (one of)")
    g.add_argument(
        "--repo-path",
        default=env("SCHOLAR_OPS_REPOSITORY_PATH"),
        help="local directory (env SCHOLAR_OPS_REPOSITORY_PATH)",
    )
    g.add_argument(
        "--s3-bucket",
        default=env("SCHOLAR_OPS_S3_BUCKET"),
        help="S3 bucket (env SCHOLAR_OPS_S3_BUCKET)",
    )
    g.add_argument(
        "--s3-prefix",
        default=env("SCHOLAR_OPS_S3_PREFIX", ""),
        help="folder in the bucket (env SCHOLAR_OPS_S3_PREFIX)",
    )
    g.add_argument(
        "--s3-endpoint-url",
        default=env("SCHOLAR_OPS_S3_ENDPOINT_URL"),
        help="S3-compatible endpoint (env SCHOLAR_OPS_S3_ENDPOINT_URL)",
    )
    g.add_argument(
        "--s3-region",
        default=env("AWS_DEFAULT_REGION", "us-east-1"),
        help="region (env AWS_DEFAULT_REGION)",
    )
    k = s.add_argument_group("master key")
    k.add_argument(
        "--master-key-secret",
        default=DEFAULT_MASTER_SECRET,
        help="Secret block to keep it in (default %(default)s)",
    )
    k.add_argument("--master-key-file", default=env("SCHOLAR_OPS_MASTER_KEY_FILE"),
                   help="read the key from this file (env SCHOLAR_OPS_MASTER_KEY_FILE; or set "
                        "SCHOLAR_OPS_MASTER_KEY); without either, the key in the Secret block is "
                        "used, and for a new repository without one a random key is generated "
                        "and written to --new-key-file")  # fmt: skip
    k.add_argument(
        "--new-key-file",
        default="scholar-ops-master.key",
        help="where a generated key is written (mode 0600; never overwritten)",
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
        help=f"name of the PostgreSQL target block (default {DEFAULT_TARGET}); snapshots and "
        "metrics are named after it",
    )
    d.add_argument("--pg-host", default=env("PGHOST", "127.0.0.1"))
    d.add_argument("--pg-port", type=int, default=env("PGPORT", "5432"))
    d.add_argument("--pg-database", default=env("PGDATABASE"))
    d.add_argument("--pg-user", default=env("PGUSER", "postgres"))
    d.add_argument("--pg-sslmode", default=env("PGSSLMODE", "prefer"))
    d.add_argument(
        "--pg-cluster",
        metavar="NAME",
        help="also a PostgreSQL cluster block NAME on the same --pg-host/--pg-port/--pg-user, "
        "for physical base backups and point-in-time recovery (`backup --postgres-base NAME`; "
        "its role needs REPLICATION, the server archive_command = 'scholar-ops-wal ... --resident push %%p')",
    )
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
        "--redis-host", default=env("REDIS_HOST"), help="host (env REDIS_HOST; default 127.0.0.1)"
    )
    rg.add_argument(
        "--redis-port",
        type=int,
        default=env("REDIS_PORT"),
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
        "--chroma-path",
        metavar="DIR",
        help="an embedded store: its PersistentClient directory (must exist)",
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
        help="a files target block NAME for the directory PATH (repeatable); snapshots are "
        "named NAME. A tree holding the repository leaves the repository out.",
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
        default=env("SCHOLAR_OPS_PUSHGATEWAY_URL"),
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


@dataclass
class Planned:
    """A block setup means to save: its kind (for people), name, value and report line."""

    kind: str
    name: str
    block: Any
    line: str
    secret_name: str | None = None  # the Secret block holding its password or token
    secret_value: str | None = field(default=None, repr=False)
    secret_kind: str = "password"
    status: str = "created"  # created | unchanged | replaced


# -- planning: every block is built and checked before anything is written --------------


def _plan_pg_block(
    args: argparse.Namespace, cls: Any, kind: str, name: str, database: str, line: str
) -> Planned:
    """A PostgreSQL block (target or cluster) on --pg-host/--pg-port/--pg-user; the password
    from PGPASSWORD goes into the Secret block NAME-password."""
    pw = env("PGPASSWORD")
    secret = f"{name}-password" if pw else None
    block = make_block(
        cls,
        f"{kind} {name!r}",
        host=args.pg_host,
        port=args.pg_port,
        database=database,
        user=args.pg_user,
        password_secret=secret,
        sslmode=args.pg_sslmode,
        label=name,
    )
    return Planned(kind, name, block, line, secret, pw)


def _plan_postgres(args: argparse.Namespace) -> Planned | None:
    from blocks.postgres import PostgresTarget

    if not args.pg_database:
        if args.target:
            raise ConfigError(f"--target {args.target}: a PostgreSQL target needs --pg-database")
        return None
    name = check_block_name(args.target or DEFAULT_TARGET, "--target")
    line = f"postgres {args.pg_user}@{args.pg_host}:{args.pg_port}/{args.pg_database}"
    return _plan_pg_block(args, PostgresTarget, "PostgreSQL target", name, args.pg_database, line)


def _plan_pg_cluster(args: argparse.Namespace) -> Planned | None:
    from blocks.postgres import PostgresClusterTarget

    if not args.pg_cluster:
        return None
    name = check_block_name(args.pg_cluster, "--pg-cluster")
    line = f"postgres cluster {args.pg_user}@{args.pg_host}:{args.pg_port} (base backups)"
    database = args.pg_database or "postgres"
    return _plan_pg_block(args, PostgresClusterTarget, "PostgreSQL cluster", name, database, line)


def _plan_redis(args: argparse.Namespace) -> Planned | None:
    from blocks.redis import RedisTarget

    if args.redis_host is None and args.redis_port is None:
        for option, value in (("--redis-target", args.redis_target),
                              ("--redis-username", args.redis_username)):  # fmt: skip
            if value:
                raise ConfigError(f"{option}: a Redis target needs --redis-host or --redis-port")
        return None
    name = check_block_name(args.redis_target or DEFAULT_REDIS_TARGET, "--redis-target")
    host = args.redis_host or "127.0.0.1"
    port = args.redis_port if args.redis_port is not None else 6379
    pw = env("REDISCLI_AUTH") or env("REDIS_PASSWORD")
    secret = f"{name}-password" if pw else None
    block = make_block(
        RedisTarget,
        f"Redis target {name!r}",
        host=host,
        port=port,
        username=args.redis_username,
        password_secret=secret,
        label=name,
    )
    user = f"{args.redis_username}@" if args.redis_username else ""
    return Planned("Redis target", name, block, f"redis {user}{host}:{port}", secret, pw)


def _plan_chroma(args: argparse.Namespace) -> Planned | None:
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
    name = check_block_name(args.chroma_target or DEFAULT_CHROMA_TARGET, "--chroma-target")
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
        token = env("CHROMA_TOKEN")
        secret = f"{name}-token" if token else None
        fields: dict[str, Any] = {"host": host, "port": port, "token_secret": secret}
        line = f"chroma server {host}:{port}"
    else:
        path = os.path.abspath(os.path.expanduser(args.chroma_path))
        if not os.path.isdir(path):
            raise ConfigError(
                f"--chroma-path {path}: "
                + ("is not a directory" if os.path.exists(path) else "does not exist")
                + ": give the directory of the embedded Chroma store (its PersistentClient path)"
            )
        fields = {"path": path, "physical": args.chroma_physical}
        line = f"chroma embedded {path}" + (" (physical copies)" if args.chroma_physical else "")
    block = make_block(ChromaTarget, f"Chroma target {name!r}", label=name, **fields)
    return Planned("Chroma target", name, block, line, secret, token, "token")


def _plan_files(args: argparse.Namespace, repo_path: str | None) -> tuple[list[Planned], list[str]]:
    """The files targets, and warnings (a tree that holds the repository leaves it out)."""
    from blocks.files import FilesTarget

    if args.exclude and not args.files:
        raise ConfigError("--exclude applies to --files NAME=PATH targets: give at least one")
    planned: list[Planned] = []
    warnings: list[str] = []
    for spec in args.files or []:
        name, sep, raw = spec.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise ConfigError(f"--files takes NAME=PATH (e.g. uploads=/srv/uploads), not {spec!r}")
        check_block_name(name, "--files")
        if any(p.name == name for p in planned):
            raise ConfigError(f"--files {name}=... is given twice")
        path = os.path.realpath(os.path.expanduser(raw))
        if path == "/":
            raise ConfigError(
                f"--files {name}=/: a files target is a directory tree of the application "
                "(uploads, configuration), not the whole machine: give that directory"
            )
        exclude = list(args.exclude or [])
        if repo_path is not None:
            repo = os.path.realpath(repo_path)
            if repo == path or path.startswith(repo + os.sep):
                raise ConfigError(
                    f"--files {name}={raw}: that directory is (inside) the repository {repo}"
                )
            if repo.startswith(path + os.sep):
                rel = "/" + os.path.relpath(repo, path).replace(os.sep, "/") + "/"
                exclude.append(rel)
                warnings.append(
                    f"files target {name}: {path} holds the repository {repo}; it is left "
                    f"out (exclude {rel})"
                )
        block = make_block(
            FilesTarget, f"files target {name!r}", path=path, exclude=exclude, label=name
        )
        line = f"files {path}" + (f" (exclude {', '.join(block.exclude)})" if block.exclude else "")
        if not os.path.isdir(path):
            line += " [not a directory on this machine yet]"
        planned.append(Planned("files target", name, block, line))
    return planned, warnings


def _plan_monitoring(args: argparse.Namespace, targets: list[Planned]) -> Planned | None:
    if not args.pushgateway_url:
        return None
    from pydantic import ValidationError

    from blocks.monitoring import MonitoringSettings

    def named(kind: str) -> list[str]:
        return [p.name for p in targets if p.kind == kind]

    try:
        block = MonitoringSettings(
            pushgateway_url=args.pushgateway_url,
            repository=args.repository,
            postgres_targets=named("PostgreSQL target"),
            redis_targets=named("Redis target"),
            chroma_targets=named("Chroma target"),
        )
    except ValidationError as e:
        raise ConfigError(f"--pushgateway-url: {e.errors()[0]['msg']}") from None
    return Planned(
        "monitoring settings",
        args.monitoring_block,
        block,
        f"pushes to {args.pushgateway_url}",
    )


def _repository_block(args: argparse.Namespace) -> Any:
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters
    from pydantic import SecretStr

    from blocks.repository import BackupRepository

    s3 = None
    if args.s3_bucket:
        creds = AwsCredentials(
            aws_access_key_id=env("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=SecretStr(sk) if (sk := env("AWS_SECRET_ACCESS_KEY")) else None,
            region_name=args.s3_region,
            aws_client_parameters=AwsClientParameters(endpoint_url=args.s3_endpoint_url),
        )
        s3 = S3Bucket(bucket_name=args.s3_bucket, bucket_folder=args.s3_prefix, credentials=creds)
    local_path = args.repo_path
    if local_path and "://" not in local_path:
        local_path = os.path.abspath(os.path.expanduser(local_path))  # flows may run elsewhere
    return make_block(
        BackupRepository,
        f"repository block {args.repository!r}",
        local_path=local_path,
        s3_bucket=s3,
        master_key_secret=args.master_key_secret,
        compression=args.compression,
        compression_level=args.compression_level,
    )


# -- comparing with what is saved ---------------------------------------------------------


def _comparable(value: Any) -> Any:
    """A block's data as plain values; secrets as digests, so they compare but never print."""
    from pydantic import BaseModel, SecretBytes, SecretStr

    if isinstance(value, SecretStr | SecretBytes):
        raw = value.get_secret_value()
        raw_bytes = raw.encode() if isinstance(raw, str) else raw
        return ("<secret>", hashlib.sha256(raw_bytes).hexdigest())
    if isinstance(value, BaseModel):
        value = {k: getattr(value, k) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {
            str(k): _comparable(v)
            for k, v in value.items()
            if not str(k).startswith("_") and k != "block_type_slug"
        }
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    return value


def _differences(old: Any, new: Any, name: str) -> list[str]:
    a, b = _comparable(old), _comparable(new)
    if a.get("label") is None and b.get("label") == name:
        a["label"] = name  # an unlabelled target is already named after its block
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if "<secret>" in repr(a.get(key)) or "<secret>" in repr(b.get(key)):
            out.append(f"{key} (a secret) changes")
        else:
            out.append(f"{key} {a.get(key)!r} -> {b.get(key)!r}")
    return out


def _load_existing(cls: Any, name: str) -> tuple[Any | None, str | None]:
    """(the saved block, None), (None, None) when there is none, or (None, why) when it
    exists but cannot be read as this block type."""
    from pydantic import ValidationError

    try:
        return cls.load(name, _sync=True), None
    except ValidationError as e:
        return None, f"cannot be read ({e.error_count()} invalid field(s))"
    except ValueError:
        return None, None  # no such block


def _read_secret(name: str) -> str | None:
    """The raw string in Secret block ``name``, None when there is no such block."""
    from prefect.blocks.system import Secret

    try:
        secret = cast("Secret[str]", Secret.load(name, _sync=True))  # type: ignore[call-arg]
    except ValueError:
        return None
    raw = secret.value.get_secret_value()
    if not isinstance(raw, str):
        raise ConfigError(f"the Secret block {name!r} holds a {type(raw).__name__}, not a string")
    return raw


def _compare(planned: Planned, conflicts: list[str]) -> None:
    existing, unreadable = _load_existing(type(planned.block), planned.name)
    if unreadable is not None:
        planned.status = "replaced"
        conflicts.append(f"{planned.kind} block {planned.name!r} {unreadable}")
        return
    if existing is None:
        planned.status = "created"
        return
    diffs = _differences(existing, planned.block, planned.name)
    planned.status = "replaced" if diffs else "unchanged"
    if diffs:
        conflicts.append(f"{planned.kind} block {planned.name!r}: {'; '.join(diffs)}")


def _check_repository_only(args: argparse.Namespace) -> None:
    """--repository-only takes no target option given on the command line (those that
    default from the environment, libpq's and Redis's, are ignored)."""
    given = [
        option
        for option, value in (
            ("--files", args.files),
            ("--exclude", args.exclude),
            ("--target", args.target),
            ("--pg-cluster", args.pg_cluster),
            ("--redis-target", args.redis_target),
            ("--redis-username", args.redis_username),
            ("--chroma-target", args.chroma_target),
            ("--chroma-path", args.chroma_path),
            ("--chroma-host", args.chroma_host),
            ("--chroma-port", args.chroma_port),
            ("--chroma-physical", args.chroma_physical),
        )
        if value
    ]
    if given:
        raise ConfigError(
            f"--repository-only sets up a repository alone: leave out {', '.join(given)} "
            "(set the targets up with the first repository)"
        )


# -- the verb --------------------------------------------------------------------------


def write_key_file(path: Path, key: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists: setup never overwrites a key file; give it with "
            "--master-key-file, or name another one with --new-key-file"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")


def cmd_setup(args: argparse.Namespace) -> int:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from blocks import register_blocks
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository

    if bool(args.repo_path) == bool(args.s3_bucket):
        raise ConfigError(
            "setup needs exactly one of --repo-path or --s3-bucket (or their environment variables)"
        )
    repo_block = _repository_block(args)
    targets: list[Planned] = []
    warnings: list[str] = []
    monitoring: Planned | None = None
    if args.repository_only:
        _check_repository_only(args)
    else:
        files, warnings = _plan_files(args, repo_block.local_path)
        targets = [
            p
            for p in (
                _plan_postgres(args),
                _plan_pg_cluster(args),
                _plan_redis(args),
                _plan_chroma(args),
                *files,
            )
            if p
        ]
        if not targets:
            raise ConfigError(
                "setup needs at least one target: --pg-database (PostgreSQL), --pg-cluster NAME "
                "(PostgreSQL base backups), --redis-host or --redis-port (Redis), --chroma-path "
                "or --chroma-host (Chroma), or --files NAME=PATH; or --repository-only (a "
                "second copy's destination)"
            )
        monitoring = _plan_monitoring(args, targets)
    register_blocks()
    storage = repo_block.storage()

    # The master key: the one given, else the Secret block's, else (a new repository) a new one.
    key_file = args.master_key_file
    given = env("SCHOLAR_OPS_MASTER_KEY")
    if given is None and key_file:
        try:
            given = Path(key_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"--master-key-file {key_file}: {e.strerror}") from None
    saved_key = _read_secret(args.master_key_secret)
    exists = any(True for _ in storage.list("keys/"))
    key = given if given is not None else saved_key
    generated = False
    if key is None:
        if exists:
            raise ConfigError(
                f"{storage.location} already holds a repository, and neither a key "
                f"(--master-key-file or SCHOLAR_OPS_MASTER_KEY) nor the Secret block "
                f"{args.master_key_secret!r} gives its master key: pass its key; nothing was changed"
            )
        key = secrets.token_hex(32)
        generated = True
        new_key_file = Path(args.new_key_file)
        if new_key_file.exists():
            write_key_file(new_key_file, key)  # raises: never overwritten
    master = MasterKey.from_string(key)
    if exists:
        try:
            Repository.open(storage, master)
        except WrongKey:
            source = (
                "the key given"
                if given is not None
                else (f"the key in Secret block {args.master_key_secret!r}")
            )
            raise ConfigError(
                f"{source} does not open the repository at {storage.location}: pass the "
                "repository's key with --master-key-file (and --force to store it in the "
                "Secret block); nothing was changed"
            ) from None

    conflicts: list[str] = []
    secret_status = "created"
    if saved_key is not None:
        secret_status = "unchanged" if saved_key == key else "replaced"
        if saved_key != key:
            conflicts.append(
                f"Secret block {args.master_key_secret!r} holds another master key than the "
                "one given"
            )
    repo_planned = Planned("repository", args.repository, repo_block, repo_block.location)
    for p in (repo_planned, *targets, *([monitoring] if monitoring else [])):
        _compare(p, conflicts)
    secrets_planned: list[tuple[str, str]] = []
    for p in targets:
        if p.secret_name is not None and p.secret_value is not None:
            current = _read_secret(p.secret_name)
            if current is not None and current != p.secret_value:
                conflicts.append(f"Secret block {p.secret_name!r} holds another {p.secret_kind}")
            if current != p.secret_value:
                secrets_planned.append((p.secret_name, p.secret_value))
    if conflicts and not args.force:
        raise ConfigError(
            "setup would change existing blocks: "
            + "; ".join(conflicts)
            + ". Nothing was changed: re-run with --force to replace them"
        )

    # Everything checked: write.
    if generated:
        write_key_file(Path(args.new_key_file), key)
        print(
            f"generated a new master key in {args.new_key_file}: keep a copy offline; without "
            "it the backups are lost"
        )
    if secret_status != "unchanged":
        Secret(value=SecretStr(key)).save(args.master_key_secret, overwrite=True)
    if exists:
        repo = Repository.open(storage, master)
        repo_state = "opened"
    else:
        repo = repo_block.open(create=True)
        repo_state = "created"
    for name, value in secrets_planned:
        Secret(value=SecretStr(value)).save(name, overwrite=True)
    for p in (repo_planned, *targets, *([monitoring] if monitoring else [])):
        if p.status != "unchanged":
            p.block.save(p.name, overwrite=True)
    if repo_block.local_path is not None:
        key_path = Path(args.new_key_file) if generated else (Path(key_file) if key_file else None)
        Profile(
            block=args.repository,
            local_path=repo_block.local_path,
            master_key_secret=args.master_key_secret,
            master_key_file=str(key_path.resolve()) if key_path is not None else None,
            repo_id=repo.config.repo_id,
        ).save()

    print(
        f"repository  {args.repository}: {repo.location} ({repo_state}, key set "
        f"{repo.key.key_id_hex}) [{repo_planned.status}]"
    )
    print(f"master key  Secret block {args.master_key_secret} [{secret_status}]")
    for p in targets:
        kept = f" ({p.secret_kind} in Secret block {p.secret_name})" if p.secret_name else ""
        print(f"target      {p.name}: {p.line}{kept} [{p.status}]")
    if monitoring is not None:
        print(f"monitoring  {monitoring.name}: {monitoring.line} [{monitoring.status}]")
    for w in warnings:
        print(f"warning: {w}")
    return EXIT_OK
