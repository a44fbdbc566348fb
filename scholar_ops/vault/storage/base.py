"""The storage interface every backend implements.

Rules for every implementation:
- Names are '/'-separated relative paths made of [A-Za-z0-9._-] segments
  (for example ``data/ab/ab12...``); implementations may reject anything else
  with ValueError.
- ``put`` is atomic: a reader sees the old object, or the whole new one, never
  a part. Overwriting an existing name is allowed.
- ``get`` returns the bytes ``[offset, offset+length)`` (to the end when length
  is None); reading past the end returns what there is. A missing object raises
  ObjectNotFound.
- ``list`` yields every object whose name starts with ``prefix``, in no
  particular order, with its size; it never yields temporary files.
- ``stat`` raises ObjectNotFound for a missing object; ``delete`` too.
- Errors worth retrying (timeouts, connection resets, 5xx, throttling) are
  raised as TransientStorageError; everything else as StorageError. Retrying
  lives in RetryingStorage, never inside an implementation.

A backend whose ``put`` can leave something behind when its process dies
(the local directory's temporary files) also implements ``PartialUploads``:
``partial_uploads()`` lists them with their age, ``remove_partial(name)``
deletes one. ``partial_uploads(storage)`` works on any storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int


class Storage(Protocol):
    @property
    def location(self) -> str:
        """A human-readable location, e.g. 'file:///backups/repo' or 's3://bucket/prefix'."""
        ...

    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class PartialUpload:
    """What an interrupted ``put`` left behind (never an object)."""

    name: str  # relative to the storage's root
    size: int
    age_s: float


class PartialUploads(Protocol):
    def partial_uploads(self) -> list[PartialUpload]: ...

    def remove_partial(self, name: str) -> None: ...


def partial_uploads(storage: object) -> list[PartialUpload]:
    """What interrupted uploads left in ``storage`` (none for backends that leave nothing)."""
    fn = getattr(storage, "partial_uploads", None)
    return list(fn()) if callable(fn) else []


def remove_partial(storage: object, name: str) -> None:
    fn = getattr(storage, "remove_partial", None)
    if callable(fn):
        fn(name)
