"""WAL archiving for tests: a repository, key file and status file the PostgreSQL OS user can
use, and the archive_command / restore_command that run ``scholar_ops.walcmd`` as that user.

When the tests run as root, the server (and so archive_command) runs as ``postgres``
(cluster.py), which cannot enter root's mode-700 home: everything it touches lives in a
directory under the system's temp dir, owned by that user. The interpreter too: this
environment's Python when that user can run it, else the system's Python of the same
version with this environment's packages on PYTHONPATH (the pyenv interpreter under /root
is out of its reach).

    with wal_archive() as wa:
        with throwaway_cluster(settings=wa.archive_settings()) as server: ...
        wa.repo()  # the Repository, opened as the test's user
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import scholar_ops
from scholar_ops.sources.postgres.cluster import PG_OS_USER
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage

MASTER = "wal-tests-master-key-0123456789abcdef"
PROJECT_ROOT = Path(scholar_ops.__file__).resolve().parent.parent


def _pg_ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(PG_OS_USER)
    return pw.pw_uid, pw.pw_gid


def _runs_as_pg(cmd: list[str], env: dict[str, str] | None = None) -> bool:
    ids = _pg_ids()
    prefix = (
        []
        if ids is None
        else [shutil.which("runuser") or "/usr/sbin/runuser", "-u", PG_OS_USER, "--"]
    )
    try:
        proc = subprocess.run(
            [*prefix, *cmd],
            capture_output=True,
            timeout=60,
            check=False,
            cwd="/",
            env={**os.environ, **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def walcmd_prefix() -> list[str]:
    """argv prefix running ``python -m scholar_ops.walcmd`` as the PostgreSQL OS user."""
    probe = ["-c", "import scholar_ops.walcmd, zstandard, cryptography"]
    if _runs_as_pg([sys.executable, *probe]):
        return [sys.executable, "-m", "scholar_ops.walcmd"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = shutil.which(version, path="/usr/bin:/usr/local/bin")
    site = sysconfig.get_paths()["purelib"]
    pythonpath = f"{PROJECT_ROOT}:{site}"
    if system_python and _runs_as_pg([system_python, *probe], {"PYTHONPATH": pythonpath}):
        return ["env", f"PYTHONPATH={pythonpath}", system_python, "-m", "scholar_ops.walcmd"]
    pytest.skip(
        f"the {PG_OS_USER} OS user can run neither {sys.executable} nor a system {version} "
        "with this environment's packages: install the project where that user can reach it"
    )


@dataclass
class WalArchive:
    root: Path
    repo_dir: Path
    key_file: Path
    status_file: Path
    prefix: list[str]

    def repo(self) -> Repository:
        return Repository.open(LocalStorage(self.repo_dir), MasterKey.from_string(MASTER))

    def command(self, *args: str) -> str:
        """A shell command line for postgresql.conf (%p / %f left for PostgreSQL)."""
        argv = [
            *self.prefix,
            "--repository",
            str(self.repo_dir),
            "--key-file",
            str(self.key_file),
            "--status-file",
            str(self.status_file),
            "--key-cache-dir",
            str(self.root / "cache"),
            *args,
        ]
        return " ".join(a if a in ("%p", "%f") else shlex.quote(a) for a in argv)

    def archive_settings(self, archive_timeout: str = "0") -> dict[str, str]:
        return {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": self.command("push", "%p"),
            "archive_timeout": archive_timeout,
        }

    def restore_command(self) -> str:
        return self.command("fetch", "%f", "%p")

    def run(
        self, *args: str, cwd: Path | None = None, as_pg: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the command (as the PostgreSQL OS user by default) with these arguments."""
        ids = _pg_ids()
        runas = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", PG_OS_USER, "--"]
        argv = [*(runas if ids and as_pg else []), "sh", "-c", self.command(*args)]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=False, cwd=cwd or self.root
        )

    def give_to_pg(self) -> None:
        """Hand everything under root to the PostgreSQL OS user (after the test wrote to it)."""
        ids = _pg_ids()
        if ids is None:
            return
        for dirpath, dirs, files in os.walk(self.root):
            os.chown(dirpath, *ids)
            for f in files:
                os.chown(os.path.join(dirpath, f), *ids)
            del dirs


@contextmanager
def wal_archive() -> Iterator[WalArchive]:
    """A new repository (and key file) owned by the PostgreSQL OS user, removed afterwards."""
    prefix = walcmd_prefix()
    root = Path(tempfile.mkdtemp(prefix="scholar-ops-wal-", dir=tempfile.gettempdir()))
    try:
        os.chmod(root, 0o755)
        repo_dir = root / "repo"
        Repository.init(LocalStorage(repo_dir), MasterKey.from_string(MASTER))
        key_file = root / "master.key"
        key_file.write_text(MASTER + "\n")
        key_file.chmod(0o600)
        wa = WalArchive(root, repo_dir, key_file, root / "state" / "wal-status.json", prefix)
        (root / "state").mkdir()
        wa.give_to_pg()
        yield wa
    finally:
        shutil.rmtree(root, ignore_errors=True)
