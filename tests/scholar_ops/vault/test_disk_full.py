"""A local repository's disk fills up during a backup (fault matrix, README "Fault matrix").

Twice: on a real full file system (a tmpfs of a few MB, when this test runs as root and
may mount one), and with every ``os.write`` into the repository failing with ENOSPC past
a byte budget (the same errno, raised one layer higher; runs everywhere). The backup fails with one line naming the
repository and what to do (exit code 1), commits no snapshot, leaves no temporary file,
the earlier snapshots stay whole, and once space is freed the next run succeeds."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scholar_ops.cli.common import EXIT_FAILED, first_line
from scholar_ops.cli.errors import exit_code
from scholar_ops.monitoring.backup_status import failure_reason
from scholar_ops.testbed.datagen import CompareSink, GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import StorageError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import LocalStorage
from scholar_ops.vault.storage.local import TEMP_PREFIX

MB = 1 << 20
DISK = 16 * MB


def _mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(where)],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.fixture(params=["tmpfs", "enospc-shim"])
def small_disk(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A directory on a file system of DISK bytes."""
    where = tmp_path / "disk"
    where.mkdir()
    if request.param == "tmpfs":
        if not _mount_tmpfs(where):
            pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
        try:
            yield where
        finally:
            subprocess.run(["umount", "-l", str(where)], check=False)
        return
    # No tmpfs here: ENOSPC once the files under `where` would pass DISK bytes.
    real_write = os.write

    def used() -> int:
        return sum(p.stat().st_size for p in where.rglob("*") if p.is_file())

    def write(fd: int, data: bytes | memoryview) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith(str(where)) and used() + len(data) > DISK:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    yield where


def _free(where: Path) -> int:
    if os.path.ismount(where):
        st = os.statvfs(where)
        return st.f_bavail * st.f_frsize
    return DISK - sum(p.stat().st_size for p in where.rglob("*") if p.is_file())


def test_a_full_disk_fails_the_backup_with_one_line_and_the_next_run_succeeds(
    small_disk: Path, master: MasterKey
) -> None:
    storage = LocalStorage(small_disk / "repo")
    repo = Repository.init(storage, master, pack_size=1 * MB)
    kept = backup_stream(repo, GeneratedStream(3 * MB, seed=21), component="c", target="t")
    # something else on the disk takes all but 256 KiB of what is left
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (_free(small_disk) - 256 * 1024))

    with pytest.raises(StorageError) as failed:
        backup_stream(repo, GeneratedStream(8 * MB, seed=22), component="c", target="t")
    line = first_line(failed.value)
    assert "No space left on device (ENOSPC)" in line
    assert f"the repository {storage.location} is full" in line
    assert "free space there" in line and "run the backup again" in line
    assert exit_code(failed.value) == EXIT_FAILED
    # ScholarOpsBackupFailed and ScholarOpsRepositoryFull fire on this reason
    assert failure_reason(failed.value) == "repository_full"

    # no half snapshot, no temporary file, the earlier snapshot whole
    repo = Repository.open(LocalStorage(small_disk / "repo"), master)
    assert repo.snapshot_ids() == [kept.backup_id]
    assert not [p for p in (small_disk / "repo").rglob(f"{TEMP_PREFIX}*")]
    assert check(repo, read_data=1.0).ok
    sink = CompareSink(GeneratedStream(3 * MB, seed=21))
    restore_stream(repo, repo.find_snapshot(kept.backup_id), sink)
    assert sink.identical

    # space freed: the next run succeeds (reusing the packs the failed one wrote)
    ballast.unlink()
    snap = backup_stream(repo, GeneratedStream(8 * MB, seed=22), component="c", target="t")
    sink = CompareSink(GeneratedStream(8 * MB, seed=22))
    restore_stream(repo, snap, sink)
    assert sink.identical
    assert check(repo, read_data=1.0).ok
