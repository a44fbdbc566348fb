"""File-tree backups: a varied tree round-trips exactly; incrementals skip unchanged files."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

import scholar_ops.sources.files.backup as files_backup
from scholar_ops.sources.files.backup import backup_files
from scholar_ops.sources.files.patterns import PatternSet, compile_pattern
from scholar_ops.sources.files.restore import restore_files
from scholar_ops.vault.errors import (
    ConfigError,
    IntegrityError,
    SourceError,
    TargetNotEmpty,
    VaultError,
)
from scholar_ops.vault.pack import pack_name

MB = 1 << 20
IS_ROOT = os.geteuid() == 0
UNICODE_NAME = "Ünïcödé 文件.txt"
RAW_NAME = b"latin1-caf\xe9.txt"  # not valid UTF-8
RAW_DIR = b"dir-\xff"


# -- helpers -------------------------------------------------------------------


def tree(root: Path) -> dict[bytes, tuple[Any, ...]]:
    """Everything below ``root`` (not following symlinks): kind, mode, mtime, owner, content."""
    out: dict[bytes, tuple[Any, ...]] = {}
    top = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, top)
            owner = (st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(path), st.st_mtime_ns, owner)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, owner)
            else:
                out[rel] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    st.st_mtime_ns,
                    owner,
                    st.st_size,
                    sha256_of(path),
                )
    return out


def sha256_of(path: bytes | str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MB):
            h.update(block)
    return h.hexdigest()


def assert_same_tree(a: Path, b: Path, *, root_meta: bool = True) -> None:
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb)
    for rel in ta:
        assert ta[rel] == tb[rel], f"{rel!r} differs"
    if root_meta:
        sa, sb = os.stat(a), os.stat(b)
        assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode)
        assert sa.st_mtime_ns == sb.st_mtime_ns


def write(path: Path | bytes, data: bytes, mode: int = 0o644, mtime_ns: int | None = None) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def set_mtimes(root: Path, base: int = 1_600_000_000_123_456_789) -> None:
    """Distinct ns-precision mtimes on everything, deepest first (so dir mtimes stay put)."""
    top = os.fsencode(root)
    paths = []
    for dirpath, dirnames, filenames in os.walk(top):
        paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
    for i, path in enumerate(sorted(paths, key=lambda p: -p.count(b"/"))):
        t = base + i * 1_000_003_007
        os.utime(path, ns=(t, t), follow_symlinks=False)
    os.utime(top, ns=(base - 7, base - 7))


def non_utf8_names_supported(root: Path) -> bool:
    probe = os.path.join(os.fsencode(root), b"probe-\xff")
    try:
        open(probe, "wb").close()
    except OSError:
        return False
    os.unlink(probe)
    return True


def make_varied_tree(root: Path) -> None:
    write(root / UNICODE_NAME, "Grüße, 世界\n".encode())
    write(root / "empty.txt", b"")
    (root / "empty-dir").mkdir()
    (root / "nested" / "deeper" / "empty").mkdir(parents=True)
    write(root / "nested" / "deeper" / "data.bin", os.urandom(3 * MB + 17))
    write(root / "secret.txt", b"password\n", 0o600)
    write(root / "script.sh", b"#!/bin/sh\necho hi\n", 0o755)
    write(root / "readonly.txt", b"do not touch\n", 0o444)
    write(root / "new\nline & back\\slash.txt", b"odd name\n")
    (root / "locked").mkdir()
    write(root / "locked" / "inside.txt", b"in a read-only dir\n")
    os.chmod(root / "locked", 0o555)
    (root / "links").mkdir()
    os.symlink("../script.sh", root / "links" / "relative")
    os.symlink("/etc/hostname", root / "links" / "absolute")
    os.symlink("does/not/exist", root / "links" / "dangling")
    os.symlink("../nested", root / "links" / "to-dir")  # never followed
    if IS_ROOT:
        write(root / "owned.txt", b"owned by someone else\n")
        os.chown(root / "owned.txt", 1234, 5678)
        os.lchown(root / "links" / "relative", 4321, 8765)
    if non_utf8_names_supported(root):
        top = os.fsencode(root)
        write(os.path.join(top, RAW_NAME), b"latin-1 name\n")
        os.mkdir(os.path.join(top, RAW_DIR))
        write(os.path.join(top, RAW_DIR, b"inner.txt"), b"below a non-UTF-8 directory\n")
        os.symlink(b"caf\xe9-target", os.path.join(top, b"raw-link"))
    set_mtimes(root)


class CountingOpen:
    """Stands in for open() in sources.files.backup; records what the backup opens."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, file: Any, *args: Any, **kwargs: Any) -> Any:
        self.opened.append(os.path.basename(os.fsdecode(file)))
        return builtins.open(file, *args, **kwargs)


