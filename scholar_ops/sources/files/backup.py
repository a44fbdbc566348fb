"""Backing up a directory tree (uploads, configuration) with its metadata.

One entry per file, directory and symlink, in a deterministic order, with modes,
times and owners (docs/formats.md, "Files"). Files stream through the chunker;
an incremental backup reuses an earlier entry without reading a file whose size
and mtime are unchanged; a file that changes while read is read again. Never
follows symlinks; ``one_file_system`` stays on the root's filesystem; unreadable
files fail the backup naming them, unless ``ignore_errors`` lists them instead.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scholar_ops.sources.files.patterns import PatternSet
from scholar_ops.vault.archiver import BackupWriter, Progress
from scholar_ops.vault.errors import SourceError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import BackupType, Entry, Snapshot

log = logging.getLogger("scholar_ops.sources.files")

COMPONENT = "files"
FORMAT = "scholar-ops-files/1"

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


def _opener(path: str, flags: int) -> int:
    """No symlinks followed, no blocking on a FIFO swapped in, no atime update where allowed."""
    flags |= _OPEN_FLAGS
    if _NOATIME:
        try:
            return os.open(path, flags | _NOATIME)
        except PermissionError:  # O_NOATIME needs ownership (or CAP_FOWNER)
            pass
    return os.open(path, flags)


def entry_name(rel: str) -> tuple[str, bytes | None]:
    """(manifest name, raw bytes when the path is not valid UTF-8) of a walked path."""
    try:
        rel.encode("utf-8")
        return rel, None
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        return raw.decode("utf-8", "backslashreplace"), raw


@dataclass
class _Counts:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    files_read: int = 0
    bytes_read: int = 0
    files_unchanged: int = 0
    bytes_unchanged: int = 0
    excluded: int = 0
    skipped: int = 0


@dataclass
class _Walk:
    writer: BackupWriter
    root: str
    root_dev: int
    include: PatternSet
    exclude: PatternSet
    one_file_system: bool
    ignore_errors: bool
    previous: dict[str, Entry]
    counts: _Counts = field(default_factory=_Counts)
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)
    raw_names: dict[str, str] = field(default_factory=dict)
    raw_targets: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    skipped_mounts: list[str] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)
    _pending: list[tuple[Entry, os.stat_result]] = field(default_factory=list)

    # -- problems -------------------------------------------------------------

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)

    def error(self, rel: str, what: str, exc: OSError) -> None:
        name = entry_name(rel)[0]
        reason = exc.strerror or str(exc)
        if not self.ignore_errors:
            raise SourceError(
                f"cannot {what} {os.path.join(self.root, name)!r}: {reason} "
                "(fix the permissions, exclude the path, or back up with ignore_errors=True)"
            ) from exc
        log.warning("skipping %s: cannot %s: %s", name, what, reason)
        self.errors.append({"path": name, "error": f"cannot {what}: {reason}"})

    # -- entries --------------------------------------------------------------

    def _name(self, rel: str) -> str | None:
        name, raw = entry_name(rel)
        if raw is not None:
            if name in self._names:
                self.warn(f"skipping {name!r}: its escaped name collides with another path")
                return None
            self.raw_names[name] = raw.hex()
        self._names.add(name)
        return name

    def _record(self, entry: Entry | None, st: os.stat_result) -> None:
        if entry is not None:
            self.owners[entry.name] = (st.st_uid, st.st_gid)

    def _flush_pending(self) -> None:
        for entry, st in self._pending:
            self.writer.add_entry(entry)
            self._record(entry, st)
            self.counts.dirs += 1
        self._pending.clear()

    def walk(self) -> None:
        """Pre-order, iterative (no recursion limit on deep trees)."""
        stack: list[tuple[str, Iterator[os.DirEntry[str]], bool, Entry | None]] = []
        top = self._scan(self.root, "")
        if top is None:
            return
        stack.append(("", top, not self.include, None))
        while stack:
            prefix, it, included, dir_entry = stack[-1]
            de = next(it, None)
            if de is None:
                stack.pop()
                if self._pending and self._pending[-1][0] is dir_entry:
                    self._pending.pop()  # nothing below it was kept
                continue
            rel = prefix + de.name
            try:
                st = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                self.warn(f"{rel!r} vanished during the backup")
                continue
            except OSError as e:
                self.error(rel, "stat", e)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.exclude.matches(rel, is_dir):
                self.counts.excluded += 1
                continue
            inc = included or self.include.matches(rel, is_dir)
            if is_dir:
                self._directory(de, rel, st, inc, stack)
            elif not inc:
                continue
            elif stat.S_ISREG(st.st_mode):
                self._flush_pending()
                name = self._name(rel)
                if name is not None:
                    self._record(self._file(de.path, name, st), st)
            elif stat.S_ISLNK(st.st_mode):
                self._flush_pending()
                self._record(self._symlink(de.path, rel, st), st)
            else:
                self.counts.skipped += 1
                self.warn(f"skipping {rel!r}: {_kind_name(st.st_mode)} (not a file)")

    def _scan(self, path: str, rel: str) -> Iterator[os.DirEntry[str]] | None:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda d: os.fsencode(d.name))
        except FileNotFoundError:
            self.warn(f"directory {rel!r} vanished during the backup")
            return None
        except OSError as e:
            self.error(rel or ".", "list directory", e)
            return None
        return iter(entries)

    def _directory(
        self,
        de: os.DirEntry[str],
        rel: str,
        st: os.stat_result,
        inc: bool,
        stack: list[tuple[str, Iterator[os.DirEntry[str]], bool, Entry | None]],
    ) -> None:
        name = self._name(rel)
        if name is None:
            return
        entry = Entry(name=name, kind="dir", mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns)
        self._pending.append((entry, st))
        if inc:
            self._flush_pending()
        if self.one_file_system and st.st_dev != self.root_dev:
            self.skipped_mounts.append(name)
            log.info("not descending into %s: another filesystem", name)
            if self._pending and self._pending[-1][0] is entry:
                self._pending.pop()
            return
        children = self._scan(de.path, rel)
        if children is None:
            if self._pending and self._pending[-1][0] is entry:
                self._pending.pop()
            return
        stack.append((rel + "/", children, inc, entry))

    def _symlink(self, path: str, rel: str, st: os.stat_result) -> Entry | None:
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            self.warn(f"{rel!r} vanished during the backup")
            return None
        except OSError as e:
            self.error(rel, "read symlink", e)
            return None
        name = self._name(rel)
        if name is None:
            return None
        stored, raw = entry_name(target)
        if raw is not None:
            self.raw_targets[name] = raw.hex()
        entry = Entry(
            name=name,
            kind="symlink",
            mode=stat.S_IMODE(st.st_mode),
            mtime_ns=st.st_mtime_ns,
            target=stored,
        )
        self.writer.add_entry(entry)
        self.counts.symlinks += 1
        return entry

    def _file(self, path: str, name: str, st: os.stat_result) -> Entry | None:
        prev = self.previous.get(name)
        if prev is not None and prev.size == st.st_size and prev.mtime_ns == st.st_mtime_ns:
            entry = Entry(
                name=name,
                kind="file",
                size=prev.size,
                sha256=prev.sha256,
                chunks=list(prev.chunks),
                mode=stat.S_IMODE(st.st_mode),
                mtime_ns=st.st_mtime_ns,
            )
            if self.writer.add_unchanged(entry):
                self.counts.files += 1
                self.counts.files_unchanged += 1
                self.counts.bytes_unchanged += entry.size
                return entry
        for attempt in (1, 2):
            try:
                with open(path, "rb", buffering=0, opener=_opener) as f:
                    before = os.fstat(f.fileno())
                    if not stat.S_ISREG(before.st_mode):
                        self.counts.skipped += 1
                        self.warn(f"skipping {name!r}: replaced by a {_kind_name(before.st_mode)}")
                        return None
                    entry = self.writer.add_stream(
                        name,
                        f,
                        kind="file",
                        mode=stat.S_IMODE(before.st_mode),
                        mtime_ns=before.st_mtime_ns,
                    )
                    after = os.fstat(f.fileno())
            except FileNotFoundError:
                self.warn(f"{name!r} vanished during the backup")
                return None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    self.warn(f"skipping {name!r}: replaced by a symlink during the backup")
                    return None
                self.error(name, "read", e)
                return None
            self.counts.files_read += 1
            self.counts.bytes_read += entry.size
            changed = entry.size != after.st_size or (before.st_size, before.st_mtime_ns) != (
                after.st_size,
                after.st_mtime_ns,
            )
            if not changed:
                break
            if attempt == 1:
                # The chunks already stored are harmless (unreferenced ones go at the next prune).
                if self.writer.entries and self.writer.entries[-1] is entry:
                    self.writer.entries.pop()
                log.info("%s changed while being read; reading it again", name)
                continue
            self.warn(
                f"{name!r} changed while being read (twice): the copy may mix old and new "
                "content; the next backup reads it again"
            )
        self.counts.files += 1
        return entry

    def owners_detail(self) -> dict[str, Any]:
        if not self.owners:
            return {}
        common = Counter(self.owners.values()).most_common(1)[0][0]
        other = {n: list(o) for n, o in self.owners.items() if o != common}
        return {"default": list(common), "other": other}


def _kind_name(mode: int) -> str:
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "special file"


def previous_snapshot(repo: Repository, target: str) -> Snapshot | None:
    """The latest ``files`` snapshot of ``target``, if any."""
    snaps = [s for s in repo.snapshots() if s.component == COMPONENT and s.target == target]
    return snaps[-1] if snaps else None


def backup_files(
    repo: Repository,
    root: Path | str,
    *,
    target: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    backup_type: BackupType = "incremental",
    retention_days: float | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    one_file_system: bool = True,
    ignore_errors: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> Snapshot:
    """Back up the tree under ``root`` as one snapshot (component ``files``).

    ``target`` names the tree in the repository (default: the root's absolute
    path); unchanged-file detection compares with the latest snapshot of the
    same target. ``include``/``exclude``: see ``scholar_ops.sources.files.patterns``;
    exclude wins.
    """
    root_path = os.path.abspath(os.fspath(root))
    try:
        root_st = os.stat(root_path)
    except OSError as e:
        raise SourceError(f"cannot back up {root_path!r}: {e.strerror or e}") from e
    if not stat.S_ISDIR(root_st.st_mode):
        raise SourceError(f"cannot back up {root_path!r}: not a directory")
    target = target or entry_name(root_path)[0]
    includes = PatternSet(include or [])
    excludes = PatternSet(exclude or [])
    previous: dict[str, Entry] = {}
    prev_snap = previous_snapshot(repo, target) if backup_type == "incremental" else None
    if prev_snap is not None:
        previous = {e.name: e for e in prev_snap.entries if e.kind == "file"}
    with BackupWriter(
        repo,
        component=COMPONENT,
        target=target,
        backup_type=backup_type,
        progress=progress,
    ) as writer:
        walk = _Walk(
            writer=writer,
            root=root_path,
            root_dev=root_st.st_dev,
            include=includes,
            exclude=excludes,
            one_file_system=one_file_system,
            ignore_errors=ignore_errors,
            previous=previous,
        )
        walk.walk()
        details: dict[str, Any] = {
            "format": FORMAT,
            "root": {
                "path": entry_name(root_path)[0],
                "mode": stat.S_IMODE(root_st.st_mode),
                "mtime_ns": root_st.st_mtime_ns,
                "uid": root_st.st_uid,
                "gid": root_st.st_gid,
            },
            "include": list(include or []),
            "exclude": list(exclude or []),
            "one_file_system": one_file_system,
            "previous": prev_snap.backup_id if prev_snap is not None else None,
            "counts": vars(walk.counts).copy(),
            "owners": walk.owners_detail(),
            "raw_names": walk.raw_names,
            "raw_targets": walk.raw_targets,
            "skipped_mounts": walk.skipped_mounts,
            "warnings": walk.warnings,
            "errors": walk.errors,
        }
        c = walk.counts
        log.info(
            "%s: %d files (%d read, %d unchanged), %d dirs, %d symlinks",
            root_path,
            c.files,
            c.files_read,
            c.files_unchanged,
            c.dirs,
            c.symlinks,
        )
        return writer.commit(
            retention_days=retention_days, group=group, tags=tags or [], details=details
        )
