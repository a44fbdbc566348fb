"""Storage in a local (or mounted) directory.

Each object is one file under the root, named by its object name. ``put`` writes
a temporary file named ``.tmp-*`` next to the target, fsyncs it, renames it over
the target with ``os.replace`` and fsyncs the directory, so a reader sees the
old object or the whole new one and a crash leaves at most a stray temporary
file, which ``list`` never shows.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from scholar_ops.vault.errors import (
    ConfigError,
    ObjectNotFound,
    StorageError,
    StorageFull,
    TransientStorageError,
)
from scholar_ops.vault.storage.base import ObjectInfo, PartialUpload

TEMP_PREFIX = ".tmp-"

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")

# errno values that name a missing object when reading, stat-ing or deleting.
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR})
# errno values of a full file system (or quota): not worth retrying, but named as such.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# errno values worth retrying (network filesystems, interrupted calls, busy devices).
_TRANSIENT = frozenset(
    {errno.EIO, errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ETIMEDOUT, errno.EBUSY}
)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise ValueError.

    Valid names are '/'-separated relative paths whose segments match
    ``[A-Za-z0-9._-]+``, are not ``.`` or ``..`` and do not start with the
    temporary-file prefix ``.tmp-``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid object name {name!r}: it must be a non-empty string")
    for segment in name.split("/"):
        if not segment:
            raise ValueError(
                f"invalid object name {name!r}: empty segment (leading, trailing or double '/')"
            )
        if segment in (".", ".."):
            raise ValueError(f"invalid object name {name!r}: '.' and '..' segments are not allowed")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"invalid object name {name!r}: segment {segment!r} may only contain "
                "letters, digits, '.', '_' and '-'"
            )
        if segment.startswith(TEMP_PREFIX):
            raise ValueError(
                f"invalid object name {name!r}: the prefix {TEMP_PREFIX!r} is reserved "
                "for temporary files"
            )
    return name


def check_range(offset: int, length: int | None) -> None:
    """Raise ValueError for a negative offset or length."""
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if length is not None and length < 0:
        raise ValueError(f"length must be >= 0 or None, got {length}")


class LocalStorage:
    """Objects as files under ``root``; the directory is created on the first put."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"repository path {self.root} is a file, not a directory: give the repository's "
                "directory (an empty or missing one for a new repository)"
            )

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    @property
    def location(self) -> str:
        return f"file://{self.root}"

    # -- helpers -----------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def _error(
        self, exc: OSError, action: str, name: str, path: Path, *, missing_means_not_found: bool
    ) -> StorageError:
        code = exc.errno
        if missing_means_not_found and code in _MISSING:
            return ObjectNotFound(name, self.location)
        reason = exc.strerror or str(exc)
        code_name = errno.errorcode.get(code, str(code)) if code is not None else "?"
        message = f"cannot {action} {path}: {reason} ({code_name})"
        if code in _FULL:
            message += (
                f"; the file system holding the repository {self.location} is full: free"
                " space there (the apply-retention flow deletes data no kept snapshot needs)"
                " or move the repository, then run the backup again"
            )
        if code in _TRANSIENT:
            return TransientStorageError(message)
        if code in _FULL:
            return StorageFull(message)
        return StorageError(message)

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` and missing parents, fsyncing each parent that gained an entry."""
        missing: builtins.list[Path] = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            if d.parent == d:
                break
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                if not d.is_dir():
                    raise
                continue  # created concurrently by another writer
            _fsync_dir(d.parent)

    # -- Storage -----------------------------------------------------------

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        directory = path.parent
        tmp: str | None = None
        try:
            self._make_dirs(directory)
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            tmp = None
            _fsync_dir(directory)
        except OSError as e:
            raise self._error(e, "write", name, path, missing_means_not_found=False) from e
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if length is None else f.read(length)
        except OSError as e:
            raise self._error(e, "read", name, path, missing_means_not_found=True) from e

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the deepest directory the prefix fully names, then filter.
        directory, _, _ = prefix.rpartition("/")
        if directory:
            start = self._path(directory)
            start_name = directory + "/"
        else:
            start, start_name = self.root, ""
        for info in self._walk(start, start_name):
            if info.name.startswith(prefix):
                yield info

    def _walk(self, directory: Path, rel: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            if e.errno in _MISSING:
                return  # nothing under this prefix (or it vanished while listing)
            raise self._error(e, "list", rel, directory, missing_means_not_found=False) from e
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if entry.is_dir():
                    yield from self._walk(Path(entry.path), f"{rel}{entry.name}/")
                elif entry.is_file():
                    yield ObjectInfo(f"{rel}{entry.name}", entry.stat().st_size)
            except OSError as e:
                if e.errno in _MISSING:
                    continue  # deleted while listing
                raise self._error(
                    e, "list", rel + entry.name, Path(entry.path), missing_means_not_found=False
                ) from e

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        try:
            st = path.stat()
        except OSError as e:
            raise self._error(e, "stat", name, path, missing_means_not_found=True) from e
        if not path.is_file():
            raise ObjectNotFound(name, self.location)
        return ObjectInfo(name, st.st_size)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            os.unlink(path)
        except OSError as e:
            # unlink of a directory gives EISDIR on Linux, EPERM on macOS: not an object either way
            if e.errno == errno.EPERM and path.is_dir():
                raise ObjectNotFound(name, self.location) from e
            raise self._error(e, "delete", name, path, missing_means_not_found=True) from e

    # -- PartialUploads ---------------------------------------------------------

    def partial_uploads(self) -> builtins.list[PartialUpload]:
        """Temporary files of puts that never finished (their process died)."""
        found: builtins.list[PartialUpload] = []
        now = time.time()
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                if not f.startswith(TEMP_PREFIX):
                    continue
                path = Path(dirpath) / f
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # the put finished meanwhile
                rel = path.relative_to(self.root).as_posix()
                found.append(PartialUpload(rel, st.st_size, max(0.0, now - st.st_mtime)))
        return sorted(found, key=lambda p: p.name)

    def remove_partial(self, name: str) -> None:
        path = self.root.joinpath(*name.split("/"))
        if not path.name.startswith(TEMP_PREFIX) or ".." in name.split("/"):
            raise ValueError(f"{name!r} is not a temporary file of this storage")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        # Some filesystems (and platforms) do not support fsync on directories.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