# -- round trips -------------------------------------------------------------------


def test_varied_tree_round_trips_exactly(repo, src, tmp_path):
    make_varied_tree(src)
    raw_ok = os.path.lexists(os.path.join(os.fsencode(src), RAW_NAME))
    snap = backup_files(repo, src, target="uploads")
    assert snap.component == "files"
    assert snap.target == "uploads"
    names = [e.name for e in snap.entries]
    assert UNICODE_NAME in names
    assert names.index("nested") < names.index("nested/deeper") < names.index("nested/deeper/empty")
    kinds = {e.name: e.kind for e in snap.entries}
    assert kinds["empty-dir"] == "dir"
    assert kinds["links/dangling"] == "symlink"
    assert kinds["links/to-dir"] == "symlink"
    assert "links/to-dir/deeper" not in kinds  # the symlink was not followed
    by_name = {e.name: e for e in snap.entries}
    assert by_name["readonly.txt"].mode == 0o444
    assert by_name["links/absolute"].target == "/etc/hostname"
    assert by_name["empty.txt"].size == 0
    assert snap.details["counts"]["files_read"] == snap.details["counts"]["files"]
    if IS_ROOT:
        assert snap.details["owners"]["other"]["owned.txt"] == [1234, 5678]
    if raw_ok:
        assert "latin1-caf\\xe9.txt" in names
        assert "dir-\\xff/inner.txt" in names
        assert bytes.fromhex(snap.details["raw_names"]["latin1-caf\\xe9.txt"]) == RAW_NAME
        assert snap.details["raw_targets"]["raw-link"] == b"caf\xe9-target".hex()
    # The manifest reloads from the repository as it was written.
    loaded = repo.load_snapshot(snap.backup_id)
    assert loaded.entries == snap.entries

    dst = tmp_path / "dst"
    result = restore_files(repo, loaded, dst)
    assert result.files == sum(e.kind == "file" for e in snap.entries)
    assert result.dirs == sum(e.kind == "dir" for e in snap.entries)
    assert result.symlinks == (5 if raw_ok else 4)
    assert_same_tree(src, dst)
    assert not [p for p in os.listdir(dst) if p.startswith(".scholar-ops-restore-")]


def test_200_mb_file_then_an_incremental_reads_only_what_changed(repo, src, tmp_path, monkeypatch):
    big = src / "big.bin"
    with open(big, "wb") as f:
        for _ in range(25):
            f.write(os.urandom(8 * MB))
    write(src / "a.txt", b"alpha\n" * 1000)
    write(src / "b.txt", b"bravo\n" * 1000)
    (src / "conf").mkdir()
    write(src / "conf" / "app.yaml", b"debug: false\n")
    set_mtimes(src)

    first = backup_files(repo, src)
    assert first.size_bytes == 200 * MB + 12000 + 13
    assert first.stats["bytes_new"] == first.size_bytes
    restore_files(repo, first, tmp_path / "dst1")
    assert_same_tree(src, tmp_path / "dst1")

    write(src / "a.txt", b"alpha\n" * 1000 + b"one more line\n")
    os.unlink(src / "b.txt")
    write(src / "new.txt", b"a new file\n")
    os.chmod(src / "conf" / "app.yaml", 0o600)  # metadata only: not read again
    counting = CountingOpen()
    monkeypatch.setattr(files_backup, "open", counting, raising=False)
    second = backup_files(repo, src)

    assert sorted(counting.opened) == ["a.txt", "new.txt"]
    counts = second.details["counts"]
    assert counts["files_read"] == 2
    assert counts["bytes_read"] == 6014 + 11
    assert counts["files_unchanged"] == 2
    assert counts["bytes_unchanged"] == 200 * MB + 13
    assert second.details["previous"] == first.backup_id
    assert second.stats["bytes_new"] == 6014 + 11
    assert second.stats["bytes_stored"] < 64 * 1024
    assert second.size_bytes == 200 * MB + 6014 + 11 + 13
    assert {e.name: e.mode for e in second.entries}["conf/app.yaml"] == 0o600

    monkeypatch.undo()
    restore_files(repo, second, tmp_path / "dst2")
    assert_same_tree(src, tmp_path / "dst2")


