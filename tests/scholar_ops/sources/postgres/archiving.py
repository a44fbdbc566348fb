"""A throwaway cluster archiving its WAL into a local repository through `scholar-ops-wal push`.

As root the server (and so archive_command / restore_command) runs as the OS user
``postgres``: the repository, the key file and the Python interpreter must be
reachable by it. The repository lives under a directory that user can enter
(cluster.reachable_root) and belongs to it; the interpreter is the system's
Python of the same version as the virtualenv's (whose own interpreter lives under
root's mode-700 home), given the virtualenv's site-packages and the checkout on
PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

import scholar_ops
from scholar_ops.sources.postgres.cluster import (
    PgServer,
    reachable_root,
    server_os_user,
    throwaway_cluster,
)
from scholar_ops.sources.postgres.conninfo import PgConnInfo
from scholar_ops.sources.postgres.pitr import restore_command_for
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

MASTER = "pitr-tests-master-key-0000000000"


def _python_for_server() -> tuple[str, str | None]:
    """(interpreter, PYTHONPATH) the server's OS user can run with the project importable."""
    _, uid, _ = server_os_user()
    if uid is None:
        return sys.executable, None
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin") or f"/usr/bin/{version}"
    site = sysconfig.get_paths()["purelib"]
    checkout = str(Path(scholar_ops.__file__).resolve().parent.parent)
    return system, f"{site}:{checkout}"


@dataclass
class Archiving:
    server: PgServer
    root: Path
    repo: Repository
    repo_dir: Path
    key_file: Path
    python: str
    pythonpath: str | None

    @property
    def conninfo(self) -> PgConnInfo:
        return PgConnInfo(host=self.server.host, port=self.server.port, user=self.server.user)

    def restore_command(self, repo_dir: Path | None = None) -> str:
        return restore_command_for(
            repo_dir or self.repo_dir,
            self.key_file,
            python=self.python,
            pythonpath=self.pythonpath,
            env=_resident_env(self.root),
        )

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.server.dsn(dbname), autocommit=True)

    def switch_and_wait(self, timeout: float = 60.0) -> str:
        """pg_switch_wal(), then wait until the finished segment is archived; its name."""
        with self.connect() as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert row is not None
            name = str(row[0])
            deadline = time.monotonic() + timeout
            while True:
                row = conn.execute(
                    "SELECT last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver"
                ).fetchone()
                assert row is not None
                if row[0] is not None and str(row[0]) >= name:
                    return name
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{name} not archived after {timeout} s (failed {row[1]}, last failed "
                        f"{row[2]}); see {self.server.datadir.parent / 'postgres.log'}"
                    )
                time.sleep(0.1)

    def fresh_dir(self, name: str) -> Path:
        """A path (not created) for a restored data directory, reachable by the server's user."""
        return self.root / name


def _give_to_server_user(path: Path) -> None:
    _, uid, gid = server_os_user()
    if uid is None or gid is None:
        return
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for n in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)


@contextmanager
def archiving_cluster(tmp: Path) -> Iterator[Archiving]:
    root = reachable_root(tmp / "pitr")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    try:
        repo_dir = root / "repo"
        repo = Repository.init(LocalStorage(repo_dir), MasterKey.from_string(MASTER))
        key_file = root / "master.key"
        key_file.write_text(MASTER)
        os.chmod(key_file, 0o600)
        _give_to_server_user(repo_dir)
        _give_to_server_user(key_file)
        python, pythonpath = _python_for_server()
        runtime = root / "walrt"  # the resident archivers' sockets: stopped at the end
        runtime.mkdir(mode=0o700)
        _give_to_server_user(runtime)
        push = restore_command_for(
            repo_dir, key_file, python=python, pythonpath=pythonpath, env=_resident_env(root)
        ).replace(" fetch %f %p", " push %p")
        settings = {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": push,
            "max_wal_senders": "4",
        }
        with throwaway_cluster(root / "cluster", settings=settings) as server:
            yield Archiving(server, root, repo, repo_dir, key_file, python, pythonpath)
    finally:
        for pid_file in (root / "walrt").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)


def _resident_env(root: Path) -> dict[str, str]:
    return {"SCHOLAR_OPS_WAL_RUNTIME_DIR": str(root / "walrt")}
