"""Restoring a file-tree snapshot written by sources.files.backup.

The destination must be missing or an empty directory unless ``overwrite`` is
set; a refusal writes nothing. Every file is written to a temporary name in its
directory, verified (every chunk is authenticated and re-hashed, then the
whole file's sha256 compared with the manifest), given its owner (when
restoring as root), permissions and mtime, and only then renamed into place:
a damaged or interrupted file never appears under its real name. Symlinks are
recreated as they were (relative, absolute or dangling), never followed.
Directories get their permissions and mtimes last, deepest first, so writing
their contents does not disturb them (and a read-only directory can be filled).

With ``overwrite`` the snapshot's paths replace what is there (a directory in
the way of a file is removed); paths the snapshot does not have are left alone.
``paths`` restores a subset: entries equal to a given path or below it, with
their parent directories' metadata.

Not restored: hard links (each name comes back as its own file), sparse
holes, extended attributes and ACLs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import stat
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scholar_ops.sources.files.backup import FORMAT
from scholar_ops.vault import audit
from scholar_ops.vault.errors import TargetNotEmpty, VaultError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer
from scholar_ops.vault.snapshot import Entry, Snapshot

log = logging.getLogger("scholar_ops.sources.files")

_TMP_PREFIX = ".scholar-ops-restore-"


@dataclass
class FilesRestoreResult:
    dest: str
    snapshot_id: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


def restore_files(
    repo: Repository,
    snap: Snapshot,
    dest: Path | str,
    *,
    paths: list[str] | None = None,
    overwrite: bool = False,
    chown: bool | None = None,
    jobs: int = 4,
) -> FilesRestoreResult:
    """Rebuild the snapshot's tree (or ``paths`` of it) under ``dest``.

    ``chown``: give entries their recorded owners; default: when running as root.
    ``jobs``: files restored at once (many small files are latency-bound).
    """
    if snap.details.get("format") != FORMAT:
        raise VaultError(
            f"snapshot {snap.short_id} is not a file backup (component {snap.component})"
        )
    started = time.monotonic()
    details = snap.details
    raw_names: dict[str, str] = details.get("raw_names") or {}
    raw_targets: dict[str, str] = details.get("raw_targets") or {}
    owners = _Owners(details.get("owners") or {})
    if chown is None:
        chown = hasattr(os, "geteuid") and os.geteuid() == 0
    for e in snap.entries:
        _check_name(snap, e.name)
    selected = _select(snap, paths)
    dest_str = os.path.abspath(os.fspath(dest))
    _prepare_dest(dest_str, overwrite)
    result = FilesRestoreResult(dest=dest_str, snapshot_id=snap.backup_id)

    def fs_path(name: str) -> str:
        raw = raw_names.get(name)
        rel = os.fsdecode(bytes.fromhex(raw)) if raw is not None else name
        return os.path.join(dest_str, rel)

    dirs: list[tuple[str, Entry]] = []
    jobs = max(1, jobs)
    with (
        audit.restoring(repo, snap),
        ThreadPoolExecutor(jobs, thread_name_prefix="files-restore") as pool,
    ):
        restorer = Restorer(repo)
        pending: deque[Future[int]] = deque()
        try:
            for entry in selected:
                path = fs_path(entry.name)
                os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
                if entry.kind == "dir":
                    _make_dir(path)
                    dirs.append((path, entry))
                    result.dirs += 1
                elif entry.kind == "file":
                    owner = owners.get(entry.name) if chown else None
                    pending.append(pool.submit(_write_file, restorer, snap, entry, path, owner))
                    result.files += 1
                    while len(pending) >= 2 * jobs:
                        result.bytes += pending.popleft().result()
                elif entry.kind == "symlink":
                    raw = raw_targets.get(entry.name)
                    target = os.fsdecode(bytes.fromhex(raw)) if raw is not None else entry.target
                    if target is None:
                        raise VaultError(
                            f"snapshot {snap.short_id}: symlink {entry.name!r} has no target"
                        )
                    _make_symlink(entry, path, target, owners.get(entry.name) if chown else None)
                    result.symlinks += 1
                else:
                    result.warnings.append(f"skipped {entry.name!r}: unknown kind {entry.kind!r}")
            while pending:
                result.bytes += pending.popleft().result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
        # Deepest first: a directory's metadata is set after everything inside it.
        for path, entry in reversed(dirs):
            _set_meta(path, entry.mode, entry.mtime_ns, owners.get(entry.name) if chown else None)
        root = details.get("root") or {}
        if paths is None and root:
            owner = (root["uid"], root["gid"]) if chown and "uid" in root else None
            _set_meta(dest_str, root.get("mode"), root.get("mtime_ns"), owner)
    result.duration_s = round(time.monotonic() - started, 3)
    log.info(
        "restored %d files (%d bytes), %d dirs, %d symlinks into %s",
        result.files,
        result.bytes,
        result.dirs,
        result.symlinks,
        dest_str,
    )
    return result


class _Owners:
    def __init__(self, d: dict[str, Any]) -> None:
        default = d.get("default")
        self.default = (int(default[0]), int(default[1])) if default else None
        self.other: dict[str, list[int]] = d.get("other") or {}

    def get(self, name: str) -> tuple[int, int] | None:
        o = self.other.get(name)
        return (o[0], o[1]) if o is not None else self.default


def _check_name(snap: Snapshot, name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise VaultError(
            f"snapshot {snap.short_id}: refusing to restore entry {name!r} (unsafe path)"
        )


def _select(snap: Snapshot, paths: list[str] | None) -> list[Entry]:
    entries = snap.entries
    if paths is None:
        return list(entries)
    wanted = [p.strip("/") for p in paths]
    if any(p in ("", ".") for p in wanted):
        return list(entries)
    chosen: set[str] = set()
    missing = []
    for p in wanted:
        hits = [e.name for e in entries if e.name == p or e.name.startswith(p + "/")]
        if not hits:
            missing.append(p)
        chosen.update(hits)
    if missing:
        raise VaultError(
            f"snapshot {snap.short_id} has no path {', '.join(repr(m) for m in missing)}"
        )
    # Parent directories come along, so they get their recorded metadata too.
    for name in list(chosen):
        parts = name.split("/")
        chosen.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return [e for e in entries if e.name in chosen]


def _prepare_dest(dest: str, overwrite: bool) -> None:
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        os.makedirs(dest, mode=0o700)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise TargetNotEmpty(f"restore destination {dest!r} exists and is not a directory")
    if overwrite:
        return
    with os.scandir(dest) as it:
        if next(it, None) is not None:
            raise TargetNotEmpty(
                f"restore destination {dest!r} is not empty: choose an empty directory "
                "or restore with overwrite=True"
            )


def _clear(path: str, keep_dir: bool) -> None:
    """Remove what is at ``path`` unless it is a real directory and ``keep_dir``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _make_dir(path: str) -> None:
    _clear(path, keep_dir=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        os.chmod(path, 0o700)  # an existing (overwrite) directory: writable until the end


def _tmp_name(path: str) -> str:
    return os.path.join(os.path.dirname(path), _TMP_PREFIX + secrets.token_hex(8))


def _write_file(
    restorer: Restorer, snap: Snapshot, entry: Entry, path: str, owner: tuple[int, int] | None
) -> int:
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb") as f:
            written = restorer.restore_entry(snap, entry, f)
            f.flush()
            if written != entry.size:
                raise VaultError(
                    f"snapshot {snap.short_id}: {entry.name!r} restored {written} bytes, "
                    f"recorded {entry.size}"
                )
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            if entry.mode is not None:
                os.fchmod(f.fileno(), entry.mode)
            if entry.mtime_ns is not None:
                os.utime(f.fileno(), ns=(entry.mtime_ns, entry.mtime_ns))
        _clear(path, keep_dir=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return written


def _make_symlink(entry: Entry, path: str, target: str, owner: tuple[int, int] | None) -> None:
    tmp = _tmp_name(path)
    os.symlink(target, tmp)
    try:
        if owner is not None:
            os.lchown(tmp, *owner)
        if entry.mtime_ns is not None:
            os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        _clear(path, keep_dir=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _set_meta(
    path: str, mode: int | None, mtime_ns: int | None, owner: tuple[int, int] | None
) -> None:
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)
    if mode is not None:
        os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