def test_full_backup_reads_every_file_again(repo, src):
    write(src / "a.txt", b"a" * 5000)
    write(src / "b.txt", b"b" * 5000)
    backup_files(repo, src)
    full = backup_files(repo, src, backup_type="full")
    assert full.backup_type == "full"
    assert full.details["counts"]["files_read"] == 2
    assert full.details["counts"]["files_unchanged"] == 0
    assert full.details["previous"] is None
    assert full.stats["bytes_new"] == 10000


def test_unchanged_detection_is_per_target(repo, src, tmp_path):
    write(src / "a.txt", b"a" * 5000)
    backup_files(repo, src, target="one")
    other = backup_files(repo, src, target="two")
    assert other.details["previous"] is None
    assert other.details["counts"]["files_read"] == 1
    again = backup_files(repo, src, target="one")
    assert again.details["counts"]["files_unchanged"] == 1


# -- patterns ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        ("*.tmp", "x.tmp", False, True),
        ("*.tmp", "a/b/x.tmp", False, True),  # no slash: any depth
        ("*.tmp", "a/x.tmp/y", False, False),  # a pattern covers a dir's contents via the walk
        ("cache", "a/cache", True, True),
        ("/cache", "a/cache", True, False),  # anchored
        ("/cache", "cache", True, True),
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/sub/a.md", False, False),  # * does not cross /
        ("docs/**/*.md", "docs/sub/deep/a.md", False, True),
        ("docs/**/*.md", "docs/a.md", False, True),  # ** is zero or more dirs
        ("**/node_modules", "x/y/node_modules", True, True),
        ("build/**", "build/a/b", False, True),
        ("build/**", "build", True, False),
        ("logs/", "logs", True, True),
        ("logs/", "logs", False, False),  # trailing slash: directories only
        ("file?.txt", "file1.txt", False, True),
        ("file?.txt", "file10.txt", False, False),
        ("[a-c]*.txt", "b.txt", False, True),
        ("[!a-c]*.txt", "b.txt", False, False),
        ("[!a-c]*.txt", "d.txt", False, True),
        ("\\!important", "!important", False, True),
        ("a[b", "a[b", False, True),  # unclosed class: literal
        ("Ünïcödé*", "dir/Ünïcödé 文件.txt", False, True),
        ("*.txt", "new\nline.txt", False, True),
    ],
)
def test_pattern_semantics(pattern, path, is_dir, expected):
    assert compile_pattern(pattern).matches(path, is_dir) is expected


@pytest.mark.parametrize("bad", ["", "/", "!negated", "trailing\\"])
def test_bad_patterns_are_refused(bad):
    with pytest.raises(ConfigError):
        PatternSet([bad])


