"""A tiny in-memory Storage for unit tests and experiments (not durable, one process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from scholar_ops.vault.errors import ObjectNotFound
from scholar_ops.vault.storage.base import ObjectInfo


class MemoryStorage:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"memory://{id(self):x}"

    def put(self, name: str, data: bytes) -> None:
        with self._lock:
            self.objects[name] = bytes(data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            try:
                data = self.objects[name]
            except KeyError:
                raise ObjectNotFound(name, self.location) from None
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = [ObjectInfo(n, len(d)) for n, d in self.objects.items() if n.startswith(prefix)]
        return iter(items)

    def stat(self, name: str) -> ObjectInfo:
        with self._lock:
            if name not in self.objects:
                raise ObjectNotFound(name, self.location)
            return ObjectInfo(name, len(self.objects[name]))

    def delete(self, name: str) -> None:
        with self._lock:
            if self.objects.pop(name, None) is None:
                raise ObjectNotFound(name, self.location)
