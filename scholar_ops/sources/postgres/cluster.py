"""Throwaway PostgreSQL clusters from the local binaries (restore drills, demo, benchmarks, tests).

`throwaway_cluster()` runs initdb + pg_ctl in a directory on a free loopback
port, with durability switched off for speed, and stops it at the end. It never
touches a PostgreSQL already running on the machine (port 5432).

PostgreSQL refuses to run as root: when the tests run as root, the server runs as
the unprivileged system user `postgres` (created by Debian's package, or by
scripts/install-deps.sh) through `runuser`. Its directory is then made under the
system temp dir rather than pytest's basetemp, because pytest keeps
/tmp/pytest-of-root at mode 0700, where that user could not reach it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from scholar_ops.sources.process import free_port, log_tail, wait_for_port

PG_OS_USER = "postgres"  # the unprivileged OS user that runs the server when we are root
PG_SUPERUSER = "postgres"  # the database superuser made by initdb
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_TIMEOUT = 120.0  # seconds, for every subprocess call


def find_pg_bin_dir() -> Path:
    """The directory of the PostgreSQL server binaries.

    initdb on PATH first (a symlink such as /usr/local/bin/initdb is resolved, so the
    directory also holds the matching pg_dump/pg_restore), else the highest
    /usr/lib/postgresql/<version>/bin.
    """
    found = shutil.which("initdb")
    if found:
        real_dir = Path(os.path.realpath(found)).parent
        if all((real_dir / b).exists() for b in _SERVER_BINARIES):
            return real_dir
        link_dir = Path(found).parent
        if all(shutil.which(b) for b in _SERVER_BINARIES):
            return link_dir

    def version(d: str) -> tuple[int, ...]:
        v = Path(d).parent.name
        return tuple(int(x) for x in re.findall(r"\d+", v)) or (0,)

    candidates = [
        d
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if all(os.access(Path(d) / b, os.X_OK) for b in _SERVER_BINARIES)
    ]
    if candidates:
        return Path(max(candidates, key=version))
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor in "
        "/usr/lib/postgresql/*/bin: run `make deps` (scripts/install-deps.sh)"
    )


def pg_tool(name: str, bin_dir: Path | None = None) -> str:
    """Path of a PostgreSQL client tool (pg_dump, pg_restore, psql), preferring the one
    that matches the server's version."""
    if bin_dir is not None and (bin_dir / name).exists():
        return str(bin_dir / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make deps`")
    return found


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    bin_dir: Path
    datadir: Path
    sockdir: Path

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL, accepted by psycopg and by pg_dump/pg_restore --dbname."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def tool(self, name: str) -> str:
        """Path of pg_dump / pg_restore / psql matching this server."""
        return pg_tool(name, self.bin_dir)

    def create_database(self, name: str) -> str:
        """Create database `name` and return its dsn."""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _run_as_owner() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run the server as an unprivileged user."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        pw = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root but OS user {PG_OS_USER!r} does not exist: run `make deps`"
        ) from None
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", PG_OS_USER, "--"], pw.pw_uid, pw.pw_gid


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )


def _check_reachable(root: Path, uid: int, gid: int) -> None:
    """PostgreSQL runs as ``uid``: every directory above ``root`` must let it through."""
    for d in [root.resolve(), *root.resolve().parents]:
        st = d.stat()
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            raise RuntimeError(
                f"PostgreSQL runs as user {PG_SUPERUSER!r} (uid {uid}), which cannot enter {d} "
                f"(mode {st.st_mode & 0o777:o}): put the cluster elsewhere, or `chmod o+x {d}`"
            )


def reachable_root(preferred: Path) -> Path:
    """``preferred``, or, when the server would run as the ``postgres`` user and that user
    cannot enter a directory above it (root's mode-700 home), a directory of its own
    under the system's temporary directory, named after ``preferred``."""
    _, uid, gid = _run_as_owner()
    if uid is None or gid is None:
        return preferred
    try:
        _check_reachable(preferred.parent, uid, gid)
        return preferred
    except RuntimeError:
        digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"scholar-ops-pg-{digest}"


def _start_server(
    root: Path,
    bin_dir: Path,
    prefix: list[str],
    uid: int | None,
    gid: int | None,
    settings: dict[str, str] | None = None,
) -> PgServer:
    datadir = root / "data"
    sockdir = root / "sock"
    logfile = root / "postgres.log"
    sockdir.mkdir()
    if uid is not None and gid is not None:
        _check_reachable(root, uid, gid)
        os.chown(sockdir, uid, gid)
    _run(
        [
            *prefix,
            str(bin_dir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        cwd=root,
    )
    if settings:
        _write_settings(datadir, settings)
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken before the server binds it
        port = free_port()
        opts = (
            f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        try:
            _run(
                [
                    *prefix,
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(datadir),
                    "-l",
                    str(logfile),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    opts,
                ],
                cwd=root,
            )
            wait_for_port(port, timeout=30)
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as e:
            last_error = RuntimeError(f"{e}\n--- postgres.log ---\n{log_tail(logfile)}")
            _stop_server(datadir, bin_dir, prefix, root)
            continue
        return PgServer(
            host="127.0.0.1",
            port=port,
            user=PG_SUPERUSER,
            bin_dir=bin_dir,
            datadir=datadir,
            sockdir=sockdir,
        )
    raise RuntimeError(f"could not start PostgreSQL: {last_error}")


def _write_settings(datadir: Path, settings: dict[str, str]) -> None:
    """Append ``settings`` to postgresql.conf (single-quoted values; quotes doubled)."""
    lines = [f"{k} = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in settings.items()]
    conf = datadir / "postgresql.conf"
    with conf.open("a", encoding="utf-8") as f:
        f.write("\n# scholar-ops throwaway_cluster(settings=...)\n" + "\n".join(lines) + "\n")


def _stop_server(datadir: Path, bin_dir: Path, prefix: list[str], cwd: Path) -> None:
    if not (datadir / "postmaster.pid").exists():
        return
    for mode in ("fast", "immediate"):
        proc = subprocess.run(
            [
                *prefix,
                str(bin_dir / "pg_ctl"),
                "stop",
                "-D",
                str(datadir),
                "-m",
                mode,
                "-w",
                "-t",
                "30",
            ],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode == 0:
            return


@contextmanager
def throwaway_cluster(
    root: Path | None = None,
    *,
    keep_data: bool = False,
    settings: dict[str, str] | None = None,
) -> Iterator[PgServer]:
    """A running cluster in ``root`` (a fresh temporary directory by default); stopped on exit.

    With ``keep_data`` the data directory stays for a later `pg_ctl start`. ``settings``
    go into postgresql.conf before the first start (e.g. ``wal_level``, ``archive_mode``,
    ``archive_command``).
    """
    bin_dir = find_pg_bin_dir()
    prefix, uid, gid = _run_as_owner()
    made = root is None
    root = Path(tempfile.mkdtemp(prefix="scholar-ops-pg-")) if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    try:
        if uid is not None and gid is not None:
            os.chown(root, uid, gid)
        os.chmod(root, 0o755)  # the caller (root or the same user) reads the logs
        server = _start_server(root, bin_dir, prefix, uid, gid, settings)
        try:
            yield server
        finally:
            _stop_server(server.datadir, bin_dir, prefix, root)
    finally:
        if made or not keep_data:
            shutil.rmtree(root, ignore_errors=True)


# -- for restores into a new data directory (sources/postgres/pitr.py) ----------------------


def server_os_user() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) that PostgreSQL's server programs run with: ``runuser -u
    postgres --`` and that user's ids when we are root, else nothing (ourselves)."""
    return _run_as_owner()


def check_reachable(path: Path, uid: int, gid: int) -> None:
    """A one-line RuntimeError when the user ``uid`` cannot enter ``path`` and its parents."""
    _check_reachable(path, uid, gid)