def test_include_and_exclude_select_entries(repo, src):
    for rel in [
        "docs/a.md",
        "docs/b.txt",
        "docs/drafts/c.md",
        "uploads/u1.pdf",
        "uploads/tmp/partial.pdf",
        "uploads/x.tmp",
        "other/o.md",
        "node_modules/pkg/readme.md",
    ]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        write(src / rel, rel.encode())
    (src / "uploads" / "empty").mkdir()
    (src / "unrelated-empty").mkdir()
    snap = backup_files(
        repo,
        src,
        include=["docs/**/*.md", "/uploads"],
        exclude=["*.tmp", "uploads/tmp/", "node_modules", "drafts"],
    )
    assert [e.name for e in snap.entries] == [
        "docs",
        "docs/a.md",
        "uploads",
        "uploads/empty",
        "uploads/u1.pdf",
    ]
    assert snap.details["exclude"] == ["*.tmp", "uploads/tmp/", "node_modules", "drafts"]
    # Exclude alone keeps everything else, empty directories too.
    snap = backup_files(repo, src, exclude=["docs", "*.pdf"], target="ex")
    assert [e.name for e in snap.entries] == [
        "node_modules",
        "node_modules/pkg",
        "node_modules/pkg/readme.md",
        "other",
        "other/o.md",
        "unrelated-empty",
        "uploads",
        "uploads/empty",
        "uploads/tmp",
        "uploads/x.tmp",
    ]


# -- restore -----------------------------------------------------------------------


def test_non_empty_destination_is_refused_and_left_untouched(repo, src, tmp_path):
    make_varied_tree(src)
    snap = backup_files(repo, src)
    dst = tmp_path / "dst"
    dst.mkdir()
    write(dst / "script.sh", b"local edit\n", 0o700, 1_000_000_000)
    write(dst / "keep.txt", b"not in the snapshot\n")
    before = tree(dst)
    with pytest.raises(TargetNotEmpty, match="not empty"):
        restore_files(repo, snap, dst)
    assert tree(dst) == before
    a_file = tmp_path / "a-file"
    a_file.write_bytes(b"x")
    with pytest.raises(TargetNotEmpty, match="not a directory"):
        restore_files(repo, snap, a_file)
    assert a_file.read_bytes() == b"x"

    # Overwrite: the snapshot's paths win, others stay; a directory in the way goes.
    (dst / "empty.txt").mkdir()
    write(dst / "empty.txt" / "inside", b"in the way\n")
    os.symlink("/nonexistent", dst / "nested")  # a symlink in the way of a directory
    restore_files(repo, snap, dst, overwrite=True)
    assert (dst / "keep.txt").read_bytes() == b"not in the snapshot\n"
    os.unlink(dst / "keep.txt")
    assert_same_tree(src, dst, root_meta=False)


def test_subset_restore(repo, src, tmp_path):
    make_varied_tree(src)
    snap = backup_files(repo, src)
    dst = tmp_path / "dst"
    result = restore_files(repo, snap, dst, paths=["nested/deeper", "/readonly.txt", "links/"])
    got = tree(dst)
    assert sorted(got) == sorted(
        [
            b"nested",
            b"nested/deeper",
            b"nested/deeper/empty",
            b"nested/deeper/data.bin",
            b"readonly.txt",
            b"links",
            b"links/relative",
            b"links/absolute",
            b"links/dangling",
            b"links/to-dir",
        ]
    )
    want = tree(src)
    for rel, meta in got.items():
        assert meta == want[rel], rel
    assert result.files == 2
    assert result.symlinks == 4
    with pytest.raises(VaultError, match="no path 'nope'"):
        restore_files(repo, snap, tmp_path / "dst2", paths=["nope"])
    assert not (tmp_path / "dst2").exists()
    # A name that is a prefix of another but not its directory is not a match.
    write(src / "nested-file", b"x")
    snap = backup_files(repo, src)
    restore_files(repo, snap, tmp_path / "dst3", paths=["nested"])
    assert not (tmp_path / "dst3" / "nested-file").exists()


def test_damaged_data_never_lands_under_the_real_name(repo, src, tmp_path):
    write(src / "a.txt", b"fine\n")
    write(src / "b.bin", os.urandom(MB))
    snap = backup_files(repo, src)
    (pack_id,) = snap.packs
    path = Path(repo.storage.root) / pack_name(pack_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside b.bin's blob
    path.write_bytes(bytes(data))
    dst = tmp_path / "dst"
    with pytest.raises(IntegrityError):
        restore_files(repo, snap, dst)
    assert os.listdir(dst) == ["a.txt"]


def test_restoring_another_component_is_refused(repo, tmp_path):
    from scholar_ops.vault.archiver import backup_stream

    snap = backup_stream(repo, io.BytesIO(b""), component="redis", target="t")
    with pytest.raises(VaultError, match="not a file backup"):
        restore_files(repo, snap, tmp_path / "dst")


# -- awkward sources -----------------------------------------------------------------


def test_unreadable_file_fails_the_backup_unless_errors_are_ignored(repo, src, monkeypatch):
    write(src / "ok.txt", b"ok\n")
    write(src / "locked.txt", b"secret\n", 0o000)

    def refusing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fsdecode(file).endswith("locked.txt"):  # chmod 000 does not stop root
            raise PermissionError(13, "Permission denied", os.fsdecode(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(files_backup, "open", refusing_open, raising=False)
    with pytest.raises(SourceError, match=r"cannot read .*locked\.txt.*Permission denied"):
        backup_files(repo, src)
    assert repo.snapshot_ids() == []
    snap = backup_files(repo, src, ignore_errors=True)
    assert [e.name for e in snap.entries] == ["ok.txt"]
    assert snap.details["errors"] == [
        {"path": "locked.txt", "error": "cannot read: Permission denied"}
    ]


def test_file_changing_while_read_is_read_again(repo, src, monkeypatch):
    write(src / "growing.log", b"line\n" * 1000)
    write(src / "busy.log", b"busy\n" * 1000)
    changing_opens = {"growing.log": 1, "busy.log": 2}  # opens during which the file grows

    class Appending:
        def __init__(self, f: Any, path: str) -> None:
            self.f, self.path = f, path
            name = os.path.basename(path)
            self.grow = changing_opens.get(name, 0) > 0
            if self.grow:
                changing_opens[name] -= 1

        def __enter__(self) -> Appending:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def fileno(self) -> int:
            return int(self.f.fileno())

        def readinto(self, b: Any) -> int:
            if self.grow:
                self.grow = False
                with builtins.open(self.path, "ab") as w:
                    w.write(b"appended while read\n")
            return int(self.f.readinto(b))

    def appending_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        return Appending(builtins.open(file, *args, **kwargs), os.fsdecode(file))

    monkeypatch.setattr(files_backup, "open", appending_open, raising=False)
    snap = backup_files(repo, src)
    by_name = {e.name: e for e in snap.entries}
    assert [e.name for e in snap.entries] == ["busy.log", "growing.log"]
    # Read twice: the second read saw a stable file, and it is what the snapshot holds.
    assert by_name["growing.log"].size == 5000 + 20
    assert by_name["growing.log"].sha256 == sha256_of(src / "growing.log")
    warnings = snap.details["warnings"]
    assert len(warnings) == 1
    assert "'busy.log' changed while being read" in warnings[0]
    assert snap.details["counts"]["files_read"] == 4


def test_special_files_are_skipped_with_a_warning(repo, src):
    write(src / "regular.txt", b"x")
    os.mkfifo(src / "a-fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "a-socket"))
        snap = backup_files(repo, src)
    finally:
        sock.close()
    assert [e.name for e in snap.entries] == ["regular.txt"]
    assert snap.details["counts"]["skipped"] == 2
    assert any("'a-fifo': FIFO" in w for w in snap.details["warnings"])
    assert any("'a-socket': socket" in w for w in snap.details["warnings"])


def test_root_must_be_a_directory(repo, tmp_path):
    with pytest.raises(SourceError, match="not a directory"):
        backup_files(repo, Path(os.devnull))
    with pytest.raises(SourceError, match="No such file"):
        backup_files(repo, tmp_path / "missing")


def test_one_file_system_keeps_the_mount_point_but_not_its_contents(repo, src):
    import shutil
    import subprocess

    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = src / "mnt"
    mnt.mkdir()
    write(src / "local.txt", b"on the root's filesystem\n")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        write(mnt / "elsewhere.txt", b"on another filesystem\n")
        snap = backup_files(repo, src)
        assert [e.name for e in snap.entries] == ["local.txt", "mnt"]
        assert snap.details["skipped_mounts"] == ["mnt"]
        snap = backup_files(repo, src, one_file_system=False, target="all")
        assert [e.name for e in snap.entries] == ["local.txt", "mnt", "mnt/elsewhere.txt"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
